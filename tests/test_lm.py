"""The shared transformer LM: positions, masks, attention, KV cache, cross-attention K/V, patterns, key names."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from magnet_eval.models.build import build_lm
from magnet_eval.models.lm import LMConfig, LMModel
from magnet_eval.modules.patterns import DelayPattern, ParallelPattern, get_pattern
from magnet_eval.modules.transformer import (KVCache, MultiheadAttention, create_sin_embedding,
                                             restricted_context_mask)

from helpers import tiny_lm_config


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_cfg(kind: str = "magnet", **kw) -> LMConfig:
    return tiny_lm_config(kind, **{"card": 64, **kw})


def test_sin_embedding_is_cos_then_sin_with_max_period_10000():
    dim = 8
    pos = torch.tensor([0, 1, 7]).view(1, -1, 1)
    emb = create_sin_embedding(pos, dim)
    half = dim // 2
    for j, p in enumerate([0, 1, 7]):
        for i in range(half):
            phase = p / (10000.0 ** (i / (half - 1)))
            assert emb[0, j, i].item() == pytest.approx(math.cos(phase), abs=1e-6)
            assert emb[0, j, half + i].item() == pytest.approx(math.sin(phase), abs=1e-6)


def test_restricted_context_mask_stage0_full_and_band_of_11():
    lm = LMModel(tiny_cfg())
    assert lm.attn_mask(0, 40, "cpu") is None and lm.attn_mask(None, 40, "cpu") is None
    for stage in (1, 2, 3):
        m = lm.attn_mask(stage, 40, "cpu")
        assert m.dtype == torch.bool and m.shape == (40, 40)
        assert m[20].sum().item() == 11  # |q-k| <= 5: 11 keys for a query away from the ends
        assert m[20, 15] and m[20, 25] and not m[20, 14] and not m[20, 26]
        assert m[0].sum().item() == 6 and m[39].sum().item() == 6
        assert torch.equal(m, m.T)  # a band, not a causal mask
    assert torch.equal(restricted_context_mask(5, 1), torch.tensor(
        [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]], dtype=torch.bool))


def test_banded_attention_equals_naive_softmax_with_minus_inf_outside_band():
    torch.manual_seed(0)
    att = MultiheadAttention(16, 4)
    x = torch.randn(2, 12, 16)
    mask = restricted_context_mask(12, 2)
    out = att(x, attn_mask=mask)
    # naive reference
    q, k, v = F.linear(x, att.in_proj_weight).chunk(3, dim=-1)
    split = lambda t: t.view(2, 12, 4, 4).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    w = (q @ k.transpose(-1, -2)) / 2.0
    w = w.masked_fill(~mask, float("-inf")).softmax(-1)
    ref = att.out_proj((w @ v).transpose(1, 2).reshape(2, 12, 16))
    assert torch.allclose(out, ref, atol=1e-5)


def test_restricted_context_limits_the_receptive_field():
    torch.manual_seed(0)
    lm = LMModel(tiny_cfg()).eval()  # 2 layers, context 5: frame 0 can reach at most frame 10
    codes = torch.randint(0, 64, (1, 4, 30))
    other = codes.clone()
    other[:, :, 0] = (other[:, :, 0] + 1) % 64
    with torch.no_grad():
        a1, b1 = lm(codes, stage=1), lm(other, stage=1)
        a0, b0 = lm(codes, stage=0), lm(other, stage=0)
    diff1 = (a1 - b1).abs().amax(dim=(0, 1, 3))
    assert (diff1[:11] > 0).all() and (diff1[11:] == 0).all()
    assert ((a0 - b0).abs().amax(dim=(0, 1, 3)) > 0).all()  # stage 0 attends everywhere


def test_none_condition_equals_zero_condition_and_cross_kv_once():
    torch.manual_seed(0)
    lm = LMModel(tiny_cfg()).eval()
    codes = torch.randint(0, 65, (2, 4, 9))
    cond = torch.randn(2, 5, 32)
    with torch.no_grad():
        none = lm(codes, None)
        zero = lm(codes, (torch.zeros_like(cond), torch.zeros(2, 5)))
        full = lm(codes, (cond, torch.ones(2, 5)))
        pre = lm(codes, None, cross_kv=lm.cross_kv((cond, torch.ones(2, 5))))
    assert torch.allclose(none, zero, atol=1e-6)
    assert torch.allclose(full, pre, atol=1e-6)
    assert not torch.allclose(full, none, atol=1e-3)


def test_kv_cache_decoding_matches_full_causal_forward():
    torch.manual_seed(0)
    lm = LMModel(tiny_cfg("musicgen")).eval()
    seq = torch.randint(0, 65, (2, 4, 13))
    cond = (torch.randn(2, 3, 32), torch.ones(2, 3))
    with torch.no_grad():
        full = lm(seq, cond)
        kv = lm.cross_kv(cond)
        cache = KVCache(max_len=13)
        steps = [lm(seq[:, :, :4], None, cross_kv=kv, cache=cache)]  # a prefix, then one frame at a time
        steps += [lm(seq[:, :, t:t + 1], None, cross_kv=kv, cache=cache) for t in range(4, 13)]
    assert cache.offset == 13
    assert torch.allclose(torch.cat(steps, dim=2), full, atol=1e-5)


def test_delay_pattern_layout_by_hand():
    pat = DelayPattern([0, 1, 2, 3])
    codes = torch.arange(1, 13).view(1, 4, 3) * 10  # q0: 10 20 30, q1: 40 50 60, ...
    seq, mask = pat.build(codes, special=-1)
    S = -1
    assert seq.shape == (1, 4, 3 + 3 + 1)
    assert seq[0].tolist() == [
        [S, 10, 20, 30, S, S, S],
        [S, S, 40, 50, 60, S, S],
        [S, S, S, 70, 80, 90, S],
        [S, S, S, S, 100, 110, 120],
    ]
    assert torch.equal(mask, seq[0] != S)
    back, vmask = pat.revert(seq)
    assert torch.equal(back, codes) and vmask.all()
    valid, _ = pat.build(codes, special=-1, valid_only=True)
    assert torch.equal(valid, seq[..., :4])


def test_delay_pattern_revert_logits_alignment_and_mask():
    pat = DelayPattern([0, 1, 2, 3])
    T = 5
    S = T + 1
    logits = torch.arange(S, dtype=torch.float).view(1, 1, S, 1).expand(2, 4, S, 3).clone()
    out, mask = pat.revert_logits(logits, T)
    for q in range(4):
        for t in range(T):
            if t + q < T:
                assert mask[q, t] and out[0, q, t, 0].item() == t + q  # prediction made at step t + delay
            else:
                assert not mask[q, t] and math.isnan(out[0, q, t, 0].item())


def test_get_pattern():
    assert isinstance(get_pattern("parallel", 4), ParallelPattern)
    assert get_pattern("delay", 4).delays == (0, 1, 2, 3)
    with pytest.raises(ValueError):
        get_pattern("unroll", 4)


def test_state_dict_keys_are_audiocraft_names():
    lm = build_lm(tiny_cfg())
    keys = set(lm.state_dict())
    expected = {"condition_provider.conditioners.description.output_proj.weight",
                "condition_provider.conditioners.description.output_proj.bias", "out_norm.weight", "out_norm.bias"}
    for k in range(4):
        expected |= {f"emb.{k}.weight", f"linears.{k}.weight"}
    for i in range(2):
        p = f"transformer.layers.{i}."
        expected |= {p + "self_attn.in_proj_weight", p + "self_attn.out_proj.weight",
                     p + "cross_attention.in_proj_weight", p + "cross_attention.out_proj.weight",
                     p + "linear1.weight", p + "linear2.weight"}
        expected |= {p + f"{n}.{w}" for n in ("norm1", "norm2", "norm_cross") for w in ("weight", "bias")}
    assert keys == expected
    sd = lm.state_dict()
    assert sd["emb.0.weight"].shape == (65, 32) and sd["linears.3.weight"].shape == (64, 32)
    assert sd["transformer.layers.0.linear1.weight"].shape == (128, 32)
    assert sd["condition_provider.conditioners.description.output_proj.weight"].shape == (32, 24)


def test_compute_predictions_parallel_is_forward_and_delay_masks_tail():
    torch.manual_seed(0)
    mag = LMModel(tiny_cfg()).eval()
    codes = torch.randint(0, 64, (2, 4, 8))
    with torch.no_grad():
        logits, mask = mag.compute_predictions(codes)
        assert torch.equal(logits, mag(codes)) and mask.all()
        mg = LMModel(tiny_cfg("musicgen")).eval()
        logits, mask = mg.compute_predictions(codes)
    assert logits.shape == (2, 4, 8, 64) and mask.shape == (2, 4, 8)
    assert mask[0, 3, :5].all() and not mask[0, 3, 5:].any()
    assert torch.isnan(logits[~mask]).all() and not torch.isnan(logits[mask]).any()


def test_condition_from_texts_random_encoder_and_null():
    lm = LMModel(tiny_cfg())
    cond, mask = lm.condition(["lofi piano", None, "lofi piano", "a b c"])
    assert cond.shape == (4, 3, 32) and mask.shape == (4, 3)
    assert mask[0].tolist() == [1, 1, 0] and mask[3].tolist() == [1, 1, 1]
    assert torch.equal(cond[1], torch.zeros_like(cond[1])) and mask[1].sum() == 0
    assert torch.equal(cond[0], cond[2])
    assert (cond[0, 2:] == 0).all()  # padded positions are zeroed


def test_no_import_cycle_in_models():
    """models/: lm is imported by magnet/musicgen, never the other way (build_lm lives in models/build.py)."""
    import ast
    from pathlib import Path

    import magnet_eval.models as pkg

    folder = Path(pkg.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update(a.name for a in node.names)
        graph[path.stem] = {d for d in deps if (folder / f"{d}.py").is_file()}
    assert not graph["lm"] & {"magnet", "musicgen", "build", "generator"}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for d in graph.get(start, ()):
            if d == target or (d not in seen and reaches(d, target, seen | {d})):
                return True
        return False

    cyclic = sorted(m for m in graph if reaches(m, m, {m}))
    assert not cyclic, cyclic
