"""Hybrid-MAGNeT: an autoregressive prefix decoded by the MAGNeT model itself, then parallel decoding."""

from __future__ import annotations

import pytest
import torch
from helpers import seeded_lm, tiny_lm_config

from magnet_eval.models.hybrid import (ARSettings, autoregressive_generate, causal_logits, decode_frames,
                                       make_cross_kv)
from magnet_eval.models.magnet import MagnetDecoding, MagnetLM
from magnet_eval.models.sampling import make_generators

CARD = 32
PROMPTS = ["a", "lofi piano with soft rain", "rock"]
SEEDS = [5, 6, 7]
FRAME_RATE = 50.0


pytestmark = pytest.mark.usefixtures("one_thread")


def magnet_lm() -> MagnetLM:
    return seeded_lm(tiny_lm_config("magnet", card=CARD, span_len=3, frame_rate=FRAME_RATE)).eval()


def generate(lm, dec, prompts=PROMPTS, seeds=SEEDS, frames=30):
    cond = lm.condition(prompts, independent=True)
    return lm.generate(cond, len(prompts), frames, dec, generators=make_generators(seeds))


def ar_settings(dec: MagnetDecoding) -> ARSettings:
    return ARSettings(temperature=dec.prefix_temperature, top_k=dec.prefix_top_k, cfg_coef=dec.prefix_cfg_coef)


@pytest.mark.parametrize("arrangement", ["nonoverlap", "stride1"])
def test_prefix_zero_is_plain_magnet(arrangement):
    lm = magnet_lm()
    base = dict(decoding_steps=[4, 2, 2, 2], span_arrangement=arrangement)
    plain = generate(lm, MagnetDecoding(**base))
    steps = lm.last_stats["forward_passes"]
    hybrid0 = generate(lm, MagnetDecoding(**base, hybrid_prefix=0.0))
    assert torch.equal(plain, hybrid0)
    assert lm.last_stats["autoregressive_forward_passes"] == 0 and lm.last_stats["forward_passes"] == steps == 10
    # less than half a frame rounds to no prefix
    assert torch.equal(plain, generate(lm, MagnetDecoding(**base, hybrid_prefix=0.4 / FRAME_RATE)))


def test_prefix_of_the_whole_clip_is_plain_autoregressive_decoding():
    lm = magnet_lm()
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2], hybrid_prefix=30 / FRAME_RATE)
    hybrid = generate(lm, dec)
    assert lm.last_stats["magnet_forward_passes"] == 0
    assert lm.last_stats["autoregressive_forward_passes"] == 30
    cond = lm.condition(PROMPTS, independent=True)
    ar = autoregressive_generate(lm, cond, 3, 30, ar_settings(dec), make_generators(SEEDS))
    assert torch.equal(hybrid, ar)
    assert (ar < CARD).all()  # every frame decoded, no mask token left


@pytest.mark.parametrize("prefix_frames", [7, 12])
def test_hybrid_prefix_is_autoregressive_and_kept(prefix_frames):
    """The first S frames are what autoregressive decoding gives (causal: they never see later frames),
    kept through the parallel stages; the rest is decoded by MAGNeT, conditioned on them."""
    lm = magnet_lm()
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2], hybrid_prefix=prefix_frames / FRAME_RATE)
    hybrid = generate(lm, dec)
    cond = lm.condition(PROMPTS, independent=True)
    ar = autoregressive_generate(lm, cond, 3, 30, ar_settings(dec), make_generators(SEEDS))
    assert torch.equal(hybrid[..., :prefix_frames], ar[..., :prefix_frames])
    assert not torch.equal(hybrid[..., prefix_frames:], ar[..., prefix_frames:])
    assert (hybrid < CARD).all()
    assert lm.last_stats["autoregressive_forward_passes"] == prefix_frames
    assert lm.last_stats["magnet_forward_passes"] == 10
    # the parallel part depends on the prefix: another prefix length changes the tokens after it
    other = generate(lm, MagnetDecoding(decoding_steps=[4, 2, 2, 2], hybrid_prefix=3 / FRAME_RATE))
    assert not torch.equal(other[..., prefix_frames:], hybrid[..., prefix_frames:])


def test_hybrid_is_batch_invariant():
    lm = magnet_lm()
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2], hybrid_prefix=8 / FRAME_RATE)
    together = generate(lm, dec)
    alone = torch.cat([generate(lm, dec, [p], [s]) for p, s in zip(PROMPTS, SEEDS)])
    assert torch.equal(together, alone)


def test_cached_decoding_matches_the_causal_training_pass():
    """Decoding with a KV cache sees what the teacher-forced causal pass (training) sees: same logits."""
    lm = magnet_lm()
    torch.manual_seed(3)
    codes = torch.randint(0, CARD, (2, 4, 9))
    full = causal_logits(lm, codes)  # [B, K, T, card], no condition
    # the last frame predicted after a prompt of 8 frames, through decode_frames' cache: greedy = argmax
    work = codes.clone()
    decode_frames(lm, work, 8, 9, ARSettings(use_sampling=False), cross_kv=None)
    assert torch.equal(work[..., 8], full[:, :, 8].argmax(-1))
    # several greedy steps through the cache: each frame is the argmax of the causal pass over the result
    work = codes.clone()
    decode_frames(lm, work, 3, 9, ARSettings(use_sampling=False), cross_kv=None)
    assert torch.equal(work[..., 3:], causal_logits(lm, work)[:, :, 3:].argmax(-1))
    assert torch.equal(work[..., :3], codes[..., :3])
    # causality: changing a later frame leaves the earlier positions' logits unchanged
    changed = codes.clone()
    changed[..., 6:] = (changed[..., 6:] + 1) % CARD
    assert torch.allclose(causal_logits(lm, changed)[:, :, :7], full[:, :, :7], atol=1e-5)
    assert not torch.allclose(causal_logits(lm, changed)[:, :, 7:], full[:, :, 7:], atol=1e-5)


def test_make_cross_kv_needs_matching_batch():
    lm = magnet_lm()
    cond = lm.condition(PROMPTS)
    with pytest.raises(ValueError, match="condition batch"):
        make_cross_kv(lm, cond, 2)
    with pytest.raises(ValueError, match="hybrid_prefix"):
        MagnetDecoding(hybrid_prefix=-1.0)


def test_cli_hybrid_prefix(tmp_path):
    import json

    from typer.testing import CliRunner

    from magnet_eval.cli import app
    from magnet_eval.errors import InvalidOptionError, MagnetEvalError

    out = tmp_path / "h"
    base = ["generate", "-m", "magnet-tiny", "-p", "jazz", "-d", "1", "--decoding-steps", "3,1,1,1"]
    res = CliRunner().invoke(app, base + ["-o", str(out), "--hybrid-prefix", "0.5"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    (rec,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rec["settings"]["decoding"]["hybrid_prefix"] == 0.5
    assert rec["forward_passes"] == 25 + 6  # 25 frames autoregressive, then the parallel steps
    res = CliRunner().invoke(app, base + ["-o", str(out), "--hybrid-prefix", "0.3"])
    assert isinstance(res.exception, MagnetEvalError) and "other settings" in str(res.exception)
    res = CliRunner().invoke(app, base + ["-o", str(tmp_path / "x"), "--hybrid-prefix", "-1"])
    assert isinstance(res.exception, InvalidOptionError) and "--hybrid-prefix" in str(res.exception)
    res = CliRunner().invoke(app, ["generate", "-m", "musicgen-tiny", "-p", "jazz", "-d", "1", "-o",
                                   str(tmp_path / "m"), "--hybrid-prefix", "0.5"])
    assert isinstance(res.exception, MagnetEvalError) and "hybrid_prefix" in str(res.exception)


def _patterned(n: int, T: int = 40, seed: int = 0):
    """Toy tokens: each clip repeats a 4-frame motif; later codebooks are functions of codebook 0."""
    from magnet_eval.solvers.tokens import TokenSet

    g = torch.Generator().manual_seed(seed)
    codes, conds = [], []
    for i in range(n):
        c0 = torch.randint(0, CARD, (4,), generator=g).repeat(T // 4 + 1)[:T]
        codes.append(torch.stack([c0] + [(c0 * (k + 2) + k) % CARD for k in range(1, 4)]))
        conds.append(torch.randn(3, 24, generator=g))
    return TokenSet([f"c{i}" for i in range(n)], codes, [f"clip {i}" for i in range(n)], conds)


def test_hybrid_training_step_supervises_the_prefix_causally():
    from magnet_eval.solvers.base import StepRandom
    from magnet_eval.solvers.magnet import MagnetSolver

    lm = magnet_lm()
    data = _patterned(6)
    solver = MagnetSolver(lm, data, data, segment_frames=40, export_fn=lambda m, f: f, hybrid=True)
    assert solver.objective_config()["hybrid"] is True
    assert "hybrid" not in MagnetSolver(magnet_lm(), data, data, 40, lambda m, f: f).objective_config()
    lm.zero_grad(set_to_none=True)
    out = solver.train_loss(solver.model, [0, 1, 2, 3], StepRandom(0, 3, 0), torch.device("cpu"))
    out.loss.backward()
    assert out.metrics["hybrid_prefix_frames"] > 0 and out.metrics["train_ar_loss"] > 0
    # the causal rows predict every codebook of the prefix frames: every output head gets a gradient
    for lin in lm.linears:
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_hybrid_training_learns_the_autoregressive_mode(tmp_path):
    """After --hybrid training the model predicts the next frame causally (its prefix mode); the same
    training without --hybrid does not teach that mode. Measured on training clips (memorising the toy
    motifs is enough to show the causal objective reached the model)."""
    import pandas as pd

    from magnet_eval.solvers.base import TrainConfig, fit
    from magnet_eval.solvers.magnet import MagnetSolver

    train, valid = _patterned(24, seed=1), _patterned(8, seed=2)
    codes = torch.stack([train.codes[i][:, :40] for i in range(8)])

    def ar_accuracy(lm) -> float:
        with torch.no_grad():
            pred = causal_logits(lm.eval(), codes).argmax(-1)
        return float((pred[..., 4:] == codes[..., 4:]).float().mean())

    cfg = TrainConfig(steps=150, batch_size=8, lr=1e-2, warmup_steps=8, checkpoint_every=150, valid_every=150,
                      log_every=10)
    results = {}
    for hybrid in (True, False):
        lm = magnet_lm()
        before = ar_accuracy(lm)
        solver = MagnetSolver(lm, train, valid, segment_frames=40, export_fn=lambda m, f: f / "x", hybrid=hybrid)
        res = fit(solver, cfg, tmp_path / str(hybrid))
        log = pd.read_csv(res.log)
        v = log[log.phase == "valid"]
        results[hybrid] = (before, ar_accuracy(lm), v.iloc[0].valid_accuracy, v.iloc[-1].valid_accuracy)
    before, after, v0, v1 = results[True]
    assert before < 0.1 and after > 0.6, results
    assert v1 > v0 + 0.1, results  # the masked mode learns alongside
    assert results[False][1] < 0.3, results
