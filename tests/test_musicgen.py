"""MusicGen decoding: KV-cache steps agree with full recomputation, delay pattern, CFG batch, seeds, sampling."""

from __future__ import annotations

import pytest
import torch

from magnet_eval.models.lm import LMConfig
from magnet_eval.models.musicgen import MusicGenDecoding, MusicGenLM
from magnet_eval.models.sampling import make_generators, top_k_filter, top_p_filter
from magnet_eval.modules.transformer import MultiheadAttention

from helpers import seeded_lm, tiny_lm_config

CARD = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_musicgen(seed: int = 0) -> MusicGenLM:
    return seeded_lm(tiny_lm_config("musicgen", card=CARD), seed).eval()


def test_defaults_are_audiocrafts():
    d = MusicGenDecoding()
    assert (d.top_k, d.top_p, d.temperature, d.cfg_coef, d.use_sampling) == (250, 0.0, 1.0, 3.0, True)


def test_greedy_cached_decoding_equals_full_recomputation_with_cfg():
    lm = tiny_musicgen()
    B, T = 2, 10
    cond = lm.condition(["lofi piano", "fast drums"])
    codes = lm.generate(cond, B, T, MusicGenDecoding(use_sampling=False, cfg_coef=2.5))
    assert codes.shape == (B, 4, T) and (codes < CARD).all() and (codes >= 0).all()
    assert lm.last_stats["forward_passes"] == T + 3 == lm.last_stats["decoding_steps"]
    # rebuild the delayed sequence and recompute every step without a cache
    seq, mask = lm.pattern.build(codes, lm.special_token_id)
    with torch.no_grad():
        c = lm(seq, cond)
        u = lm(seq, None)
    guided = u + 2.5 * (c - u)
    pred = guided.argmax(-1)  # step s predicts step s + 1
    for s in range(1, seq.shape[-1]):
        for q in range(4):
            if mask[q, s]:
                assert seq[0, q, s] == pred[0, q, s - 1] and seq[1, q, s] == pred[1, q, s - 1]


def test_delay_pattern_and_doubled_batch_in_generation(monkeypatch):
    lm = tiny_musicgen()
    seen = []
    lm.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    lm.generate(lm.condition(["a"]), 1, 6, MusicGenDecoding())
    assert len(seen) == 6 + 3
    assert all(x.shape == (2, 4, 1) for x in seen)  # one new step per pass, cond + uncond rows
    assert (seen[0] == CARD).all()  # the initial all-special step
    # step 1 holds frame 0 of codebook 0 only; codebook 3 starts at step 4
    assert (seen[1][:, 0] != CARD).all() and (seen[1][:, 1:] == CARD).all()
    assert (seen[4][:, 3] != CARD).all()


def test_cross_attention_kv_once_and_seeds(monkeypatch):
    lm = tiny_musicgen()
    calls = []
    real = MultiheadAttention.project_kv
    monkeypatch.setattr(MultiheadAttention, "project_kv", lambda self, src: calls.append(1) or real(self, src))
    cond = lm.condition(["lofi piano", "rock"])
    a = lm.generate(cond, 2, 12, MusicGenDecoding(), generators=make_generators([1, 2]))
    assert len(calls) == lm.cfg.num_layers
    b = lm.generate(cond, 2, 12, MusicGenDecoding(), generators=make_generators([1, 2]))
    c = lm.generate(cond, 2, 12, MusicGenDecoding(), generators=make_generators([3, 2]))
    assert torch.equal(a, b) and not torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])


def test_top_k_and_top_p_filters_by_hand():
    probs = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    assert torch.allclose(top_k_filter(probs, 2), torch.tensor([[0.0, 4 / 7, 0.0, 3 / 7]]))
    # nucleus 0.5: 0.4 is kept (nothing before it), 0.3 is kept (0.4 before it <= 0.5), 0.2 dropped (0.7 > 0.5)
    assert torch.allclose(top_p_filter(probs, 0.5), torch.tensor([[0.0, 4 / 7, 0.0, 3 / 7]]))
    assert torch.allclose(top_p_filter(probs, 0.35), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    assert torch.allclose(top_p_filter(probs, 0.95), probs)


def test_top_p_filter_is_the_stable_argsort_nucleus_bit_for_bit():
    """The CPU nucleus (sorted values only) keeps exactly the tokens the stable argsort formulation keeps:
    flat and peaked rows, ties at the boundary (broken by token id), zeros, one-hot rows, 3-d input, NaN."""
    from magnet_eval.models.sampling import _nucleus_by_argsort

    g = torch.Generator().manual_seed(0)
    cases = [torch.softmax(torch.randn(400, 512, generator=g) * s, -1) for s in (0.3, 1.0, 4.0)]
    cases.append(torch.softmax((torch.randn(400, 32, generator=g) * 2).round(), -1))  # many exact ties
    cases.append(torch.full((3, 16), 1 / 16))
    cases.append(torch.nn.functional.one_hot(torch.arange(8) % 5, 5).float())
    zeros = torch.softmax(torch.randn(50, 64, generator=g), -1)
    zeros[:, 3:30] = 0
    cases.append(zeros / zeros.sum(-1, keepdim=True))
    cases.append(torch.softmax(torch.randn(2, 3, 100, generator=g), -1))
    nan = torch.softmax(torch.randn(4, 20, generator=g), -1)
    nan[1, 2] = float("nan")
    cases.append(nan)
    for probs in cases:
        for p in (0.0, 0.3, 0.5, 0.9, 0.999, 1.0):
            ref = _nucleus_by_argsort(probs, p)
            ref = ref / ref.sum(dim=-1, keepdim=True)
            got = top_p_filter(probs, p)
            assert torch.equal(torch.nan_to_num(got, 7.0), torch.nan_to_num(ref, 7.0)), (probs.shape, p)
    # a tie at the boundary goes to the lower token id
    assert torch.equal(top_p_filter(torch.tensor([[0.25, 0.5, 0.25]]), 0.6), torch.tensor([[1 / 3, 2 / 3, 0.0]]))


def test_top_k_restricts_the_sampled_tokens():
    lm = tiny_musicgen()
    cond = lm.condition(["a"])
    codes = lm.generate(cond, 1, 8, MusicGenDecoding(top_k=1, cfg_coef=3.0), generators=make_generators([4]))
    greedy = lm.generate(cond, 1, 8, MusicGenDecoding(use_sampling=False, cfg_coef=3.0))
    assert torch.equal(codes, greedy)  # top-1 sampling is greedy decoding


def test_needs_delay_pattern_and_causality():
    with pytest.raises(ValueError):
        MusicGenLM(LMConfig(kind="musicgen", dim=32, num_heads=4, num_layers=1, causal=False, pattern="delay"))
