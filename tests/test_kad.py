"""KAD: unbiased MMD^2 with a median-bandwidth RBF kernel, x100, against a brute-force reference."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from magnet_eval.errors import MagnetEvalError
from magnet_eval.metrics.kad import KAD, kad_frames, median_bandwidth


def brute_kad(x, y, bw):
    """The definition written out with explicit pair loops (x = reference, y = generated)."""
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * bw * bw))  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return 100 * (xx + yy - 2 * xy)


def test_median_bandwidth_is_the_median_pairwise_distance():
    x = np.random.default_rng(0).normal(size=(50, 6))
    assert median_bandwidth(x) == pytest.approx(np.median(pdist(x)), rel=1e-10)


def test_matches_the_definition():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(25, 5)) + 0.4
    bw = median_bandwidth(x)
    assert kad_frames(x, y) == pytest.approx(brute_kad(x, y, bw), rel=1e-9)


def test_streaming_class_with_clip_blocks_and_tiny_chunks_matches():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4))
    clips = [rng.normal(size=(int(rng.integers(1, 6)), 4)) + 0.3 for _ in range(9)]
    y = np.concatenate(clips)
    for chunk in (64 << 20, 200):  # 200 bytes: one clip per chunk
        kad = KAD(x, n_bootstrap=0, chunk_bytes=chunk)
        kad.update(clips, [f"c{i}" for i in range(9)])
        res = kad.compute()
        assert res.value == pytest.approx(brute_kad(x, y, median_bandwidth(x)), rel=1e-9)
    # leave-one-out contributions are exact
    rest = np.concatenate(clips[1:])
    assert res.per_sample["kad_contribution"]["c0"] == pytest.approx(res.value - brute_kad(x, rest, kad.bandwidth), rel=1e-8)


def test_near_zero_for_the_same_distribution_and_ordered_by_shift():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(600, 8))
    values = []
    for shift in (0.0, 0.3, 1.0):
        kad = KAD(ref, n_bootstrap=100)
        kad.update([rng.normal(size=(10, 8)) + shift for _ in range(40)], [str(i) for i in range(40)])
        values.append(kad.compute())
    assert abs(values[0].value) < values[1].value < values[2].value
    assert values[0].ci_low < 0 < values[0].ci_high or abs(values[0].value) < 0.2
    for r in values:
        assert r.ci_low <= r.value <= r.ci_high


def test_outlier_clip_has_the_largest_contribution():
    rng = np.random.default_rng(4)
    kad = KAD(rng.normal(size=(300, 3)), n_bootstrap=0)
    clips = [rng.normal(size=(5, 3)) for _ in range(10)]
    clips[4] = clips[4] + 5
    kad.update(clips, [f"k{i}" for i in range(10)])
    c = kad.compute().per_sample["kad_contribution"]
    assert max(c, key=c.get) == "k4"


def test_fixed_bandwidth_and_cached_reference_term_are_used():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3))
    a = KAD(x, bandwidth=2.0, n_bootstrap=0)
    a.update(y, "y")
    b = KAD(x, bandwidth=2.0, reference_term=a.reference_term, n_bootstrap=0)
    b.update(y, "y")
    assert a.compute().value == pytest.approx(brute_kad(x, y, 2.0)) == pytest.approx(b.compute().value)


def test_errors():
    with pytest.raises(MagnetEvalError):
        KAD(np.zeros((1, 3)))
    kad = KAD(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(MagnetEvalError, match="dimension"):
        kad.update(np.zeros((2, 4)), "a")
    with pytest.raises(MagnetEvalError, match="no generated clips"):
        kad.compute()


def test_closed_form_leave_one_out_equals_the_naive_loop():
    """The O(C^2) leave-one-out equals recomputing KAD with each clip's weight set to 0 (incl. 1-frame clips)."""
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(50, 3))
    clips = [rng.normal(size=(int(rng.integers(1, 5)), 3)) + 0.2 for _ in range(12)]
    kad = KAD(ref, n_bootstrap=0)
    kad.update(clips, [f"c{i}" for i in range(12)])
    res = kad.compute()
    sizes, k_gg, k_gr = kad._block_sums()
    for i in range(12):
        w = np.ones(12)
        w[i] = 0.0
        naive = res.value - kad._value(w, sizes, k_gg, k_gr)
        assert res.per_sample["kad_contribution"][f"c{i}"] == pytest.approx(naive, rel=1e-9, abs=1e-12)
