"""Chromagrams as audiocraft computes them for its melody metric, and their per-file cache.

The feature-extraction half of chroma cosine similarity (`metrics/chroma.py` holds the metric,
which only compares chromagrams). Settings as audiocraft (`modules/chroma.py`, the musicgen solver
config `metrics.chroma_cosine`): 32 kHz mono, n_chroma 12, radix2_exp 14, argmax true:

- power spectrogram: n_fft = window = 2**14, hop = 2**12, Hann, centred (reflect pad),
  `normalized=True` (torchaudio.transforms.Spectrogram); a clip shorter than n_fft is zero-padded
  symmetrically to n_fft;
- chroma = librosa's chroma filterbank (tuning 0) applied to it, each frame divided by its
  maximum (inf-norm, eps 1e-6), then replaced by the one-hot of its argmax.

A pair is compared over its common length: when the two clips differ in length both are cut to
the shorter before extraction (audiocraft requires equal shapes), and the first ceil(n / hop)
frames are compared. Chromagrams of whole files are cached (with the file's sample count); a
clip longer than its partner is extracted again on the cut (the frames near the cut differ).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..embedding_cache import EmbeddingCache
    from ..manifest import Manifest

SAMPLE_RATE = 32000
N_CHROMA = 12
RADIX2_EXP = 14
ARGMAX = True
NORM_EPS = 1e-6
_COUNT_BASE = 1 << 16  # the sample count is cached as two float32-exact numbers: n // base, n % base


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

    def settings(self) -> dict:
        """What the chromagrams depend on (reported with the metric, part of the cache key)."""
        return {"sample_rate": self.sample_rate, "n_chroma": self.n_chroma, "n_fft": self.n_fft, "hop": self.hop,
                "argmax": self.argmax}

    def prepare(self, wav: np.ndarray, sample_rate: int, what: str) -> np.ndarray:
        """Mono float32 at the extractor's rate, refused when it holds NaN/inf (`what` names the clip)."""
        from ..audio import check_finite, resample, to_mono

        x = to_mono(np.asarray(wav, dtype=np.float32))
        check_finite(x, what)
        return resample(x, int(sample_rate), self.sample_rate)


def pair_chroma(extractor: ChromaExtractor, generated: np.ndarray, reference: np.ndarray, sample_rate: int,
                clip_id: str = "clip") -> tuple[np.ndarray, np.ndarray, int]:
    """(generated chroma, reference chroma, frames to compare) of one pair of clips at `sample_rate`.

    Both are cut to the shorter length before extraction; frames = ceil(n / hop), n that length.
    """
    g = extractor.prepare(generated, sample_rate, f"generated clip {clip_id}")
    r = extractor.prepare(reference, sample_rate, f"reference clip {clip_id}")
    n = min(g.shape[-1], r.shape[-1])
    return extractor(g[:n]), extractor(r[:n]), extractor.n_frames(n)


def _pack(chroma: np.ndarray, n_samples: int) -> np.ndarray:
    """[frames, n_chroma + 2]: the chromagram, then the sample count (two exact columns) on every row."""
    count = np.array([n_samples // _COUNT_BASE, n_samples % _COUNT_BASE], dtype=np.float32)
    return np.concatenate([np.asarray(chroma, np.float32), np.broadcast_to(count, (len(chroma), 2))], axis=1)


def _unpack(arr: np.ndarray) -> tuple[np.ndarray, int]:
    return arr[:, :-2], int(arr[0, -2]) * _COUNT_BASE + int(arr[0, -1])


def paired_chroma(generated: "Manifest", reference: "Manifest", ids: list[str], *,
                  extractor: ChromaExtractor | None = None, cache: "EmbeddingCache | None" = None,
                  normalize: bool = True, headroom_db: float = 14.0
                  ) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Chromagrams of the paired clips `ids` (already paired by `pairing.pair_ids`), ready for `ChromaCosine`.

    Returns (generated chromagrams, reference chromagrams, frames to compare), one each per id.
    Audio is loaded as every metric loads it (`embedding_cache.prepare_audio`: loudness-normalised
    at its own rate, then resampled to 32 kHz); whole-file chromagrams come from the cache.
    """
    from ..embedding_cache import cached_per_file, prepare_audio

    ex = extractor or ChromaExtractor()
    key = "-".join(f"{k}{v}" for k, v in ex.settings().items())
    opts = dict(name="chroma", weights_id=f"audiocraft-chroma-{key}", sample_rate=ex.sample_rate,
                compute=lambda wav: _pack(ex(ex.prepare(wav, ex.sample_rate, "clip")), wav.shape[-1]),
                cache=cache, normalize=normalize, headroom_db=headroom_db, dim=ex.n_chroma + 2)
    gen = cached_per_file([(i, generated.by_id(i).audio_path) for i in ids], description="generated chroma", **opts)
    ref = cached_per_file([(i, reference.by_id(i).audio_path) for i in ids], description="reference chroma", **opts)
    out_g, out_r, frames = [], [], []
    for i in ids:
        (cg, ng), (cr, nr) = _unpack(gen[i]), _unpack(ref[i])
        if ng != nr:  # the longer clip is extracted again on the common length
            side, man = ("generated", generated) if ng > nr else ("reference", reference)
            wav = prepare_audio(man.by_id(i).audio_path, ex.sample_rate, normalize, headroom_db)
            cut = ex(ex.prepare(wav[..., :min(ng, nr)], ex.sample_rate, f"{side} clip {i}"))
            cg, cr = (cut, cr) if ng > nr else (cg, cut)
        out_g.append(cg)
        out_r.append(cr)
        frames.append(ex.n_frames(min(ng, nr)))
    return out_g, out_r, frames


__all__ = ["ChromaExtractor", "pair_chroma", "paired_chroma", "SAMPLE_RATE", "N_CHROMA", "RADIX2_EXP", "ARGMAX"]
