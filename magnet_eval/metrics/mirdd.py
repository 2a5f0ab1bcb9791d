"""MIRDD: StemGen's Music Information Retrieval Descriptor Distance between two populations.

Per descriptor (the 11 of `magnet_eval.mir.descriptors`), the distribution of the descriptor
over the generated population is compared with its distribution over the reference population
by a KL divergence; MIRDD is the mean of the 11 divergences (lower is better). StemGen gives
neither bins, smoothing nor direction; they are fixed here (docs/metrics.md, "MIRDD"):

- Bins: each descriptor's fixed vocabulary, the same for every population (24 keys + none,
  MIDI pitches 0..127 + none, 12 pitch classes + none, 24 triads + N, integer counts over a
  fixed range, ...), so values compare across systems and references.
- Population distribution: every clip carries a mass of 1 per descriptor (a one-hot for a
  categorical value or a count, its normalised histogram for a multiset such as note pitches,
  the "none" bin for a clip with no such event); the population's bin counts c are the sums.
- Smoothing: additive, alpha = 0.01 pseudo-clips per bin on both sides:
  p_i = (c_i + alpha) / (n + K alpha), K = number of bins.
- Direction: KL(reference || generated) = sum_i p_ref,i log(p_ref,i / p_gen,i), natural log,
  as audiocraft's KL (it penalises reference modes the generator misses).
- Confidence interval: clips of both populations resampled with replacement, bias-corrected
  percentile interval (`_common.bootstrap_interval`), its lower end floored at 0.
- Per sample: each generated clip's leave-one-out contribution, MIRDD(all) - MIRDD(without it)
  (positive = the clip pulls the population away from the reference), plus its count
  descriptors as numbers (`mir/<name>`).

The metric takes descriptors (`mir.descriptors.ClipDescriptors`) and returns numbers; the
descriptors are extracted, cached and, for stem generation, taken of the generated stem summed
with its context mix as StemGen measures it, outside the metric (`mir.extract.describe_manifests`,
called by `evaluation`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import MagnetEvalError
from ..mir.descriptors import DESCRIPTOR_NAMES, DESCRIPTORS, ClipDescriptors, descriptor
from ._common import MetricResult, bootstrap_counts, bootstrap_interval, check_ids
from .kl import kl_divergence

SMOOTHING = 0.01
DIRECTION = "KL(reference || generated)"
COUNT_DESCRIPTORS = ("pitch_range", "n_pitch_classes", "percussive_density", "beats_per_bar", "chord_variety",
                     "chord_alteration_ratio")


def smoothed_distribution(counts: np.ndarray, n: float | np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """(counts + alpha) / (n + K alpha) along the last axis (counts may be a [B, K] batch)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k = counts.shape[-1]
    total = n[..., None] if n.ndim else n
    return (counts + smoothing) / (total + k * smoothing)


def descriptor_kl(reference_mass: np.ndarray, generated_mass: np.ndarray, smoothing: float = SMOOTHING) -> float:
    """KL(reference || generated) of one descriptor from per-clip masses [clips, bins] of each side."""
    r = np.asarray(reference_mass, dtype=np.float64)
    g = np.asarray(generated_mass, dtype=np.float64)
    p = smoothed_distribution(r.sum(0), r.shape[0], smoothing)
    q = smoothed_distribution(g.sum(0), g.shape[0], smoothing)
    return float(kl_divergence(p, q, eps=0.0))


def _as_list(descriptors, ids) -> tuple[list[ClipDescriptors], list[str]]:
    if isinstance(descriptors, Mapping):
        if ids is not None:
            raise MagnetEvalError("give ids either as the mapping's keys or as `ids`, not both")
        return list(descriptors.values()), [str(k) for k in descriptors]
    if isinstance(descriptors, ClipDescriptors):
        descriptors = [descriptors]
    descriptors = list(descriptors)
    if ids is None:
        raise MagnetEvalError("MIRDD.update needs the clip ids")
    ids = [ids] if isinstance(ids, str) else list(ids)
    return descriptors, [str(i) for i in ids]


class MIRDD:
    """Streaming MIRDD: `update_reference(...)`, `update(generated descriptors, ids)`, `compute()`.

    `compute()` returns one MetricResult "mirdd" (the mean over descriptors) followed by one
    "mirdd/<descriptor>" per descriptor, each with a bootstrap interval.
    """

    name = "mirdd"

    def __init__(self, reference: Mapping[str, ClipDescriptors] | Sequence[ClipDescriptors] | None = None, *,
                 smoothing: float = SMOOTHING, descriptors: Sequence[str] | None = None, n_bootstrap: int = 200,
                 ci: float = 0.95, seed: int = 0):
        if smoothing <= 0:
            raise MagnetEvalError("MIRDD smoothing must be positive (an empty bin would give an infinite KL)")
        self.smoothing = float(smoothing)
        self.names = tuple(descriptors) if descriptors else DESCRIPTOR_NAMES
        for n in self.names:
            descriptor(n)
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self._gen: list[ClipDescriptors] = []
        self._gen_ids: list[str] = []
        self._ref: list[ClipDescriptors] = []
        self._ref_ids: list[str] = []
        if reference is not None:
            if isinstance(reference, Mapping):
                self.update_reference(reference)
            else:
                refs = list(reference)
                self.update_reference(refs, [f"ref{i}" for i in range(len(refs))])

    def update_reference(self, descriptors, ids: Sequence[str] | None = None) -> None:
        d, i = _as_list(descriptors, ids)
        self._ref_ids += check_ids(i, len(d), set(self._ref_ids))
        self._ref += d

    def update(self, descriptors, ids: Sequence[str] | str | None = None) -> None:
        """Add generated clips (a list with ids, or a {id: ClipDescriptors} mapping)."""
        d, i = _as_list(descriptors, ids)
        self._gen_ids += check_ids(i, len(d), set(self._gen_ids))
        self._gen += d

    def reset(self) -> None:
        self._gen, self._gen_ids = [], []

    # ------------------------------------------------------------------ computation

    def _masses(self, clips: list[ClipDescriptors]) -> dict[str, np.ndarray]:
        return {n: np.stack([c.mass(n) for c in clips]) for n in self.names}

    def _kls(self, ref_counts: dict, n_ref, gen_counts: dict, n_gen) -> np.ndarray:
        """[..., descriptors] KLs from population counts (arrays may carry a leading batch axis)."""
        out = []
        for n in self.names:
            p = smoothed_distribution(ref_counts[n], n_ref, self.smoothing)
            q = smoothed_distribution(gen_counts[n], n_gen, self.smoothing)
            out.append(kl_divergence(p, q, eps=0.0))  # smoothing already keeps q > 0
        return np.stack(out, axis=-1)

    def compute(self) -> list[MetricResult]:
        if not self._ref:
            raise MagnetEvalError("MIRDD has no reference clips (update_reference was never called)")
        if not self._gen:
            raise MagnetEvalError("MIRDD has no generated clips (update was never called)")
        ref_m, gen_m = self._masses(self._ref), self._masses(self._gen)
        n_ref, n_gen = len(self._ref), len(self._gen)
        ref_c = {n: m.sum(0) for n, m in ref_m.items()}
        gen_c = {n: m.sum(0) for n, m in gen_m.items()}
        kls = self._kls(ref_c, float(n_ref), gen_c, float(n_gen))
        total = float(kls.mean())

        # clip bootstrap, both populations resampled
        boots = np.zeros((0, len(self.names)))
        if self.n_bootstrap > 0 and n_ref >= 2 and n_gen >= 2:
            rng = np.random.default_rng(self.seed)
            wr = bootstrap_counts(rng, n_ref, self.n_bootstrap).astype(np.float64)
            wg = bootstrap_counts(rng, n_gen, self.n_bootstrap).astype(np.float64)
            boots = self._kls({n: wr @ m for n, m in ref_m.items()}, np.full(self.n_bootstrap, float(n_ref)),
                              {n: wg @ m for n, m in gen_m.items()}, np.full(self.n_bootstrap, float(n_gen)))

        # leave-one-out contributions of generated clips
        contrib: dict[str, float] = {}
        if n_gen >= 2:
            loo_counts = {n: gen_c[n][None, :] - gen_m[n] for n in self.names}
            loo = self._kls(ref_c, float(n_ref), loo_counts, np.full(n_gen, float(n_gen - 1))).mean(axis=-1)
            contrib = {i: float(total - v) for i, v in zip(self._gen_ids, loo)}
        per_clip: dict[str, dict[str, float]] = {"mirdd_contribution": contrib} if contrib else {}
        for n in COUNT_DESCRIPTORS:
            if n in self.names:
                per_clip[f"mir/{n}"] = {i: c.value(n) for i, c in zip(self._gen_ids, self._gen)}

        common = dict(n_generated=n_gen, n_reference=n_ref)
        lo, hi = _interval(boots.mean(axis=1), total, self.ci) if len(boots) else (math.nan, math.nan)
        results = [MetricResult(
            "mirdd", total, lo, hi, per_sample=per_clip,
            details={"descriptors": {n: float(v) for n, v in zip(self.names, kls)}, "smoothing": self.smoothing,
                     "direction": DIRECTION, "log": "natural", "bins": "fixed vocabularies (docs/metrics.md)",
                     "n_bootstrap": int(len(boots)), "ci": self.ci},
            **common)]
        for j, n in enumerate(self.names):
            lo, hi = _interval(boots[:, j], float(kls[j]), self.ci) if len(boots) else (math.nan, math.nan)
            d = descriptor(n)
            p = smoothed_distribution(ref_c[n], float(n_ref), self.smoothing)
            q = smoothed_distribution(gen_c[n], float(n_gen), self.smoothing)
            results.append(MetricResult(
                f"mirdd/{n}", float(kls[j]), lo, hi,
                details={"kind": d.kind, "n_bins": d.size, "reference_top": _top(d.bins, p),
                         "generated_top": _top(d.bins, q)},
                **common))
        return results


def _interval(samples: np.ndarray, estimate: float, ci: float) -> tuple[float, float]:
    """The shared bias-corrected bootstrap interval, its lower end kept at >= 0 (a KL is never negative)."""
    lo, hi = bootstrap_interval(samples, estimate, ci)
    return (max(lo, 0.0) if math.isfinite(lo) else lo), hi


def _top(bins: Sequence[str], p: np.ndarray, k: int = 5) -> dict[str, float]:
    order = np.argsort(-p)[:k]
    return {bins[i]: round(float(p[i]), 4) for i in order}


__all__ = ["MIRDD", "SMOOTHING", "DIRECTION", "descriptor_kl", "smoothed_distribution", "DESCRIPTORS"]
