"""Small pieces every metric shares: per-clip bookkeeping, bootstrap intervals, result records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import MagnetEvalError


@dataclass
class MetricResult:
    """One metric value for a set, its bootstrap interval, per-sample values and free-form details.

    `per_sample` maps a per-sample metric name (e.g. "fad_contribution") to {clip id: value}.
    """

    metric: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_generated: int = 0
    n_reference: int = 0
    per_sample: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    status: str = "ok"


def percentile_interval(samples: Sequence[float], ci: float) -> tuple[float, float]:
    """The central `ci` percentile interval of bootstrap replicates (NaN when there are none)."""
    arr = np.asarray([s for s in samples if math.isfinite(s)], dtype=np.float64)
    if arr.size < 2:
        return math.nan, math.nan
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(arr, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_interval(samples: Sequence[float], estimate: float, ci: float) -> tuple[float, float]:
    """Bias-corrected percentile interval: the bootstrap percentiles shifted by the bootstrap bias.

    Resampling clips with replacement duplicates clips, which shrinks the effective sample
    and biases set distances (FAD, KAD) upwards: plain percentiles can then miss the point
    estimate altogether. Shifting by (mean of replicates - estimate) keeps the spread of the
    bootstrap distribution and centres it on the estimate; for plain means (KL, CLAP) the
    shift is ~0 and this is the ordinary percentile interval.
    """
    arr = np.asarray([s for s in samples if math.isfinite(s)], dtype=np.float64)
    if arr.size < 2 or not math.isfinite(estimate):
        return math.nan, math.nan
    lo, hi = percentile_interval(arr, ci)
    bias = float(arr.mean()) - float(estimate)
    return lo - bias, hi - bias


def distance_interval(samples: Sequence[float], estimate: float, ci: float) -> tuple[float, float]:
    """Interval of a distance (FAD, KAD): the bias-corrected percentile interval, floored at 0 and
    widened to contain the point value.

    Why: the bias shift of `bootstrap_interval` can push the lower end below zero (a distance
    cannot be negative) and, with a skewed bootstrap distribution, past the estimate itself
    (an interval that excludes its own value). The lower end is therefore max(lo, 0), then
    min(that, estimate); the upper end max(hi, estimate). KAD's unbiased estimate can itself be
    slightly negative: the interval then starts at the estimate.
    """
    lo, hi = bootstrap_interval(samples, estimate, ci)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return lo, hi
    return min(max(lo, 0.0), float(estimate)), max(hi, float(estimate))


def bootstrap_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """[n_boot, n] multiplicities of n items drawn n times with replacement (the clip-level bootstrap)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)


def check_ids(ids: Sequence[str], n: int, seen: set[str]) -> list[str]:
    ids = [str(i) for i in ids]
    if len(ids) != n:
        raise MagnetEvalError(f"{n} items but {len(ids)} ids")
    dup = sorted({i for i in ids if i in seen} | {i for i in ids if ids.count(i) > 1})
    if dup:
        raise MagnetEvalError(f"clip ids given twice to the same metric: {dup[:10]}")
    return ids


def clip_frames(embeddings, clip_id: str, reference_dim: int) -> np.ndarray:
    """One clip's embeddings as float64 [frames, dim], checked against the reference's dimension.

    Shared by the embedding metrics (FAD, KAD): a 1-D vector is one frame; an empty clip, another
    dimension (a reference made with another embedder) or NaN/inf is refused naming the clip.
    """
    arr = np.asarray(embeddings, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise MagnetEvalError(f"clip {clip_id}: embeddings must be [frames>0, dim], got {arr.shape}")
    if arr.shape[1] != reference_dim:
        raise MagnetEvalError(f"clip {clip_id}: embedding dimension {arr.shape[1]} but the reference has "
                              f"{reference_dim} (reference made with another embedder?)")
    if not np.isfinite(arr).all():
        raise MagnetEvalError(f"clip {clip_id}: embeddings hold NaN/inf")
    return arr


def add_clip_frames(ids: list[str], frames: list[np.ndarray], embeddings, new_ids, reference_dim: int) -> None:
    """The `update` of the embedding metrics (FAD, KAD): append clips' checked frames under their ids.

    `embeddings`/`new_ids`: one [frames, dim] array with one id, or a list of arrays with a list of
    ids; `ids`/`frames` are the metric's lists, extended in place (ids checked for repeats).
    """
    if isinstance(new_ids, str):
        embeddings, new_ids = [embeddings], [new_ids]
    new_ids = check_ids(new_ids, len(embeddings), set(ids))
    for clip_id, emb in zip(new_ids, embeddings):
        arr = clip_frames(emb, clip_id, reference_dim)
        ids.append(clip_id)
        frames.append(arr)


def same_gaussian(a, b, rtol: float = 1e-6) -> bool:
    """True when two Gaussian statistics (mean, cov, count) describe the same frames: a set
    measured against itself, whose distance is no measurement (see `evaluation` self-comparison)."""
    if int(getattr(a, "count", -1)) != int(getattr(b, "count", -2)) or a.mean.shape != b.mean.shape:
        return False
    scale = max(float(np.abs(b.cov).max()) if b.cov.size else 0.0, 1e-300)
    return bool(np.allclose(a.mean, b.mean, rtol=rtol, atol=rtol * max(float(np.abs(b.mean).max()), 1e-12))
                and np.allclose(a.cov, b.cov, rtol=rtol, atol=rtol * scale))


def same_frames(a: np.ndarray, b: np.ndarray, rtol: float = 1e-5) -> bool:
    """True when two frame sets hold the same rows in any order (column-wise sorted values agree;
    float32-stored reference frames are compared with a relative tolerance)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.size == 0:
        return False
    scale = max(float(np.abs(b).max()), 1e-12)
    return bool(np.allclose(np.sort(a, axis=0), np.sort(b, axis=0), rtol=rtol, atol=rtol * scale))
