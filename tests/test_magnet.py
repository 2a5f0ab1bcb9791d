"""MAGNeT decoding: schedules against hand-computed values, masking per step, CFG/temperature in the loop, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from magnet_eval.models.magnet import (DONT_REMASK, MagnetDecoding, MagnetLM, cfg_schedule, least_probable_spans_mask,
                                       mask_rates, num_masked_schedule, temperature_schedule)
from magnet_eval.models.sampling import make_generators
from magnet_eval.modules.transformer import MultiheadAttention

from helpers import seeded_lm, tiny_lm_config

CARD = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_magnet(seed: int = 0, **kw) -> MagnetLM:
    return seeded_lm(tiny_lm_config("magnet", card=CARD, span_len=3, **kw), seed).eval()


# ---- schedules, by hand ---------------------------------------------------------------------------
def test_mask_schedule_by_hand():
    # 10 steps, 166 spans (10 s at 50 Hz = 500 frames -> 498 -> 166 spans of 3):
    # p_i = cos(pi/2 * i/9) = cos(0, 10, 20, ..., 90 degrees); masked = max(int(p_i * 166), 1)
    # 166*cos(10deg)=163.5 -> 163, 155.99 -> 155, 143.8 -> 143, 127.2 -> 127, 106.7 -> 106,
    # 166*cos(60deg) = 83 exactly, which float32 (as audiocraft computes it) gives as 82.99999 -> 82,
    # 56.8 -> 56, 28.8 -> 28, 0 -> 1
    assert num_masked_schedule(10, 166) == [166, 163, 155, 143, 127, 106, 82, 56, 28, 1]
    # 5 steps over 10 spans: cos(0, 22.5, 45, 67.5, 90 deg) * 10 = 10, 9.24, 7.07, 3.83, 0
    assert num_masked_schedule(5, 10) == [10, 9, 7, 3, 1]
    assert num_masked_schedule(1, 10) == [10]
    rates = mask_rates(3)
    assert rates[0] == 1.0 and rates[1] == pytest.approx(math.sqrt(0.5), abs=1e-6) and abs(rates[2]) < 1e-6


def test_cfg_and_temperature_schedules_by_hand():
    # coefficient = p * 10 + (1 - p) * 1 = 1 + 9p
    coefs = cfg_schedule(10, 10.0, 1.0)
    for got, want in zip(coefs, [10.0, 9.8633, 9.4572, 8.7942, 7.8944, 6.7851, 5.5, 4.0782, 2.5628, 1.0]):
        assert got == pytest.approx(want, abs=1e-3)
    # temperature 3 * steps_left / 10 for steps_left = 9..0, floor 0.01
    temps = temperature_schedule(10, 3.0)
    for got, want in zip(temps, [2.7, 2.4, 2.1, 1.8, 1.5, 1.2, 0.9, 0.6, 0.3, 0.01]):
        assert got == pytest.approx(want, abs=1e-9)
    assert temperature_schedule(3, 2.0, anneal=False) == [2.0, 2.0, 2.0]


def test_default_decoding_is_audiocrafts():
    d = MagnetDecoding()
    assert d.decoding_steps == [20, 10, 10, 10] and d.temperature == 3.0 and d.top_p == 0.9 and d.top_k == 0
    assert (d.max_cfg_coef, d.min_cfg_coef, d.span_scoring, d.span_arrangement) == (10.0, 1.0, "max", "nonoverlap")
    with pytest.raises(ValueError):
        MagnetDecoding(span_scoring="mean")
    with pytest.raises(ValueError):
        MagnetDecoding(span_arrangement="random")


def test_stride1_span_selection_by_hand():
    scores = torch.tensor([0, 0, 5, 5, 5, 0, 4, 4, 4, 0], dtype=torch.float)
    # windows of 3 ranked: start 2 (15), start 6 (12), then 10s; two spans cover 6 tokens, a third would make 7
    m = least_probable_spans_mask(scores, 6, 3)
    assert m.nonzero().flatten().tolist() == [2, 3, 4, 6, 7, 8]
    assert least_probable_spans_mask(scores, 2, 3).nonzero().flatten().tolist() == [2, 3, 4]  # at least one span
    kept = scores.clone()
    kept[3] = DONT_REMASK  # a kept token is never part of a chosen window when others exist
    assert not least_probable_spans_mask(kept, 3, 3)[3]


# ---- the generation loop ----------------------------------------------------------------------------
def _capture_inputs(lm):
    seen = []
    lm.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    return seen


def test_masked_spans_per_step_stage_order_and_no_remasking():
    lm = tiny_magnet()
    seen = _capture_inputs(lm)
    cond = lm.condition(["a", "b"])
    trace = []
    dec = MagnetDecoding(decoding_steps=[5, 3, 2, 2])
    codes = lm.generate(cond, 2, 31, dec, generators=make_generators([1, 2]), trace=trace)
    assert codes.shape == (2, 4, 30)  # cut to a multiple of the span length, as audiocraft
    assert (codes < CARD).all() and (codes >= 0).all()
    assert len(seen) == 12 == lm.last_stats["forward_passes"] == lm.last_stats["decoding_steps"]
    expected_spans = [10, 9, 7, 3, 1] + [10, 7, 1] + [10, 1] + [10, 1]
    stages = [0] * 5 + [1] * 3 + [2] * 2 + [3] * 2
    assert [t["n_masked"] for t in trace] == expected_spans and [t["stage"] for t in trace] == stages
    prev_mask = None
    for x, n, stage in zip(seen, expected_spans, stages):
        assert x.shape[0] == 4  # conditional + unconditional rows in one batch
        assert torch.equal(x[:2], x[2:])
        masked = x[:2, stage] == CARD
        assert masked.sum(-1).tolist() == [3 * n, 3 * n]  # n spans of 3 frames re-masked
        assert (masked.view(2, 10, 3).all(-1) == masked.view(2, 10, 3).any(-1)).all()  # whole chunks
        assert not (x[:2, :stage] == CARD).any() and (x[:2, stage + 1:] == CARD).all()
        if prev_mask is not None and prev_mask[1] == stage:
            assert not (masked & ~prev_mask[0]).any()  # kept spans are never re-masked
        prev_mask = (masked, stage)


def test_cfg_and_temperature_applied_in_the_loop(monkeypatch):
    lm = tiny_magnet()
    B, T = 2, 12
    torch.manual_seed(3)
    c_logits = torch.randn(B, 4, T, CARD)
    u_logits = torch.randn(B, 4, T, CARD)

    def fake_forward(codes, condition=None, stage=None, *, cross_kv=None, cache=None, codebooks=None):
        assert codes.shape[0] == 2 * B and cross_kv is not None and list(codebooks) == [stage]
        return torch.cat([c_logits, u_logits], dim=0)[:, codebooks]

    monkeypatch.setattr(lm, "forward", fake_forward)
    captured = []
    real = MagnetLM._sample_masked

    def spy(probs, token_mask, dec, *rest):
        captured.append(probs.clone())
        return real(probs, token_mask, dec, *rest)

    monkeypatch.setattr(MagnetLM, "_sample_masked", staticmethod(spy))
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 3], temperature=2.0, max_cfg_coef=7.0, min_cfg_coef=2.0)
    trace = []
    lm.generate((torch.randn(B, 3, 32), torch.ones(B, 3)), B, T, dec, generators=make_generators([5, 6]), trace=trace)
    assert len(captured) == 11
    for probs, t in zip(captured, trace):
        n = dec.decoding_steps[t["stage"]]
        p = math.cos(math.pi / 2 * t["step"] / (n - 1)) if n > 1 else 1.0
        coef = p * 7.0 + (1 - p) * 2.0
        temp = max(2.0 * (n - 1 - t["step"]) / n, 0.01)
        assert t["cfg_coef"] == pytest.approx(coef, abs=1e-5) and t["temperature"] == pytest.approx(temp)
        s = t["stage"]
        want = torch.softmax((u_logits[:, s] + coef * (c_logits[:, s] - u_logits[:, s])) / temp, dim=-1)
        assert torch.allclose(probs, want, atol=1e-4)


def test_cross_attention_kv_computed_once_per_generation(monkeypatch):
    lm = tiny_magnet()
    calls = []
    real = MultiheadAttention.project_kv
    monkeypatch.setattr(MultiheadAttention, "project_kv", lambda self, src: calls.append(1) or real(self, src))
    lm.generate(lm.condition(["x"]), 1, 9, MagnetDecoding(decoding_steps=[3, 2, 2, 2]))
    assert len(calls) == lm.cfg.num_layers  # once per layer, not once per step


def test_same_seed_same_tokens_and_batch_independence():
    lm = tiny_magnet()
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2])
    a = lm.generate(lm.condition(["lofi piano", "rock"]), 2, 15, dec, generators=make_generators([7, 8]))
    b = lm.generate(lm.condition(["lofi piano", "rock"]), 2, 15, dec, generators=make_generators([7, 8]))
    c = lm.generate(lm.condition(["lofi piano", "rock"]), 2, 15, dec, generators=make_generators([9, 8]))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])
    alone = lm.generate(lm.condition(["lofi piano"]), 1, 15, dec, generators=make_generators([7]))
    assert torch.equal(alone[0], a[0])


@pytest.mark.parametrize("scoring,arrangement", [("prod", "nonoverlap"), ("max", "stride1"), ("prod", "stride1")])
def test_other_span_scorings_and_arrangements(scoring, arrangement):
    lm = tiny_magnet()
    seen = _capture_inputs(lm)
    dec = MagnetDecoding(decoding_steps=[5, 2, 2, 2], span_scoring=scoring, span_arrangement=arrangement,
                         top_p=0.0, top_k=5)
    codes = lm.generate(lm.condition(["a"]), 1, 20, dec, generators=make_generators([0]))
    T = 18 if arrangement == "nonoverlap" else 20
    assert codes.shape == (1, 4, T) and (codes < CARD).all()
    if arrangement == "stride1":
        targets = num_masked_schedule(5, 20)  # tokens, not spans
        for x, target in zip(seen[:5], targets):
            n = int((x[0, 0] == CARD).sum())
            assert 3 <= n <= max(target, 3)
        assert int((seen[0][0, 0] == CARD).sum()) == 20  # everything masked at the first step


def test_unconditional_generation_has_no_cfg_batch():
    lm = tiny_magnet()
    seen = _capture_inputs(lm)
    codes = lm.generate(None, 2, 9, MagnetDecoding(decoding_steps=[2, 1, 1, 1]), generators=make_generators([0, 1]))
    assert codes.shape == (2, 4, 9) and all(x.shape[0] == 2 for x in seen)
    with pytest.raises(ValueError):
        lm.generate(None, 1, 9, MagnetDecoding(decoding_steps=[2, 1, 1]))
