"""Frechet Audio Distance against a reference Gaussian, with a clip bootstrap, FAD-inf and per-clip contributions.

- value: Frechet distance between the reference Gaussian and the Gaussian of all generated
  embedding frames (see `frechet.py`).
- Confidence interval: clips (not frames) of the generated set are resampled with replacement
  `n_bootstrap` times and the distance recomputed; the bias-corrected percentile interval
  (percentiles shifted by mean(replicates) - estimate), floored at 0 and widened to contain
  the value (`_common.distance_interval`), is reported. The
  reference is held fixed (it may only exist as cached statistics), so the interval reflects
  the sampling variability of the generated set.
- FAD-inf (as fadtk): 25 sizes n spaced linearly from 500 to the number of generated frames;
  at each n, n frames are drawn with replacement and the FAD computed; FAD is fitted linearly
  in 1/n and the intercept is FAD-inf (slope and r^2 are reported). With fewer than 1000
  frames the smallest size is lowered to a quarter of the frames (noted in the details).
- Per-sample contribution, `fad_contribution`: leave-one-out change,
  FAD(all clips) - FAD(all clips but this one). Positive = the clip pulls the generated set
  away from the reference; the largest values are the outlier clips. Exact (the set's
  statistics are downdated, no re-embedding), skipped when n_clips * dim^3 exceeds
  `loo_max_flops`. Always also `fad_clip_distance`: the squared Mahalanobis distance of the
  clip's mean embedding under the reference Gaussian (pseudo-inverse, eigenvalues below
  1e-10 of the largest dropped), a cheap per-clip outlier score.
- The main value is cross-checked against scipy's sqrtm route (a warning when they differ by
  more than 1e-3 relative, as fadtk) for embeddings of up to `crosscheck_max_dim` (1024)
  dimensions; above that sqrtm alone takes tens of seconds on a CPU.
- Generated (and resampled) sets with fewer frames than dimensions (clip-level embedders such
  as PANN or CLAP) go through the small Gram matrix (`frechet.FixedGaussian.distance_to_frames`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import MagnetEvalError
from ._common import MetricResult, add_clip_frames, bootstrap_counts, distance_interval, same_gaussian
from .frechet import (FixedGaussian, FrameSet, GaussianAccumulator, GaussianStats, crosscheck_sqrtm,
                      frechet_distance, warn_if_rank_deficient)


def fit_inverse_n(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line value = intercept + slope / n; returns (intercept, slope, r^2)."""
    x = 1.0 / np.asarray(sizes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    pred = intercept + slope * x
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(intercept), float(slope), r2


class FAD:
    """Streaming FAD: `update(embeddings, ids)` per clip or batch of clips, then `compute()`."""

    name = "fad"

    def __init__(
        self,
        reference: GaussianStats,
        *,
        n_bootstrap: int = 200,
        ci: float = 0.95,
        seed: int = 0,
        fad_inf: bool = True,
        inf_steps: int = 25,
        inf_min_n: int = 500,
        loo_max_flops: float = 3e11,
        crosscheck_max_dim: int = 1024,
        reference_geometry: FixedGaussian | None = None,
    ):
        # reference_geometry: the reference's eigendecomposition (`FixedGaussian(mean, cov)`), when the caller
        # already has it: it depends on the reference alone, so evaluating many systems needs it once
        self.reference = reference
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self.fad_inf = fad_inf
        self.inf_steps = int(inf_steps)
        self.inf_min_n = int(inf_min_n)
        self.loo_max_flops = float(loo_max_flops)
        self.crosscheck_max_dim = int(crosscheck_max_dim)
        self._ref_geometry = reference_geometry
        self.ids: list[str] = []
        self._frames: list[np.ndarray] = []

    def update(self, embeddings: np.ndarray | Sequence[np.ndarray], ids: str | Sequence[str]) -> None:
        """Add clips: one [frames, dim] array with one id, or a list of them with a list of ids."""
        add_clip_frames(self.ids, self._frames, embeddings, ids, self.reference.dim)

    # ------------------------------------------------------------------ pieces

    def _all_frames(self) -> tuple[np.ndarray, np.ndarray]:
        frames = np.concatenate(self._frames, axis=0)
        sizes = np.array([f.shape[0] for f in self._frames], dtype=np.int64)
        return frames, sizes

    def _bootstrap(self, frames: FrameSet, sizes: np.ndarray, rng) -> list[float]:
        """FAD of clip-resampled generated sets: frames weighted by their clip's multiplicity, no copies."""
        n_clips = len(sizes)
        if self.n_bootstrap <= 0 or n_clips < 2:
            return []
        return [frames.distance(np.repeat(counts, sizes)) for counts in bootstrap_counts(rng, n_clips, self.n_bootstrap)]

    def _fad_inf(self, frames: FrameSet, rng) -> dict:
        n_frames = frames.frames.shape[0]
        lo = self.inf_min_n if n_frames >= 2 * self.inf_min_n else max(2, n_frames // 4)
        if n_frames < 8:
            return {"value": math.nan, "slope": math.nan, "r2": math.nan, "note": f"too few frames ({n_frames})"}
        sizes = [int(n) for n in np.linspace(lo, n_frames, self.inf_steps)]
        values = []
        for n in sizes:
            counts = np.bincount(rng.integers(0, n_frames, size=n), minlength=n_frames)
            values.append(frames.distance(counts))
        intercept, slope, r2 = fit_inverse_n(sizes, values)
        out = {"value": intercept, "slope": slope, "r2": r2, "sizes": sizes, "values": values}
        if lo != self.inf_min_n:
            out["note"] = f"only {n_frames} frames: smallest subset size lowered from {self.inf_min_n} to {lo}"
        return out

    def _leave_one_out(self, acc: GaussianAccumulator, frames: FrameSet, sizes: np.ndarray, ref: FixedGaussian,
                       full: float) -> dict[str, float]:
        """FAD(all) - FAD(all but clip i): few frames -> Gram route on the rest; many -> downdated covariance."""
        n, mean, m2 = acc.count, acc._mean, acc._m2
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out: dict[str, float] = {}
        for clip_id, x, s0 in zip(self.ids, self._frames, starts):
            n_i = x.shape[0]
            n_rest = n - n_i
            if n_rest < 2:
                out[clip_id] = math.nan
                continue
            if n_rest < ref.dim:
                w = np.ones(n)
                w[s0:s0 + n_i] = 0.0
                out[clip_id] = full - frames.distance(w)
                continue
            mean_i = x.mean(axis=0)
            xc = x - mean_i
            m2_i = xc.T @ xc
            mean_rest = (n * mean - n_i * mean_i) / n_rest
            delta = mean_i - mean_rest
            m2_rest = m2 - m2_i - np.outer(delta, delta) * (n_i * n_rest / n)
            out[clip_id] = full - ref.distance(mean_rest, m2_rest / (n_rest - 1))
        return out

    def _clip_distances(self, ref: FixedGaussian) -> dict[str, float]:
        means = np.stack([x.mean(axis=0) for x in self._frames])
        return dict(zip(self.ids, map(float, ref.mahalanobis2(means))))

    def _reference(self) -> FixedGaussian:
        if getattr(self, "_ref_geometry", None) is None:
            self._ref_geometry = FixedGaussian(self.reference.mean, self.reference.cov)
        return self._ref_geometry

    # ------------------------------------------------------------------ result

    def compute(self) -> MetricResult:
        if not self._frames:
            raise MagnetEvalError("FAD: no generated clips were given")
        ref = self.reference
        frames, sizes = self._all_frames()
        acc = GaussianAccumulator().update(frames)
        gen = acc.stats()
        deficient_gen = warn_if_rank_deficient(gen, "FAD generated set")
        deficient_ref = warn_if_rank_deficient(ref, "FAD reference set")
        geo = self._reference()
        crosscheck = ref.dim <= self.crosscheck_max_dim
        frame_set = geo.frame_set(frames)
        if frame_set.small:  # fewer frames than dimensions: n x n matrices only, no d x d decomposition
            value = frame_set.distance()
            if crosscheck:
                crosscheck_sqrtm(value, ref.mean, ref.cov, gen.mean, gen.cov)
        else:
            value = frechet_distance(ref.mean, ref.cov, gen.mean, gen.cov, crosscheck=crosscheck, sqrt_sigma1=geo.sqrt)
        rng = np.random.default_rng(self.seed)
        boots = self._bootstrap(frame_set, sizes, rng)
        lo, hi = distance_interval(boots, value, self.ci)
        per_sample = {"fad_clip_distance": self._clip_distances(geo)}
        cost = len(self.ids) * float(min(ref.dim, frames.shape[0])) ** 3
        loo_note = None
        if cost <= self.loo_max_flops:
            per_sample["fad_contribution"] = self._leave_one_out(acc, frame_set, sizes, geo, value)
        else:
            loo_note = f"leave-one-out skipped: {len(self.ids)} clips x dim {ref.dim}^3 exceeds loo_max_flops"
        inf = self._fad_inf(frame_set, np.random.default_rng(self.seed + 1)) if self.fad_inf else None
        self._inf_cache = (len(self.ids), inf)
        self._self_comparison = same_gaussian(gen, ref)
        details = {
            "n_frames_generated": int(frames.shape[0]),
            "n_frames_reference": int(ref.count),
            "dim": ref.dim,
            "n_bootstrap": len(boots),
            "ci": self.ci,
            "ci_method": "bias-corrected percentile, floored at 0 and widened to contain the value; generated "
                         "clips resampled with replacement, reference fixed",
            "self_comparison": self._self_comparison,
            "rank_deficient_generated": deficient_gen,
            "rank_deficient_reference": deficient_ref,
            "sqrtm_crosscheck": crosscheck,
            "per_sample": "fad_contribution = FAD(all) - FAD(without clip); fad_clip_distance = squared "
                          "Mahalanobis distance of the clip mean under the reference Gaussian",
        }
        if loo_note:
            details["loo_note"] = loo_note
        if inf is not None:
            details["fad_inf"] = {k: v for k, v in inf.items()}
        return MetricResult("fad", value, lo, hi, n_generated=len(self.ids), n_reference=0,
                            per_sample=per_sample, details=details)

    def compute_fad_inf(self) -> MetricResult:
        """FAD-inf as its own result row (intercept of FAD vs 1/n)."""
        if not self._frames:
            raise MagnetEvalError("FAD-inf: no generated clips were given")
        cached = getattr(self, "_inf_cache", None)
        if cached is not None and cached[0] == len(self.ids) and cached[1] is not None:
            inf = cached[1]
        else:
            frames, _ = self._all_frames()
            inf = self._fad_inf(self._reference().frame_set(frames), np.random.default_rng(self.seed + 1))
        details = {k: v for k, v in inf.items()}
        if getattr(self, "_self_comparison", False):
            details["self_comparison"] = True  # the set against itself (see compute)
        return MetricResult("fad_inf", inf["value"], n_generated=len(self.ids), details=details)
