"""FAD: value, clip bootstrap interval, exact leave-one-out contributions, FAD-inf (fadtk protocol)."""

import math

import numpy as np
import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.metrics.fad import FAD, fit_inverse_n
from magnet_eval.metrics.frechet import GaussianStats, frechet_distance


def _clips(rng, n_clips, frames, d, shift=0.0):
    return [rng.normal(size=(frames, d)) + shift for _ in range(n_clips)]


@pytest.fixture
def ref_stats():
    rng = np.random.default_rng(0)
    return GaussianStats.from_frames(rng.normal(size=(4000, 8)))


def test_value_is_the_frechet_distance_of_pooled_frames(ref_stats):
    rng = np.random.default_rng(1)
    clips = _clips(rng, 30, 20, 8, shift=0.3)
    fad = FAD(ref_stats, n_bootstrap=50)
    fad.update(clips[:10], [f"c{i}" for i in range(10)])
    for i in range(10, 30):
        fad.update(clips[i], f"c{i}")
    res = fad.compute()
    gen = GaussianStats.from_frames(np.concatenate(clips))
    assert res.value == pytest.approx(frechet_distance(ref_stats.mean, ref_stats.cov, gen.mean, gen.cov), rel=1e-10)
    assert res.metric == "fad" and res.n_generated == 30 and res.details["n_frames_generated"] == 600
    assert res.ci_low < res.value < res.ci_high


def test_interval_narrows_with_more_clips_and_tracks_the_shift(ref_stats):
    rng = np.random.default_rng(2)
    widths, values = [], []
    for n in (10, 80):
        fad = FAD(ref_stats, n_bootstrap=100, fad_inf=False)
        fad.update(_clips(rng, n, 10, 8, shift=0.5), [str(i) for i in range(n)])
        r = fad.compute()
        widths.append(r.ci_high - r.ci_low)
        values.append(r.value)
    assert widths[1] < widths[0]
    # 8 dims shifted by 0.5 each: the mean term alone is 2.0
    assert values[1] == pytest.approx(2.0, abs=0.5)


def test_leave_one_out_is_exact_and_finds_the_outlier(ref_stats):
    rng = np.random.default_rng(3)
    clips = _clips(rng, 12, 15, 8)
    clips[7] = clips[7] + 4.0  # the outlier
    ids = [f"id{i}" for i in range(12)]
    fad = FAD(ref_stats, n_bootstrap=0, fad_inf=False)
    fad.update(clips, ids)
    res = fad.compute()
    contrib = res.per_sample["fad_contribution"]
    for i in (0, 7):
        rest = GaussianStats.from_frames(np.concatenate([c for j, c in enumerate(clips) if j != i]))
        brute = res.value - frechet_distance(ref_stats.mean, ref_stats.cov, rest.mean, rest.cov)
        assert contrib[ids[i]] == pytest.approx(brute, rel=1e-8, abs=1e-10)
    assert max(contrib, key=contrib.get) == "id7"
    dist = res.per_sample["fad_clip_distance"]
    assert max(dist, key=dist.get) == "id7"
    # squared Mahalanobis distance of the clip mean under the reference Gaussian
    m = clips[0].mean(axis=0) - ref_stats.mean
    assert dist["id0"] == pytest.approx(float(m @ np.linalg.solve(ref_stats.cov, m)), rel=1e-6)
    assert math.isnan(res.ci_low)  # no bootstrap asked for


def test_leave_one_out_skipped_above_the_cost_limit(ref_stats):
    fad = FAD(ref_stats, n_bootstrap=0, fad_inf=False, loo_max_flops=1)
    fad.update(_clips(np.random.default_rng(4), 3, 5, 8), ["a", "b", "c"])
    res = fad.compute()
    assert "fad_contribution" not in res.per_sample and "loo_note" in res.details
    assert set(res.per_sample["fad_clip_distance"]) == {"a", "b", "c"}


def test_fit_inverse_n_recovers_a_line():
    sizes = np.linspace(500, 5000, 25)
    a, b, r2 = fit_inverse_n(sizes, 1.5 + 300.0 / sizes)
    assert a == pytest.approx(1.5) and b == pytest.approx(300.0) and r2 == pytest.approx(1.0)


def test_fad_inf_follows_fadtk_and_removes_the_small_sample_bias():
    rng = np.random.default_rng(5)
    d = 64
    ref = GaussianStats.from_frames(rng.normal(size=(100000, d)))
    fad = FAD(ref, n_bootstrap=0, seed=1)
    clips = _clips(rng, 100, 50, d, shift=0.15)  # true distance: 64 * 0.15^2 = 1.44
    fad.update(clips, [str(i) for i in range(100)])
    res = fad.compute()
    inf = res.details["fad_inf"]
    assert len(inf["sizes"]) == 25 and inf["sizes"][0] == 500 and inf["sizes"][-1] == 5000
    assert inf["slope"] > 0 and inf["r2"] > 0.9
    # FAD of 500 frames is biased upwards; the extrapolation to n -> inf is closer to the truth
    true = 64 * 0.15 ** 2
    assert abs(inf["value"] - true) < 0.5 * abs(inf["values"][0] - true)
    line = inf["value"] + inf["slope"] / np.asarray(inf["sizes"], float)
    assert np.corrcoef(line, inf["values"])[0, 1] > 0.9
    row = fad.compute_fad_inf()
    assert row.metric == "fad_inf" and row.value == inf["value"]


def test_fad_inf_with_few_frames_lowers_the_smallest_size(ref_stats):
    fad = FAD(ref_stats, n_bootstrap=0)
    fad.update(_clips(np.random.default_rng(6), 10, 20, 8), [str(i) for i in range(10)])
    inf = fad.compute().details["fad_inf"]
    assert inf["sizes"][0] == 50 and "lowered" in inf["note"]


def test_bad_inputs_are_clear_errors(ref_stats):
    fad = FAD(ref_stats)
    with pytest.raises(MagnetEvalError, match="no generated clips"):
        fad.compute()
    with pytest.raises(MagnetEvalError, match="dimension 5"):
        fad.update(np.zeros((3, 5)), "x")
    fad.update(np.zeros((3, 8)), "x")
    with pytest.raises(MagnetEvalError, match="twice"):
        fad.update(np.zeros((3, 8)), "x")


def test_clip_level_embeddings_with_fewer_clips_than_dims():
    """One frame per clip (PANN/CLAP style), 20 clips in 32 dims: the Gram route gives the same numbers."""
    rng = np.random.default_rng(7)
    ref = GaussianStats.from_frames(rng.normal(size=(3000, 32)))
    clips = [rng.normal(size=(1, 32)) + 0.1 for _ in range(20)]
    fad = FAD(ref, n_bootstrap=30)
    fad.update(clips, [f"c{i}" for i in range(20)])
    with pytest.warns(Warning, match="rank deficient"):
        res = fad.compute()
    gen = GaussianStats.from_frames(np.concatenate(clips))
    assert res.value == pytest.approx(frechet_distance(ref.mean, ref.cov, gen.mean, gen.cov), rel=1e-10)
    rest = GaussianStats.from_frames(np.concatenate(clips[1:]))
    brute = res.value - frechet_distance(ref.mean, ref.cov, rest.mean, rest.cov)
    assert res.per_sample["fad_contribution"]["c0"] == pytest.approx(brute, rel=1e-8)
    assert res.details["rank_deficient_generated"] and res.ci_low < res.value < res.ci_high


# ----------------------------------------------------------------------------- intervals that can be (issue 14.6)


def _small_sets(seed: int):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((400, 4))
    clips = [rng.standard_normal((5, 4)) for _ in range(8)]  # drawn like the reference: FAD near 0
    return ref, clips


def test_distance_intervals_are_floored_at_zero_and_contain_the_value():
    """Small sets from the reference's own distribution: the bias shift used to push the lower end below 0."""
    from magnet_eval.metrics.frechet import GaussianStats
    from magnet_eval.metrics.kad import KAD

    below_zero_before = 0
    for seed in range(6):
        ref, clips = _small_sets(seed)
        ids = [str(i) for i in range(len(clips))]
        fad = FAD(GaussianStats.from_frames(ref), n_bootstrap=100, seed=seed, fad_inf=False)
        fad.update(clips, ids)
        kad = KAD(ref, n_bootstrap=100, seed=seed)
        kad.update(clips, ids)
        for r in (fad.compute(), kad.compute()):
            assert r.ci_low <= r.value <= r.ci_high, (r.metric, seed, r.value, r.ci_low, r.ci_high)
            assert r.ci_low >= min(0.0, r.value), (r.metric, seed, r.ci_low)
            assert "floored at 0" in r.details["ci_method"]
            below_zero_before += r.ci_low == 0.0
    assert below_zero_before > 0  # the floor was needed at least once: the test exercises it


def test_distance_interval_rule():
    from magnet_eval.metrics._common import bootstrap_interval, distance_interval

    boots = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1] * 10
    lo, hi = bootstrap_interval(boots, 0.05, 0.9)
    assert lo < 0  # the plain bias-corrected interval goes below zero
    flo, fhi = distance_interval(boots, 0.05, 0.9)
    assert flo == 0.0 and fhi == pytest.approx(hi)
    # a skewed bootstrap whose shifted interval misses the estimate is widened to contain it
    skew = [0.0] * 5 + [10.0] * 95
    slo, shi = distance_interval(skew, 9.0, 0.5)
    assert slo <= 9.0 <= shi
    # KAD's unbiased estimate may be negative: the interval then starts at the estimate
    nlo, nhi = distance_interval([0.1, 0.2, 0.3] * 10, -0.2, 0.9)
    assert nlo == -0.2 and nhi >= -0.2
    assert all(math.isnan(x) for x in distance_interval([1.0], 0.5, 0.9))


def test_set_against_itself_is_flagged():
    from magnet_eval.metrics.frechet import GaussianStats
    from magnet_eval.metrics.kad import KAD

    ref, clips = _small_sets(0)
    ids = [str(i) for i in range(10)]
    same = [ref[i * 40:(i + 1) * 40] for i in range(10)]
    fad = FAD(GaussianStats.from_frames(ref), n_bootstrap=20)
    fad.update(same[::-1], ids)  # the same frames in another order
    assert fad.compute().details["self_comparison"] and fad.compute_fad_inf().details["self_comparison"]
    kad = KAD(ref.astype(np.float32), n_bootstrap=20)  # reference frames stored as float32 in .npz stats
    kad.update(same, ids)
    assert kad.compute().details["self_comparison"]
    other = FAD(GaussianStats.from_frames(ref), n_bootstrap=0)
    other.update(clips, [str(i) for i in range(len(clips))])
    assert not other.compute().details["self_comparison"]
    k2 = KAD(ref, n_bootstrap=0)
    k2.update(same[:-1] + [same[-1] + 1e-3], ids)
    assert not k2.compute().details["self_comparison"]
