"""The MAGNeT and MusicGen objectives on tiny real LMs: which tokens get the loss, dropout, learning."""

from __future__ import annotations

import math

import pytest
import torch

from magnet_eval.models.checkpoints import load_lm, save_lm
from magnet_eval.solvers.base import StepRandom, TrainConfig, fit
from magnet_eval.solvers.magnet import MagnetSolver, StageTally, magnet_loss, masked_stage_inputs
from magnet_eval.solvers.musicgen import MusicGenSolver, musicgen_loss
from magnet_eval.solvers.text_lm import LMTrainModule, drop_conditions
from magnet_eval.solvers.tokens import TokenSet

from helpers import seeded_lm, tiny_lm_config

CARD = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_lm(kind: str = "magnet", seed: int = 0, dim: int = 32, layers: int = 2) -> torch.nn.Module:
    cfg = tiny_lm_config(kind, dim=dim, num_heads=2, num_layers=layers, card=CARD, text_dim=12, codec="tiny")
    return seeded_lm(cfg, seed)


def patterned_tokens(n: int, T: int = 60, seed: int = 0, with_text: bool = True) -> TokenSet:
    """Learnable toy tokens: each clip repeats a 4-frame motif per codebook; later codebooks follow codebook 0."""
    g = torch.Generator().manual_seed(seed)
    codes, conds, texts = [], [], []
    for i in range(n):
        motif = torch.randint(0, CARD, (4,), generator=g)
        c0 = motif.repeat(T // 4 + 1)[:T]
        rows = [c0] + [(c0 * (k + 2) + k) % CARD for k in range(1, 4)]
        codes.append(torch.stack(rows))
        texts.append(f"clip {i}")
        conds.append(torch.randn(3 + i % 3, 12, generator=g))
    return TokenSet([f"c{i}" for i in range(n)], codes, texts, conds if with_text else None)


def _export(lm, folder):
    return save_lm(lm, folder)


def test_stage_inputs_keep_earlier_mask_current_and_later():
    codes = torch.randint(0, CARD, (2, 4, 10))
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, 3:6] = True
    x = masked_stage_inputs(codes, 1, mask, CARD)
    assert torch.equal(x[:, 0], codes[:, 0])
    assert torch.equal(x[:, 1][~mask], codes[:, 1][~mask])
    assert torch.all(x[:, 1][mask] == CARD)
    assert torch.all(x[:, 2:] == CARD)


def test_loss_reaches_only_masked_tokens_of_the_stage():
    B, K, T = 3, 4, 20
    logits = torch.randn(B, K, T, CARD, requires_grad=True)
    codes = torch.randint(0, CARD, (B, K, T))
    mask = torch.rand(B, T) < 0.4
    loss, correct = magnet_loss(logits, codes, 2, mask)
    loss.backward()
    touched = logits.grad.abs().sum(-1) > 0  # [B, K, T]
    assert torch.equal(touched[:, 2], mask)
    assert not touched[:, [0, 1, 3]].any()
    # the value is the mean CE over exactly those tokens
    ref = torch.nn.functional.cross_entropy(logits[:, 2][mask], codes[:, 2][mask])
    assert loss.item() == pytest.approx(ref.item())
    assert correct.numel() == int(mask.sum())


def test_stage_tally_weights_batches_by_tokens_then_averages_stages():
    tally = StageTally()
    tally.add(0, torch.tensor(1.0), torch.tensor([True, False]), 1, 2)
    tally.add(0, torch.tensor(4.0), torch.tensor([True, True, True, True]), 0, 4)
    tally.add(1, torch.tensor(2.0), torch.tensor([False, False]), 2, 2)
    m = tally.metrics()
    assert list(m) == ["valid_accuracy_stage0", "valid_loss_stage0", "valid_accuracy_stage1", "valid_loss_stage1",
                       "valid_loss", "valid_accuracy", "valid_unigram_accuracy"]  # the log's column order
    assert m["valid_loss_stage0"] == pytest.approx((1 * 2 + 4 * 4) / 6)  # token-weighted, not a mean of batches
    assert m["valid_accuracy_stage0"] == pytest.approx(5 / 6) and m["valid_accuracy_stage1"] == 0.0
    assert m["valid_loss"] == pytest.approx((3.0 + 2.0) / 2)  # stages count equally
    assert m["valid_accuracy"] == pytest.approx(5 / 12)
    assert m["valid_unigram_accuracy"] == pytest.approx((1 / 6 + 1.0) / 2)


def test_solver_step_gives_gradient_to_the_chosen_head_only():
    lm = tiny_lm()
    data = patterned_tokens(6)
    solver = MagnetSolver(lm, data, data, segment_frames=40, export_fn=_export)
    seen = set()
    for step in range(12):
        lm.zero_grad(set_to_none=True)
        out = solver.train_loss(solver.model, [0, 1, 2, 3], StepRandom(0, step, 0), torch.device("cpu"))
        out.loss.backward()
        stage = int(out.metrics["stage"])
        seen.add(stage)
        for k, lin in enumerate(lm.linears):
            g = lin.weight.grad
            if k == stage:
                assert g is not None and g.abs().sum() > 0
            else:
                assert g is None or torch.count_nonzero(g) == 0, (stage, k)
        # embeddings of later stages only ever see the mask token
        for k in range(stage + 1, 4):
            g = lm.emb[k].weight.grad
            assert torch.count_nonzero(g[:CARD]) == 0 and torch.count_nonzero(g[CARD]) > 0
        assert out.n_tokens == 4 * 4 * 40
    assert seen == {0, 1, 2, 3}


def adamw_trajectory(solver, lm: torch.nn.Module, steps: int) -> dict[str, torch.Tensor]:
    """The LM's weights after `steps` AdamW steps of the solver's objective on clips 0-3 (a fixed RNG per step)."""
    opt = torch.optim.AdamW(solver.model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        out = solver.train_loss(solver.model, [0, 1, 2, 3], StepRandom(0, step, 0), torch.device("cpu"))
        out.loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in lm.state_dict().items()}


def test_one_head_training_is_bit_identical_to_computing_every_head(monkeypatch):
    """The stage's head only + a zero-gradient anchor on the others: the same AdamW trajectory as every head."""
    data = patterned_tokens(6)

    def run(all_heads: bool) -> dict[str, torch.Tensor]:
        lm = tiny_lm(seed=3)
        solver = MagnetSolver(lm, data, data, segment_frames=40, export_fn=_export)
        module = solver.model
        if all_heads:  # the previous objective: every head's logits, loss on the stage's
            forward = module.forward
            monkeypatch.setattr(module, "forward", lambda *a, codebooks=None, **k: forward(*a, **k))
        weights = adamw_trajectory(solver, lm, steps=8)
        monkeypatch.undo()
        return weights

    one, every = run(False), run(True)
    assert one.keys() == every.keys()
    for k in one:
        assert torch.equal(one[k], every[k]), k
    # and the heads not trained at a step did move (AdamW momentum / decay), as they do with every head computed
    assert not torch.equal(one["linears.3.weight"], tiny_lm(seed=3).state_dict()["linears.3.weight"])


def test_musicgen_sequence_loss_is_bit_identical_to_the_realigned_loss(monkeypatch):
    """Training MusicGen on the delayed sequence's logits directly: the same AdamW trajectory as re-aligning them."""
    data = patterned_tokens(6)

    def run(realigned: bool) -> dict[str, torch.Tensor]:
        lm = tiny_lm("musicgen", seed=4)
        solver = MusicGenSolver(lm, data, data, segment_frames=40, export_fn=_export)
        module = solver.model
        if realigned:  # the previous objective: compute_predictions (revert_logits) then musicgen_loss
            forward = module.forward
            monkeypatch.setattr(module, "forward", lambda *a, delayed=False, **k: forward(*a, **k))
            monkeypatch.setattr("magnet_eval.solvers.musicgen.DelayPattern", type("NoDelay", (), {}))
        weights = adamw_trajectory(solver, lm, steps=6)
        monkeypatch.undo()
        return weights

    direct, realigned = run(False), run(True)
    for k in direct:
        assert torch.equal(direct[k], realigned[k]), k


def test_stage_above_zero_uses_restricted_context():
    lm = tiny_lm().eval()
    module = LMTrainModule(lm)
    codes = torch.randint(0, CARD, (1, 4, 30))
    far = codes.clone()
    far[:, 0, 20] = (far[:, 0, 20] + 1) % CARD  # 20 frames away from frame 0
    with torch.no_grad():
        for stage, same in ((0, False), (2, True)):
            a = module(codes, stage=stage)[:, :, 0]
            b = module(far, stage=stage)[:, :, 0]
            assert torch.allclose(a, b) == same, stage


def test_condition_dropout_rate_and_null_condition():
    raw = torch.randn(4000, 5, 12) + 1
    mask = torch.ones(4000, 5, dtype=torch.bool)
    r, m, dropped = drop_conditions(raw, mask, 0.3, torch.Generator().manual_seed(0))
    assert dropped.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert torch.all(r[dropped] == 0) and not m[dropped].any()
    assert torch.equal(r[~dropped], raw[~dropped]) and m[~dropped].all()
    # a dropped condition is the LM's null condition (what CFG's unconditional pass uses)
    lm = tiny_lm().eval()
    module = LMTrainModule(lm)
    codes = torch.randint(0, CARD, (2, 4, 16))
    with torch.no_grad():
        dropped_out = module(codes, r[dropped][:2], m[dropped][:2], 0)
        cond = module.project(r[dropped][:2], m[dropped][:2])
        null = lm(codes, lm.null_condition(cond), 0)
        kept = module(codes, r[~dropped][:2], m[~dropped][:2], 0)
    assert torch.allclose(dropped_out, null, atol=1e-6)
    assert not torch.allclose(kept, null, atol=1e-3)


def test_training_beats_untrained_and_unigram(tmp_path):
    data = patterned_tokens(24, seed=1)
    valid = patterned_tokens(8, seed=2)
    solver = MagnetSolver(tiny_lm(layers=2, dim=48), data, valid, segment_frames=40, export_fn=_export)
    cfg = TrainConfig(steps=150, batch_size=8, lr=1e-2, warmup_steps=8, checkpoint_every=150, valid_every=150, log_every=10)
    res = fit(solver, cfg, tmp_path)
    import pandas as pd

    log = pd.read_csv(res.log)
    v = log[log.phase == "valid"]
    before, after = v.iloc[0], v.iloc[-1]
    assert after.valid_accuracy > before.valid_accuracy + 0.3
    assert after.valid_accuracy > after.valid_unigram_accuracy + 0.2
    assert after.valid_loss < before.valid_loss - 1.0
    # the export loads back through the checkpoint reader with the trained weights
    lm2 = load_lm(res.export)
    for k, v2 in lm2.state_dict().items():
        assert torch.allclose(v2, solver.model.lm.state_dict()[k]), k


def test_musicgen_loss_uses_valid_positions_only():
    lm = tiny_lm("musicgen")
    codes = torch.randint(0, CARD, (2, 4, 12))
    logits, mask = lm.compute_predictions(codes, None)
    loss, correct, per = musicgen_loss(logits, codes, mask)
    assert torch.isfinite(loss)
    assert sum(c.numel() for c in per) == int(mask.sum())
    # delayed streams: codebook k has its last k frames without a prediction
    assert mask.shape == (2, 4, 12)
    assert [int(mask[0, k].sum()) for k in range(4)] == [12, 11, 10, 9]


def test_musicgen_training_learns(tmp_path):
    data = patterned_tokens(24, seed=3)
    valid = patterned_tokens(8, seed=4)
    solver = MusicGenSolver(tiny_lm("musicgen", dim=48), data, valid, segment_frames=40, export_fn=_export)
    cfg = TrainConfig(steps=200, batch_size=8, lr=1e-2, warmup_steps=10, checkpoint_every=200, valid_every=100, log_every=10)
    res = fit(solver, cfg, tmp_path)
    import pandas as pd

    v = pd.read_csv(res.log).query("phase == 'valid'")
    assert v.valid_accuracy.iloc[-1] > v.valid_accuracy.iloc[0] + 0.3
    assert v.valid_accuracy.iloc[-1] > v.valid_unigram_accuracy.iloc[-1] + 0.2
    assert load_lm(res.export).cfg.kind == "musicgen"
