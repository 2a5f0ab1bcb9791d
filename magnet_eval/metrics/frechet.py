"""Gaussian statistics of embedding frames and the Frechet distance between two Gaussians.

FAD is |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). The usual route through
`scipy.linalg.sqrtm(S1 @ S2)` works on a non-symmetric matrix, can leave imaginary parts and
has produced negative distances in the field's toolkits. Here the trace term is computed from
symmetric eigendecompositions only: tr((S1 S2)^(1/2)) = sum sqrt(eig(A S2 A)) with A = S1^(1/2),
because S1 S2 is similar to A S2 A, which is symmetric positive semi-definite. Eigenvalues
that round below zero are clipped, so the result is real and (up to rounding) non-negative.
Like fadtk, `frechet_distance(..., crosscheck=True)` also runs the sqrtm route and warns when
the two disagree by more than 1e-3 relative.

Statistics are accumulated in float64 with Chan's parallel update (batch Welford): a stream of
frame batches gives the same mean/covariance as one `np.cov` over all frames, without the
cancellation of the naive sum-of-squares formula.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import MagnetEvalError


class RankDeficientWarning(UserWarning):
    """A covariance estimated from fewer frames than dimensions (singular: FAD is biased and unstable)."""


def _as_frames(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise MagnetEvalError(f"embedding frames must be [frames, dim], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MagnetEvalError("embedding frames hold NaN/inf values")
    return arr


class GaussianAccumulator:
    """Streaming mean and covariance of embedding frames (float64, Chan/Welford merge)."""

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # sum of outer products of deviations from the mean

    def update(self, frames: np.ndarray) -> "GaussianAccumulator":
        """Add a batch of frames [n, dim]."""
        x = _as_frames(frames)
        n_b = x.shape[0]
        if n_b == 0:
            return self
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise MagnetEvalError(f"embedding dimension changed from {self.dim} to {x.shape[1]}")
        mean_b = x.mean(axis=0)
        xc = x - mean_b
        m2_b = xc.T @ xc
        self._merge(n_b, mean_b, m2_b)
        return self

    def _merge(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self.count == 0:
            self.count, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def merge(self, other: "GaussianAccumulator") -> "GaussianAccumulator":
        """Fold another accumulator in (for parallel or per-file accumulation)."""
        if other.count:
            if self.dim is not None and other.dim != self.dim:
                raise MagnetEvalError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
            self.dim = other.dim
            self._merge(other.count, other._mean, other._m2)
        return self

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise MagnetEvalError("no embedding frames were accumulated")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (ddof=1, as np.cov); needs at least two frames."""
        if self.count < 2:
            raise MagnetEvalError(f"a covariance needs at least 2 embedding frames, got {self.count}")
        return self._m2 / (self.count - 1)

    def stats(self) -> "GaussianStats":
        return GaussianStats(self.mean, self.cov, self.count)


@dataclass
class GaussianStats:
    """Mean [d], covariance [d, d] and the number of frames they were estimated from."""

    mean: np.ndarray
    cov: np.ndarray
    count: int

    @classmethod
    def from_frames(cls, frames: np.ndarray) -> "GaussianStats":
        return GaussianAccumulator().update(frames).stats()

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def rank_deficient(self) -> bool:
        """Fewer frames than dimensions: the covariance is singular by construction."""
        return self.count <= self.dim


def _clip_rounding(w: np.ndarray) -> np.ndarray:
    """Eigenvalues that are rounding noise (below dim * 10 * machine eps of the largest) set to 0.

    A square root turns noise of 1e-14 into 1e-7, and summed over the null space of a
    rank-deficient covariance that would make the distance of identical Gaussians negative.
    """
    top = float(np.max(np.abs(w))) if w.size else 0.0
    floor = top * w.size * 10.0 * np.finfo(np.float64).eps
    return np.where(w > floor, w, 0.0)


def _psd_sqrt(mat: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) PSD matrix; rounding-level eigenvalues set to 0."""
    sym = (mat + mat.T) / 2.0
    w, v = np.linalg.eigh(sym)
    w = _clip_rounding(w)
    return (v * np.sqrt(w)) @ v.T


def _assemble(mean_sq: float, trace1: float, trace2: float, tr_sqrt: float) -> float:
    """|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1 S2)^(1/2); the exact value is >= 0, so a rounding-level
    negative result (identical Gaussians) is returned as 0."""
    value = mean_sq + trace1 + trace2 - 2.0 * tr_sqrt
    scale = (trace1 + trace2 + mean_sq) or 1.0
    return 0.0 if -1e-9 * scale < value < 0.0 else value


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, sqrt_sigma1: np.ndarray | None = None) -> float:
    """tr((S1 S2)^(1/2)) through eigvalsh(S1^(1/2) S2 S1^(1/2)); `sqrt_sigma1` may be precomputed."""
    a = _psd_sqrt(sigma1) if sqrt_sigma1 is None else sqrt_sigma1
    m = a @ sigma2 @ a
    m = (m + m.T) / 2.0
    ev = _clip_rounding(np.linalg.eigvalsh(m))
    return float(np.sqrt(ev).sum())


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2) -> float:
    """The classical route (scipy sqrtm of S1 S2, real part kept): only a cross-check here."""
    from scipy import linalg

    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    covmean = linalg.sqrtm(np.asarray(sigma1, np.float64) @ np.asarray(sigma2, np.float64))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    *,
    crosscheck: bool = False,
    sqrt_sigma1: np.ndarray | None = None,
    tolerance: float = 1e-3,
) -> float:
    """Frechet distance between N(mu1, S1) and N(mu2, S2), real and >= 0 (see the module docstring).

    `crosscheck` also computes the scipy.sqrtm value and warns when the relative difference
    exceeds `tolerance` (fadtk's check). `sqrt_sigma1` saves one decomposition when the first
    Gaussian is fixed (a reference set against many bootstrap resamples).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise MagnetEvalError(
            f"Gaussians of different dimensions: mean {mu1.shape} vs {mu2.shape}, covariance {sigma1.shape} vs {sigma2.shape}"
            " (were they made with different embedders?)"
        )
    for name, arr in (("mean", mu1), ("mean", mu2), ("covariance", sigma1), ("covariance", sigma2)):
        if not np.isfinite(arr).all():
            raise MagnetEvalError(f"a {name} holds NaN/inf values")
    diff = mu1 - mu2
    tr_sqrt = trace_sqrt_product(sigma1, sigma2, sqrt_sigma1)
    value = _assemble(float(diff @ diff), float(np.trace(sigma1)), float(np.trace(sigma2)), tr_sqrt)
    if crosscheck:
        crosscheck_sqrtm(value, mu1, sigma1, mu2, sigma2, tolerance)
    return value


def crosscheck_sqrtm(value: float, mu1, sigma1, mu2, sigma2, tolerance: float = 1e-3) -> None:
    """Warn (RuntimeWarning) when scipy's sqrtm route disagrees with `value` by more than `tolerance` relative."""
    other = frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2)
    if math.isfinite(other) and abs(other - value) > tolerance * max(abs(value), 1e-12):
        warnings.warn(
            f"Frechet distance: eigendecomposition gives {value:.6g}, scipy sqrtm gives {other:.6g} "
            f"(relative difference above {tolerance:g}); the eigendecomposition value is used",
            RuntimeWarning,
            stacklevel=3,
        )


def warn_if_rank_deficient(stats: GaussianStats, what: str) -> bool:
    """Warn (RankDeficientWarning) when `stats` came from no more frames than dimensions; returns the flag."""
    if stats.rank_deficient:
        warnings.warn(
            f"{what}: covariance from {stats.count} frames in {stats.dim} dimensions is rank deficient; "
            "the Frechet distance is biased upwards and unstable: use more or longer clips",
            RankDeficientWarning,
            stacklevel=2,
        )
        return True
    return False


class FixedGaussian:
    """A reference Gaussian for many distances to sample sets; its decomposition made once, when first needed.

    `distance_to_frames` computes the Frechet distance to the Gaussian fitted to (optionally
    weighted) frames without forming a d x d covariance when there are fewer frames than
    dimensions: the non-zero eigenvalues of S1 S2 (S2 = Xc^T Xc / (n - 1)) are those of the
    small symmetric matrix Xc S1 Xc^T / (n - 1), so no square root of S1 is needed either.
    That keeps the value, bootstraps, FAD-inf and leave-one-out cheap for clip-level embedders
    (PANN, CLAP: one 2048/512-d frame per clip). The eigendecomposition (a d x d `eigh`, seconds
    at d = 2048) is only made for the dense route and the Mahalanobis distances; given the
    reference's own `frames` (all of them, fewer than dimensions) it comes from their thin SVD.
    """

    def __init__(self, mean: np.ndarray, cov: np.ndarray, frames: np.ndarray | None = None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.cov = np.asarray(cov, dtype=np.float64)
        self.trace = float(np.trace(self.cov))
        self._frames = None if frames is None else np.asarray(frames, dtype=np.float64)
        self._eig: tuple[np.ndarray, np.ndarray] | None = None
        self._sqrt: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def _decomposition(self) -> tuple[np.ndarray, np.ndarray]:
        if self._eig is None:
            x = self._frames
            if x is not None and 2 <= x.shape[0] <= self.dim:
                # cov = Xc^T Xc / (n - 1): its non-zero eigenpairs are the squared singular values and right
                # singular vectors of Xc / sqrt(n - 1); the null space (eigenvalue 0) is left out
                _, sv, vt = np.linalg.svd((x - self.mean) / math.sqrt(x.shape[0] - 1), full_matrices=False)
                w, v = sv ** 2, vt.T
            else:
                w, v = np.linalg.eigh((self.cov + self.cov.T) / 2.0)
            self._eig = (_clip_rounding(w), v)
        return self._eig

    @property
    def eigvals(self) -> np.ndarray:
        return self._decomposition()[0]

    @property
    def eigvecs(self) -> np.ndarray:
        return self._decomposition()[1]

    @property
    def sqrt(self) -> np.ndarray:
        """S1^(1/2) (symmetric, d x d)."""
        if self._sqrt is None:
            w, v = self._decomposition()
            self._sqrt = (v * np.sqrt(w)) @ v.T
        return self._sqrt

    def distance(self, mean: np.ndarray, cov: np.ndarray) -> float:
        return frechet_distance(self.mean, self.cov, mean, cov, sqrt_sigma1=self.sqrt)

    def distance_to_frames(self, frames: np.ndarray, weights: np.ndarray | None = None) -> float:
        """FD to the Gaussian of `frames` [n, d] (row multiplicities `weights`), ddof=1 like np.cov."""
        x = np.asarray(frames, dtype=np.float64)
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            keep = w > 0
            x, w = x[keep], w[keep]
        else:
            w = np.ones(x.shape[0])
        n = float(w.sum())
        if n < 2:
            return math.nan
        if x.shape[0] < self.dim:  # the n x n route (`FrameSet`)
            return FrameSet(self, x).distance(w)
        m = (w @ x) / n
        xc = (x - m) * np.sqrt(w)[:, None]
        cov = (xc.T @ xc) / (n - 1)
        a = self.sqrt @ cov @ self.sqrt
        tr_sqrt = float(np.sqrt(_clip_rounding(np.linalg.eigvalsh((a + a.T) / 2.0))).sum())
        diff = self.mean - m
        return _assemble(float(diff @ diff), self.trace, float(np.trace(cov)), tr_sqrt)

    def frame_set(self, frames: np.ndarray) -> "FrameSet":
        """Distances to many weightings of one frame set (bootstrap, FAD-inf, leave-one-out)."""
        return FrameSet(self, frames)

    def mahalanobis2(self, points: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances of points [k, d] (pseudo-inverse: eigenvalues < 1e-10 of the largest dropped)."""
        keep = self.eigvals > 1e-10 * max(float(self.eigvals.max()), 1e-300)
        z = (np.atleast_2d(points) - self.mean) @ self.eigvecs[:, keep] / np.sqrt(self.eigvals[keep])
        return np.einsum("ij,ij->i", z, z)


class FrameSet:
    """One set of frames [n, d] against a `FixedGaussian`, for the distance under many row weightings.

    With fewer frames than dimensions the n x n products X0 S1 X0^T and X0 X0^T (X0: the frames
    minus their mean) are made once; each weighting then costs O(n^3) in n alone: the weighted
    Gaussian's centred Gram matrix is a rank-two correction of them. Otherwise each weighting
    goes through `FixedGaussian.distance_to_frames` (which comes back here when the rows it keeps
    are fewer than the dimensions).
    """

    def __init__(self, ref: FixedGaussian, frames: np.ndarray):
        self.ref = ref
        self.frames = np.asarray(frames, dtype=np.float64)
        self.small = self.frames.shape[0] < ref.dim
        if self.small:
            self.center = self.frames.mean(axis=0)
            self.x0 = self.frames - self.center
            self.k = (self.x0 @ ref.cov) @ self.x0.T
            self.h = self.x0 @ self.x0.T

    def distance(self, weights: np.ndarray | None = None) -> float:
        """FD between the reference and the Gaussian of the frames with row multiplicities `weights` (ddof=1)."""
        if not self.small:
            return self.ref.distance_to_frames(self.frames, weights)
        w = np.ones(self.frames.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        n = float(w.sum())
        if n < 2:
            return math.nan
        a = w / n  # the weighted mean is center + a @ x0
        ka, ha = self.k @ a, self.h @ a
        keep = w > 0
        g = self.k - ka[:, None] - ka[None, :] + float(a @ ka)  # (x0_i - m0) S1 (x0_j - m0)
        root = np.sqrt(w[keep])
        g = g[np.ix_(keep, keep)] * root[:, None] * root[None, :] / (n - 1)
        ev = np.linalg.eigvalsh((g + g.T) / 2.0)
        tr2 = (float(w @ np.diag(self.h)) - n * float(a @ ha)) / (n - 1)
        tr_sqrt = float(np.sqrt(_clip_rounding(ev)).sum())
        diff = self.ref.mean - (self.center + a @ self.x0)
        return _assemble(float(diff @ diff), self.ref.trace, tr2, tr_sqrt)
