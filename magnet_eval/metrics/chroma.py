"""Chroma cosine similarity: audiocraft's melody metric (`ChromaCosineSimilarityMetric`).

How a melody-conditioned generation keeps the chroma of its conditioning audio. Same steps and
settings as audiocraft (`metrics/chroma_cosinesim.py`, `modules/chroma.py`, and the musicgen solver
config `metrics.chroma_cosine`: sample_rate = the model's 32 kHz, n_chroma 12, radix2_exp 14,
argmax true):

- both clips mono at 32 kHz (our one resampler; audiocraft uses julius);
- power spectrogram: n_fft = window = 2**14, hop = 2**12, Hann, centred (reflect pad),
  `normalized=True` (torchaudio.transforms.Spectrogram); a clip shorter than n_fft is zero-padded
  symmetrically to n_fft;
- chroma = librosa's chroma filterbank (tuning 0) applied to it, each frame divided by its
  maximum (inf-norm, eps 1e-6), then replaced by the one-hot of its argmax;
- per frame the cosine similarity (eps 1e-8) of reference and generated chroma, over the first
  ceil(n / hop) frames, n the reference length;
- the value is the sum of the frame cosines over all clips divided by the number of frames
  (frame-weighted, as audiocraft's `cosine_sum / weight`).

Differences, stated: clips are paired by prompt id (audiocraft compares batch items); when the
two lengths differ both are cut to the shorter (audiocraft requires equal shapes). Per-clip
means are reported per sample, with a clip bootstrap interval on the frame-weighted mean.
Loudness normalisation does not change argmax chroma; it is applied only for uniformity.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import MagnetEvalError
from ._common import MetricResult, bootstrap_counts, bootstrap_interval, check_ids

if TYPE_CHECKING:
    from ..manifest import Manifest

SAMPLE_RATE = 32000
N_CHROMA = 12
RADIX2_EXP = 14
ARGMAX = True
EPS = 1e-8
NORM_EPS = 1e-6


class ChromaExtractor:
    """Chromagram as audiocraft's ChromaExtractor: [frames, n_chroma] from mono audio at `sample_rate`."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_chroma: int = N_CHROMA, radix2_exp: int = RADIX2_EXP,
                 argmax: bool = ARGMAX):
        import librosa
        import torch
        import torchaudio

        self.sample_rate = int(sample_rate)
        self.n_chroma = int(n_chroma)
        self.n_fft = 2 ** int(radix2_exp)
        self.hop = self.n_fft // 4
        self.argmax = bool(argmax)
        fb = librosa.filters.chroma(sr=self.sample_rate, n_fft=self.n_fft, tuning=0, n_chroma=self.n_chroma)
        self._fbanks = torch.from_numpy(np.asarray(fb, dtype=np.float32))
        self._spec = torchaudio.transforms.Spectrogram(n_fft=self.n_fft, win_length=self.n_fft, hop_length=self.hop,
                                                       power=2, center=True, pad=0, normalized=True)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(np.asarray(wav, dtype=np.float32).reshape(-1)))
        if x.numel() < self.n_fft:
            pad = self.n_fft - x.numel()
            x = torch.nn.functional.pad(x[None, None], (pad // 2, pad - pad // 2))[0, 0]
        with torch.no_grad():
            spec = self._spec(x)  # [freq, frames]
            raw = self._fbanks @ spec  # [chroma, frames]
            chroma = torch.nn.functional.normalize(raw, p=math.inf, dim=0, eps=NORM_EPS).T  # [frames, chroma]
            if self.argmax:
                one_hot = torch.zeros_like(chroma)
                one_hot.scatter_(1, chroma.argmax(dim=1, keepdim=True), 1.0)
                chroma = one_hot
        return chroma.numpy()

    def n_frames(self, n_samples: int) -> int:
        """Frames compared for a clip of n_samples (audiocraft: ceil(size / hop))."""
        return int(math.ceil(n_samples / self.hop))


def frame_cosines(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Per-row cosine similarity with torch's eps convention (norms clamped to eps)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.maximum(np.linalg.norm(a, axis=1), eps)
    nb = np.maximum(np.linalg.norm(b, axis=1), eps)
    return np.sum(a * b, axis=1) / (na * nb)


class ChromaCosine:
    """Streaming chroma cosine similarity: `update(ids, generated, reference, sample_rate)`, `compute()`."""

    name = "chroma_cosine"

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_chroma: int = N_CHROMA, radix2_exp: int = RADIX2_EXP,
                 argmax: bool = ARGMAX, eps: float = EPS, *, n_bootstrap: int = 200, ci: float = 0.95, seed: int = 0):
        self.extractor = ChromaExtractor(sample_rate, n_chroma, radix2_exp, argmax)
        self.eps = float(eps)
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self._ids: list[str] = []
        self._sums: list[float] = []
        self._frames: list[int] = []

    def reset(self) -> None:
        self._ids, self._sums, self._frames = [], [], []

    def _prepare(self, wav: np.ndarray, sr: int, what: str) -> np.ndarray:
        from ..audio import check_finite, resample, to_mono

        x = to_mono(np.asarray(wav, dtype=np.float32))
        check_finite(x, what)
        return resample(x, int(sr), self.extractor.sample_rate)

    def update(self, ids: Sequence[str] | str, generated: Sequence[np.ndarray] | np.ndarray,
               reference: Sequence[np.ndarray] | np.ndarray, sample_rate: int) -> None:
        """Add pairs (generated[i], reference[i]) under ids[i]; audio mono or [channels, samples] at `sample_rate`."""
        if isinstance(ids, str):
            ids, generated, reference = [ids], [generated], [reference]
        ids = check_ids(ids, len(generated), set(self._ids))
        if len(reference) != len(ids):
            raise MagnetEvalError(f"{len(ids)} generated clips but {len(reference)} reference clips")
        for clip_id, g, r in zip(ids, generated, reference):
            g = self._prepare(g, sample_rate, f"generated clip {clip_id}")
            r = self._prepare(r, sample_rate, f"reference clip {clip_id}")
            n = min(g.shape[-1], r.shape[-1])
            cg, cr = self.extractor(g[:n]), self.extractor(r[:n])
            t = min(self.extractor.n_frames(n), len(cg), len(cr))
            cos = frame_cosines(cr[:t], cg[:t], self.eps)
            self._ids.append(clip_id)
            self._sums.append(float(cos.sum()))
            self._frames.append(int(t))

    def compute(self) -> MetricResult:
        total = int(np.sum(self._frames)) if self._frames else 0
        if total <= 0:
            raise MagnetEvalError("chroma cosine: no frames to compare (update was never called)")
        sums = np.asarray(self._sums)
        frames = np.asarray(self._frames, dtype=np.float64)
        value = float(sums.sum() / frames.sum())
        lo = hi = math.nan
        boots: list[float] = []
        if self.n_bootstrap > 0 and len(sums) >= 2:
            w = bootstrap_counts(np.random.default_rng(self.seed), len(sums), self.n_bootstrap).astype(np.float64)
            boots = list((w @ sums) / (w @ frames))
            lo, hi = bootstrap_interval(boots, value, self.ci)
        per_clip = {i: s / f for i, s, f in zip(self._ids, self._sums, self._frames) if f > 0}
        ex = self.extractor
        return MetricResult(
            "chroma_cosine", value, lo, hi, n_generated=len(self._ids), n_reference=len(self._ids),
            per_sample={"chroma_cosine": per_clip},
            details={"sample_rate": ex.sample_rate, "n_chroma": ex.n_chroma, "n_fft": ex.n_fft, "hop": ex.hop,
                     "argmax": ex.argmax, "frames": total, "weighting": "frames (audiocraft)",
                     "n_bootstrap": len(boots), "ci": self.ci},
        )

    @classmethod
    def evaluate_manifests(cls, generated: "Manifest", reference: "Manifest", *, normalize: bool = True,
                           headroom_db: float = 14.0, n_bootstrap: int = 200, ci: float = 0.95, seed: int = 0,
                           strict_pairing: bool = False) -> list[MetricResult]:
        """Chroma cosine of generated clips against the reference clip of the same prompt id."""
        from ..embedding_cache import prepare_audio
        from ..evaluation import pair_ids
        from ..progress import track

        ids = pair_ids(generated, reference, strict=strict_pairing, what="chroma cosine similarity")
        metric = cls(n_bootstrap=n_bootstrap, ci=ci, seed=seed)
        sr = metric.extractor.sample_rate
        for clip_id in track(ids, "chroma cosine"):
            g = prepare_audio(generated.by_id(clip_id).audio_path, sr, normalize, headroom_db)
            r = prepare_audio(reference.by_id(clip_id).audio_path, sr, normalize, headroom_db)
            metric.update(clip_id, g, r, sr)
        return [metric.compute()]


__all__ = ["ChromaCosine", "ChromaExtractor", "frame_cosines"]
