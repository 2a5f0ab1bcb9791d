"""Mel distance: how far an output's log-mel spectrogram is from its original's, clip by clip.

VampNet reports how well a prompt preserves the input as a mel reconstruction error; this is
that number: the mean absolute difference of log10 mel magnitudes (80 bands, 2048-sample
window, hop 512, floor 1e-5, as the DAC / audiotools mel losses use), over the frames both
signals cover, averaged per clip and then over clips, with a bootstrap interval over clips.
Lower is closer; 0 means identical spectra. The class is streaming and does no file I/O:
`update` takes audio arrays or spectra already made by `spectrum`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import MagnetEvalError
from ._common import MetricResult, percentile_interval


class MelDistance:
    """Streaming mean log-mel L1 distance between paired clips: `update(generated, reference, ids)`, then `compute()`."""

    name = "mel_distance"

    def __init__(self, sample_rate: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 80,
                 floor: float = 1e-5, n_bootstrap: int = 200, ci: float = 0.95, seed: int = 0):
        import torchaudio

        if sample_rate <= 0:
            raise MagnetEvalError(f"mel distance: sample rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.floor = float(floor)
        self.n_bootstrap, self.ci, self.seed = int(n_bootstrap), float(ci), int(seed)
        self._mel = torchaudio.transforms.MelSpectrogram(sample_rate=self.sample_rate, n_fft=n_fft, hop_length=hop_length,
                                                         n_mels=self.n_mels, power=1.0, center=True)
        self.values: dict[str, float] = {}

    def spectrum(self, audio: np.ndarray) -> np.ndarray:
        """log10 mel magnitudes [n_mels, frames] of mono audio [samples] at `sample_rate`."""
        import torch

        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size == 0 or not np.isfinite(x).all():
            raise MagnetEvalError("mel distance: empty or non-finite audio")
        with torch.no_grad():
            mel = self._mel(torch.from_numpy(x)).numpy()
        return np.log10(np.maximum(mel, self.floor))

    def _as_spectrum(self, x: np.ndarray, clip_id: str) -> np.ndarray:
        arr = np.asarray(x)
        if arr.ndim == 2 and arr.shape[0] == self.n_mels:
            return arr.astype(np.float64)
        if arr.ndim == 1 or (arr.ndim == 2 and 1 in arr.shape):
            return self.spectrum(arr).astype(np.float64)
        raise MagnetEvalError(f"mel distance, clip {clip_id}: expected audio [samples] or a spectrum "
                              f"[{self.n_mels}, frames], got shape {arr.shape}")

    def distance(self, generated: np.ndarray, reference: np.ndarray, clip_id: str = "clip") -> float:
        """The distance of one pair (audio arrays or spectra), over the frames both cover."""
        a, b = self._as_spectrum(generated, clip_id), self._as_spectrum(reference, clip_id)
        n = min(a.shape[1], b.shape[1])
        if n == 0:
            raise MagnetEvalError(f"mel distance, clip {clip_id}: no frames to compare")
        return float(np.mean(np.abs(a[:, :n] - b[:, :n])))

    def update(self, generated: np.ndarray | Sequence[np.ndarray], reference: np.ndarray | Sequence[np.ndarray],
               ids: str | Sequence[str]) -> None:
        """Add paired clips (one pair, or lists of the same length with one id each; ids must be new)."""
        if isinstance(ids, str):
            generated, reference, ids = [generated], [reference], [ids]
        if not len(generated) == len(reference) == len(ids):
            raise MagnetEvalError(f"mel distance: {len(generated)} outputs, {len(reference)} originals, {len(ids)} ids")
        for g, r, clip_id in zip(generated, reference, ids):
            if clip_id in self.values:
                raise MagnetEvalError(f"mel distance: clip id {clip_id!r} given twice")
            self.values[str(clip_id)] = self.distance(g, r, str(clip_id))

    def compute(self) -> MetricResult:
        """Mean over clips, with a percentile bootstrap interval over clips and the per-clip values."""
        if not self.values:
            raise MagnetEvalError("mel distance: no clips were added")
        vals = np.asarray(list(self.values.values()), dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        boots = [float(vals[rng.integers(0, len(vals), len(vals))].mean()) for _ in range(self.n_bootstrap)]
        lo, hi = percentile_interval(boots, self.ci) if len(vals) > 1 else (float("nan"), float("nan"))
        return MetricResult(self.name, float(vals.mean()), lo, hi, n_generated=len(vals), n_reference=len(vals),
                            per_sample={self.name: dict(self.values)},
                            details={"n_mels": self.n_mels, "sample_rate": self.sample_rate, "floor": self.floor})
