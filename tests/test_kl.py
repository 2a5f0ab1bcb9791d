"""KL (audiocraft protocol): segmentation, averaging, both directions, pairing by id, multi-label tags."""

import numpy as np
import pytest
import torch

from magnet_eval.errors import MagnetEvalError
from magnet_eval.metrics.kl import KL, clip_probabilities, kl_divergence, normalize_distribution, segments


def test_kl_matches_audiocrafts_formula():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(527), size=6)
    q = rng.dirichlet(np.ones(527) * 0.3, size=6)
    p[0, :10] = 0.0  # 0 log 0 = 0
    p[0] /= p[0].sum()
    expected = torch.nn.functional.kl_div((torch.tensor(q) + 1e-6).log(), torch.tensor(p), reduction="none").sum(-1)
    np.testing.assert_allclose(kl_divergence(p, q), expected.numpy(), rtol=1e-10)
    # eps on the generated side makes KL(p || p) about -n_classes * 1e-6, as in audiocraft
    assert np.allclose(kl_divergence(p, p), 0.0, atol=1e-3)


def test_one_kl_eps_zero_is_the_plain_formula_mirdd_uses():
    """kl.py and mirdd.py share this one KL; MIRDD passes eps=0 (its smoothing keeps q > 0)."""
    import math

    from magnet_eval.metrics.mirdd import descriptor_kl

    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(25), size=4)
    p[1, :5] = 0.0
    p[1] /= p[1].sum()
    q = rng.dirichlet(np.ones(25), size=4)
    plain = [sum(a * math.log(a / b) for a, b in zip(pr, qr) if a > 0) for pr, qr in zip(p, q)]
    np.testing.assert_allclose(kl_divergence(p, q, eps=0.0), plain, rtol=1e-12)
    assert not np.allclose(kl_divergence(p, q), plain, rtol=1e-9, atol=0)  # the default eps is not a no-op
    # MIRDD's per-descriptor KL: additive smoothing 0.01 per bin, KL(reference || generated), no eps
    ref_mass, gen_mass = np.eye(3)[[0, 0, 1, 2]], np.eye(3)[[1, 1, 2, 2]]
    pr = (ref_mass.sum(0) + 0.01) / (4 + 3 * 0.01)
    qg = (gen_mass.sum(0) + 0.01) / (4 + 3 * 0.01)
    assert descriptor_kl(ref_mass, gen_mass) == pytest.approx(float(np.sum(pr * np.log(pr / qg))), rel=1e-12)


def test_segments_without_padding_and_short_tails_dropped():
    sr = 1000
    wav = np.zeros(int(2.5 * sr))
    assert [len(s) for s in segments(wav, sr, 1.0)] == [1000, 1000, 500]
    assert [len(s) for s in segments(np.zeros(2150), sr, 1.0)] == [1000, 1000]  # 0.15 s tail dropped
    assert [len(s) for s in segments(np.zeros(2151), sr, 1.0)] == [1000, 1000, 151]
    assert segments(np.zeros(100), sr, None) == []


class _Fixed:
    """Returns a fixed distribution per call and records the segment lengths it saw."""

    sample_rate = 1000

    def __init__(self, rows, segment_seconds=None, multilabel=False):
        self.rows = rows
        self.segment_seconds = segment_seconds
        self.multilabel = multilabel
        self.seen = []

    def probs(self, audio, sr):
        self.seen.append(len(audio))
        return self.rows[len(self.seen) - 1]


def test_clip_probabilities_average_segments():
    rows = [np.array([[0.5, 0.5, 0.0]]), np.array([[0.1, 0.1, 0.8]])]
    clf = _Fixed(rows, segment_seconds=1.0)
    p = clip_probabilities(clf, np.zeros(1800), 1000)
    assert clf.seen == [1000, 800]
    np.testing.assert_allclose(p, [0.3, 0.3, 0.4])
    with pytest.raises(MagnetEvalError, match="shorter than"):
        clip_probabilities(_Fixed(rows, 1.0), np.zeros(100), 1000)


def test_multilabel_posteriors_are_renormalised():
    sig = np.array([[0.9, 0.9, 0.2, 0.0]])  # independent sigmoids: sums to 2.0
    p = clip_probabilities(_Fixed([sig], multilabel=True), np.zeros(3000), 1000)
    np.testing.assert_allclose(p, sig[0] / 2.0)
    np.testing.assert_allclose(normalize_distribution(np.zeros(4)), np.full(4, 0.25))


def test_both_directions_per_sample_and_interval():
    rng = np.random.default_rng(1)
    ref = rng.dirichlet(np.ones(10), size=20)
    gen = rng.dirichlet(np.ones(10) * 0.2, size=20)
    kl = KL("kl_musicnn", n_bootstrap=500)
    ids = [f"p{i}" for i in range(20)]
    kl.update(ids[:5], gen[:5], ref[:5])
    kl.update(ids[5:], gen[5:], ref[5:])
    fwd, rev = kl.compute()
    assert (fwd.metric, rev.metric) == ("kl_musicnn", "kl_musicnn_rev")
    assert fwd.value == pytest.approx(kl_divergence(ref, gen).mean())
    assert rev.value == pytest.approx(kl_divergence(gen, ref).mean())
    assert fwd.value != pytest.approx(rev.value)
    assert fwd.per_sample["kl_musicnn"]["p3"] == pytest.approx(kl_divergence(ref[3], gen[3]))
    assert fwd.ci_low < fwd.value < fwd.ci_high
    assert fwd.details["direction"] == "KL(reference || generated)"


def test_identical_distributions_give_zero_and_errors_are_clear():
    p = np.random.default_rng(2).dirichlet(np.ones(5), size=3)
    kl = KL()
    kl.update(["a", "b", "c"], p, p)
    assert kl.compute()[0].value == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(MagnetEvalError, match="twice"):
        kl.update(["a"], p[:1], p[:1])
    with pytest.raises(MagnetEvalError):
        KL().update(["x"], p[:1], p[:1, :4])
    with pytest.raises(MagnetEvalError, match="no paired"):
        KL().compute()
