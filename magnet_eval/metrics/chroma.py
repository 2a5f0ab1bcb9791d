"""Chroma cosine similarity: audiocraft's melody metric (`ChromaCosineSimilarityMetric`).

How a melody-conditioned generation keeps the chroma of its conditioning audio. The metric
compares chromagrams; they are made outside it (`mir/chroma.py`: audiocraft's extractor at 32 kHz,
n_chroma 12, radix2_exp 14, argmax, both clips of a pair cut to the shorter):

- per frame the cosine similarity (eps 1e-8) of reference and generated chroma, over the first
  ceil(n / hop) frames, n the pair's common length in samples;
- the value is the sum of the frame cosines over all clips divided by the number of frames
  (frame-weighted, as audiocraft's `cosine_sum / weight`).

Differences, stated: clips are paired by prompt id (audiocraft compares batch items); when the
two lengths differ both are cut to the shorter (audiocraft requires equal shapes). Per-clip
means are reported per sample, with a clip bootstrap interval on the frame-weighted mean.
Loudness normalisation does not change argmax chroma; it is applied only for uniformity.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import MagnetEvalError
from ._common import MetricResult, bootstrap_counts, bootstrap_interval, check_ids

EPS = 1e-8


def frame_cosines(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Per-row cosine similarity with torch's eps convention (norms clamped to eps)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.maximum(np.linalg.norm(a, axis=1), eps)
    nb = np.maximum(np.linalg.norm(b, axis=1), eps)
    return np.sum(a * b, axis=1) / (na * nb)


class ChromaCosine:
    """Streaming chroma cosine similarity: `update(ids, generated chroma, reference chroma, frames)`, `compute()`."""

    name = "chroma_cosine"

    def __init__(self, eps: float = EPS, *, n_bootstrap: int = 200, ci: float = 0.95, seed: int = 0,
                 extractor_settings: dict | None = None):
        self.eps = float(eps)
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self.extractor_settings = dict(extractor_settings or {})  # reported in the details
        self._ids: list[str] = []
        self._sums: list[float] = []
        self._frames: list[int] = []

    def reset(self) -> None:
        self._ids, self._sums, self._frames = [], [], []

    def update(self, ids: Sequence[str] | str, generated: Sequence[np.ndarray] | np.ndarray,
               reference: Sequence[np.ndarray] | np.ndarray, frames: Sequence[int] | int | None = None) -> None:
        """Add pairs of chromagrams [frames, n_chroma] (generated[i], reference[i]) under ids[i].

        frames[i]: how many leading frames to compare (`ChromaExtractor.n_frames` of the pair's
        common length); at most the shorter chromagram; default all of the shorter one.
        """
        if isinstance(ids, str):
            ids, generated, reference = [ids], [generated], [reference]
            frames = None if frames is None else [frames]
        ids = check_ids(ids, len(generated), set(self._ids))
        if len(reference) != len(ids):
            raise MagnetEvalError(f"{len(ids)} generated chromagrams but {len(reference)} reference chromagrams")
        if frames is not None and len(frames) != len(ids):
            raise MagnetEvalError(f"{len(ids)} pairs but {len(frames)} frame counts")
        for k, (clip_id, cg, cr) in enumerate(zip(ids, generated, reference)):
            cg, cr = np.asarray(cg), np.asarray(cr)
            if cg.ndim != 2 or cr.ndim != 2 or cg.shape[1] != cr.shape[1]:
                raise MagnetEvalError(f"clip {clip_id}: chromagrams must be [frames, n_chroma] with the same "
                                      f"n_chroma, got {cg.shape} and {cr.shape}")
            t = min(len(cg), len(cr)) if frames is None else min(int(frames[k]), len(cg), len(cr))
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
        return MetricResult(
            "chroma_cosine", value, lo, hi, n_generated=len(self._ids), n_reference=len(self._ids),
            per_sample={"chroma_cosine": per_clip},
            details={**self.extractor_settings, "frames": total, "weighting": "frames (audiocraft)",
                     "n_bootstrap": len(boots), "ci": self.ci},
        )


__all__ = ["ChromaCosine", "frame_cosines"]
