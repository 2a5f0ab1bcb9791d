"""Gaussian accumulation and the eigendecomposition Frechet distance (parity with frechet-audio-distance)."""

import warnings

import numpy as np
import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.metrics import frechet as fr
from magnet_eval.metrics.frechet import GaussianAccumulator, GaussianStats, RankDeficientWarning, frechet_distance


def _embeddings(rng, n, d, shift=0.0, scale=1.0):
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


def test_streaming_accumulator_matches_numpy_in_any_batching():
    rng = np.random.default_rng(0)
    x = _embeddings(rng, 1234, 32, shift=1e4)  # large offset: the naive sum-of-squares formula loses digits
    acc = GaussianAccumulator()
    for chunk in np.array_split(x, [1, 2, 100, 101, 700]):
        acc.update(chunk)
    assert acc.count == 1234
    np.testing.assert_allclose(acc.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    a, b = GaussianAccumulator().update(x[:500]), GaussianAccumulator().update(x[500:])
    np.testing.assert_allclose(a.merge(b).cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


def test_accumulator_rejects_dimension_change_and_nan():
    acc = GaussianAccumulator().update(np.zeros((3, 4)))
    with pytest.raises(MagnetEvalError):
        acc.update(np.zeros((3, 5)))
    with pytest.raises(MagnetEvalError):
        acc.update(np.full((2, 4), np.nan))


@pytest.mark.parametrize("d,n1,n2,shift", [(16, 400, 300, 0.3), (128, 2000, 1500, 0.05), (64, 5000, 800, 2.0)])
def test_parity_with_frechet_audio_distance(d, n1, n2, shift):
    from magnet_eval.offline import import_frechet_audio_distance

    fad_lib = import_frechet_audio_distance()
    rng = np.random.default_rng(d)
    x = _embeddings(rng, n1, d)
    y = _embeddings(rng, n2, d, shift=shift, scale=1.3)
    # statistics the way frechet-audio-distance makes them, then both distance routines
    mu1, s1 = fad_lib.FrechetAudioDistance.calculate_embd_statistics(None, x)
    mu2, s2 = fad_lib.FrechetAudioDistance.calculate_embd_statistics(None, y)
    theirs = fad_lib.FrechetAudioDistance.calculate_frechet_distance(None, mu1, s1, mu2, s2)
    ours_stats = GaussianStats.from_frames(x), GaussianStats.from_frames(y)
    ours = frechet_distance(ours_stats[0].mean, ours_stats[0].cov, ours_stats[1].mean, ours_stats[1].cov)
    assert isinstance(ours, float)
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)


def test_closed_form_for_commuting_covariances_including_singular():
    # diagonal covariances: FD = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2, also when some variances are 0
    a = np.array([4.0, 1.0, 0.0, 0.0, 9.0])
    b = np.array([1.0, 0.0, 0.0, 2.0, 9.0])
    mu1, mu2 = np.arange(5.0), np.arange(5.0) + 0.5
    expected = 5 * 0.25 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)
    # rotated into a random basis the answer is unchanged (the covariances still commute)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))
    got_rot = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got_rot == pytest.approx(expected, rel=1e-8)


def test_identical_gaussians_give_zero_never_negative_or_complex():
    x = _embeddings(np.random.default_rng(5), 50, 80)  # rank deficient: 50 frames in 80 dims
    st = GaussianStats.from_frames(x)
    value = frechet_distance(st.mean, st.cov, st.mean, st.cov)
    assert isinstance(value, float) and 0.0 <= value < 1e-8


def test_rank_deficiency_warns():
    st = GaussianStats.from_frames(np.random.default_rng(0).normal(size=(10, 32)))
    assert st.rank_deficient
    with pytest.warns(RankDeficientWarning, match="10 frames in 32 dimensions"):
        assert fr.warn_if_rank_deficient(st, "test set")
    ok = GaussianStats.from_frames(np.random.default_rng(0).normal(size=(100, 32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not fr.warn_if_rank_deficient(ok, "test set")


def test_crosscheck_warns_when_sqrtm_disagrees(monkeypatch):
    st = GaussianStats.from_frames(np.random.default_rng(0).normal(size=(200, 8)))
    other = GaussianStats.from_frames(np.random.default_rng(1).normal(size=(200, 8)) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the two routes agree on a well-conditioned case
        frechet_distance(st.mean, st.cov, other.mean, other.cov, crosscheck=True)
    monkeypatch.setattr(fr, "frechet_distance_sqrtm", lambda *a: 1e6)
    with pytest.warns(RuntimeWarning, match="sqrtm"):
        frechet_distance(st.mean, st.cov, other.mean, other.cov, crosscheck=True)


def test_precomputed_reference_sqrt_gives_the_same_value():
    rng = np.random.default_rng(9)
    a, b = GaussianStats.from_frames(_embeddings(rng, 300, 20)), GaussianStats.from_frames(_embeddings(rng, 300, 20, 0.2))
    plain = frechet_distance(a.mean, a.cov, b.mean, b.cov)
    fast = frechet_distance(a.mean, a.cov, b.mean, b.cov, sqrt_sigma1=fr._psd_sqrt(a.cov))
    assert fast == pytest.approx(plain, rel=1e-12)


def test_mismatched_dimensions_are_a_clear_error():
    with pytest.raises(MagnetEvalError, match="different dimensions"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


@pytest.mark.parametrize("n", [30, 300])  # fewer frames than dims (Gram route) and more
def test_fixed_gaussian_distance_to_weighted_frames(n):
    rng = np.random.default_rng(n)
    ref = GaussianStats.from_frames(_embeddings(rng, 2000, 64))
    fixed = fr.FixedGaussian(ref.mean, ref.cov)
    x = _embeddings(rng, n, 64, shift=0.2)
    w = rng.integers(0, 3, size=n)
    copies = GaussianStats.from_frames(np.repeat(x, w, axis=0))
    expected = frechet_distance(ref.mean, ref.cov, copies.mean, copies.cov)
    assert fixed.distance_to_frames(x, w) == pytest.approx(expected, rel=1e-9)
    assert fixed.frame_set(x).distance(w) == pytest.approx(expected, rel=1e-9)  # n x n products made once
    assert fixed.frame_set(x).small == (n < 64)
    plain = GaussianStats.from_frames(x)
    assert fixed.distance_to_frames(x) == pytest.approx(frechet_distance(ref.mean, ref.cov, plain.mean, plain.cov), rel=1e-9)


def test_a_rank_deficient_reference_decomposed_from_its_frames_matches_eigh():
    """The SVD of the reference's own frames gives the eigh route's square root and Mahalanobis distances,
    and the Gram-route distance needs neither (no decomposition made)."""
    rng = np.random.default_rng(3)
    frames = _embeddings(rng, 40, 96)
    ref = GaussianStats.from_frames(frames)
    from_frames = fr.FixedGaussian(ref.mean, ref.cov, frames=frames)
    from_cov = fr.FixedGaussian(ref.mean, ref.cov)
    x = _embeddings(rng, 25, 96, shift=0.3)
    gen = GaussianStats.from_frames(x)
    value = from_frames.distance_to_frames(x)
    assert from_frames._eig is None  # the value came from the 25 x 25 Gram matrix alone
    assert value == pytest.approx(frechet_distance(ref.mean, ref.cov, gen.mean, gen.cov), rel=1e-9)
    assert np.allclose(from_frames.sqrt, from_cov.sqrt, atol=1e-9)
    points = _embeddings(rng, 5, 96)
    assert np.allclose(from_frames.mahalanobis2(points), from_cov.mahalanobis2(points), rtol=1e-6)
    dense = _embeddings(rng, 200, 96, shift=0.3)  # more frames than dimensions: the dense route, same answer
    dstats = GaussianStats.from_frames(dense)
    assert from_frames.distance_to_frames(dense) == pytest.approx(
        frechet_distance(ref.mean, ref.cov, dstats.mean, dstats.cov), rel=1e-9)
