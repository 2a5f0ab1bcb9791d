"""Kernel Audio Distance (Chung et al. 2025): unbiased MMD^2 with a Gaussian RBF kernel, x100.

KAD = 100 * [ mean_{i != j} k(r_i, r_j) + mean_{i != j} k(g_i, g_j) - 2 mean_{i,j} k(r_i, g_j) ]
with k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2)) over embedding frames, the diagonal (i == j)
removed from the within-set terms, so the estimator is unbiased in the number of frames and
can be slightly negative for sets drawn from the same distribution.

Bandwidth: the median pairwise Euclidean distance between *reference* frames (at most
`bandwidth_frames` of them, drawn with a fixed seed). Taken from the reference alone, so the
kernel does not depend on the system under test and KAD values of several systems against
one reference compare. Kernel sums are computed in float64 over row chunks (memory bounded
by `chunk_bytes`), reduced to per-clip block sums, which makes the clip bootstrap and the
leave-one-out per-clip contribution (`kad_contribution` = KAD(all) - KAD(without the clip))
exact and cheap.

Interval: the clip bootstrap's bias-corrected percentile interval, floored at 0 and widened to
contain the value (`_common.distance_interval`; a negative unbiased estimate starts the interval).
A generated set whose frames are the reference frames is flagged (`details["self_comparison"]`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import MagnetEvalError
from ._common import MetricResult, add_clip_frames, bootstrap_counts, distance_interval, same_frames

SCALE = 100.0


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    a_sq = np.einsum("ij,ij->i", a, a)
    if b_sq is None:
        b_sq = np.einsum("ij,ij->i", b, b)
    d = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def median_bandwidth(frames: np.ndarray, max_frames: int = 4000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance (pairs i < j) of up to `max_frames` frames drawn with `seed`."""
    x = np.asarray(frames, dtype=np.float64)
    if x.shape[0] < 2:
        raise MagnetEvalError("KAD bandwidth needs at least two reference frames")
    if x.shape[0] > max_frames:
        x = x[np.random.default_rng(seed).choice(x.shape[0], max_frames, replace=False)]
    d = _sq_dists(x, x)
    iu = np.triu_indices(x.shape[0], k=1)
    med = float(np.sqrt(np.median(d[iu])))
    if not med > 0:
        raise MagnetEvalError("KAD bandwidth is zero: the reference frames are all identical")
    return med


def _row_chunk(n_cols: int, chunk_bytes: int) -> int:
    return max(1, int(chunk_bytes // (8 * max(n_cols, 1) * 3)))


def kernel_sum(x: np.ndarray, y: np.ndarray, bandwidth: float, chunk_bytes: int = 64 << 20) -> float:
    """Sum over all pairs of k(x_i, y_j) (diagonal included), chunked."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    y_sq = np.einsum("ij,ij->i", y, y)
    gamma = 1.0 / (2.0 * bandwidth ** 2)
    step = _row_chunk(y.shape[0], chunk_bytes)
    total = 0.0
    for s in range(0, x.shape[0], step):
        total += float(np.exp(-gamma * _sq_dists(x[s:s + step], y, y_sq)).sum())
    return total


def reference_self_term(ref: np.ndarray, bandwidth: float, chunk_bytes: int = 64 << 20) -> float:
    """mean_{i != j} k(r_i, r_j): fixed for one reference, cached in the reference statistics."""
    m = ref.shape[0]
    if m < 2:
        raise MagnetEvalError("KAD needs at least two reference frames")
    return (kernel_sum(ref, ref, bandwidth, chunk_bytes) - m) / (m * (m - 1))


def kad_frames(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """KAD between two frame sets (x = reference, whose median distance is the bandwidth when not given)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    bw = bandwidth or median_bandwidth(x)
    n = y.shape[0]
    if n < 2:
        raise MagnetEvalError("KAD needs at least two generated frames")
    yy = (kernel_sum(y, y, bw) - n) / (n * (n - 1))
    xy = kernel_sum(x, y, bw) / (x.shape[0] * n)
    return SCALE * (reference_self_term(x, bw) + yy - 2.0 * xy)


class KAD:
    """Streaming KAD against reference frames: `update(embeddings, ids)`, then `compute()`."""

    name = "kad"

    def __init__(
        self,
        reference_frames: np.ndarray,
        *,
        bandwidth: float | None = None,
        reference_term: float | None = None,
        n_bootstrap: int = 200,
        ci: float = 0.95,
        seed: int = 0,
        chunk_bytes: int = 64 << 20,
    ):
        ref = np.asarray(reference_frames, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[0] < 2:
            raise MagnetEvalError(f"KAD needs reference frames [n>=2, dim], got {ref.shape}")
        self.reference = ref
        self.bandwidth = float(bandwidth) if bandwidth else median_bandwidth(ref, seed=seed)
        self.chunk_bytes = int(chunk_bytes)
        self.reference_term = (float(reference_term) if reference_term is not None
                               else reference_self_term(ref, self.bandwidth, self.chunk_bytes))
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self.ids: list[str] = []
        self._frames: list[np.ndarray] = []

    def update(self, embeddings: np.ndarray | Sequence[np.ndarray], ids: str | Sequence[str]) -> None:
        """Add clips: one [frames, dim] array with one id, or a list of them with a list of ids."""
        add_clip_frames(self.ids, self._frames, embeddings, ids, self.reference.shape[1])

    def _block_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sizes [C], K_gg [C, C] clip-block kernel sums, K_gr [C] clip-vs-reference sums)."""
        g = np.concatenate(self._frames, axis=0)
        sizes = np.array([f.shape[0] for f in self._frames], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        gamma = 1.0 / (2.0 * self.bandwidth ** 2)
        g_sq = np.einsum("ij,ij->i", g, g)
        r_sq = np.einsum("ij,ij->i", self.reference, self.reference)
        n_clips = len(sizes)
        k_gg = np.zeros((n_clips, n_clips))
        k_gr = np.zeros(n_clips)
        # Chunk by whole clips so row-block reductions stay within one chunk.
        max_rows = _row_chunk(max(g.shape[0], self.reference.shape[0]), self.chunk_bytes)
        c0 = 0
        while c0 < n_clips:
            c1 = c0 + 1
            while c1 < n_clips and sizes[c0:c1 + 1].sum() <= max_rows:
                c1 += 1
            r0, r1 = starts[c0], starts[c0] + sizes[c0:c1].sum()
            rows = g[r0:r1]
            local_starts = starts[c0:c1] - r0
            kg = np.exp(-gamma * _sq_dists(rows, g, g_sq))
            kg = np.add.reduceat(kg, starts, axis=1)
            k_gg[c0:c1] = np.add.reduceat(kg, local_starts, axis=0)
            kr = np.exp(-gamma * _sq_dists(rows, self.reference, r_sq)).sum(axis=1)
            k_gr[c0:c1] = np.add.reduceat(kr, local_starts)
            c0 = c1
        return sizes, k_gg, k_gr

    def _value(self, w: np.ndarray, sizes: np.ndarray, k_gg: np.ndarray, k_gr: np.ndarray) -> float:
        n = float(w @ sizes)
        if n < 2:
            return math.nan
        gg = (w @ k_gg @ w - n) / (n * (n - 1))
        gr = (w @ k_gr) / (n * self.reference.shape[0])
        return SCALE * (self.reference_term + gg - 2.0 * gr)

    def _leave_one_out(self, sizes: np.ndarray, k_gg: np.ndarray, k_gr: np.ndarray) -> np.ndarray:
        """KAD without clip i, for every i at once, in O(C^2): the weight vector 1 - e_i only removes
        row/column i of the block sums, so w K w = total - 2 rowsum_i + K_ii (the same terms `_value`
        sums, without one C x C product per clip)."""
        n = float(sizes.sum()) - sizes.astype(np.float64)
        rows = k_gg.sum(axis=1)
        gg_sum = float(k_gg.sum()) - 2.0 * rows + np.diag(k_gg)
        gr_sum = float(k_gr.sum()) - k_gr
        with np.errstate(divide="ignore", invalid="ignore"):
            gg = (gg_sum - n) / (n * (n - 1.0))
            gr = gr_sum / (n * self.reference.shape[0])
            out = SCALE * (self.reference_term + gg - 2.0 * gr)
        return np.where(n >= 2, out, np.nan)

    def compute(self) -> MetricResult:
        if not self._frames:
            raise MagnetEvalError("KAD: no generated clips were given")
        sizes, k_gg, k_gr = self._block_sums()
        n_clips = len(sizes)
        ones = np.ones(n_clips)
        value = self._value(ones, sizes, k_gg, k_gr)
        if not math.isfinite(value):
            raise MagnetEvalError("KAD needs at least two generated embedding frames")
        boots = []
        if self.n_bootstrap > 0 and n_clips >= 2:
            rng = np.random.default_rng(self.seed)
            for counts in bootstrap_counts(rng, n_clips, self.n_bootstrap):
                boots.append(self._value(counts.astype(np.float64), sizes, k_gg, k_gr))
        lo, hi = distance_interval(boots, value, self.ci)
        without = self._leave_one_out(sizes, k_gg, k_gr)
        loo = {clip_id: value - float(v) for clip_id, v in zip(self.ids, without)}
        details = {
            "bandwidth": self.bandwidth,
            "bandwidth_rule": "median pairwise distance of reference frames",
            "kernel": "gaussian rbf exp(-d^2 / (2 bw^2))",
            "scale": SCALE,
            "n_frames_generated": int(sizes.sum()),
            "n_frames_reference": int(self.reference.shape[0]),
            "n_bootstrap": len(boots),
            "ci": self.ci,
            "ci_method": "bias-corrected percentile, floored at 0 and widened to contain the value; generated "
                         "clips resampled with replacement, reference fixed",
            "self_comparison": same_frames(np.concatenate(self._frames, axis=0), self.reference),
            "per_sample": "kad_contribution = KAD(all) - KAD(without clip)",
        }
        return MetricResult("kad", float(value), lo, hi, n_generated=n_clips,
                            per_sample={"kad_contribution": loo}, details=details)
