"""VampNet training on the shared loop: the schedule's masks, loss on masked tokens only, the c2f
conditioning, learning above the unigram floor, exact resumption, and `train vampnet` end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from magnet_eval.models.vampnet import VampNetConfig, VampNetModel, masked_logits_loss
from magnet_eval.solvers.base import CHECKPOINT_NAME, TrainConfig, fit, load_checkpoint
from magnet_eval.solvers.interface import StepRandom
from magnet_eval.solvers.tokens import TokenSet
from magnet_eval.solvers.vampnet import VampNetSolver, progress_for_fraction, stratified_progress

V = 32


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_model(part: str = "coarse", seed: int = 0) -> VampNetModel:
    torch.manual_seed(seed)
    cfg = VampNetConfig(n_codebooks=2 if part == "coarse" else 4, n_conditioning_codebooks=0 if part == "coarse" else 2,
                        vocab_size=V, latent_dim=4, embedding_dim=32, n_heads=2, n_layers=2, dropout=0.0,
                        frame_rate=50.0, sample_rate=32000, chunk_duration=1.0, codec="tiny")
    return VampNetModel(cfg)


def patterned(n: int, T: int = 48, seed: int = 0) -> TokenSet:
    """Each clip repeats a 4-frame motif; codebooks 1-3 are functions of codebook 0 (learnable from context)."""
    g = torch.Generator().manual_seed(seed)
    codes = []
    for _ in range(n):
        c0 = torch.randint(0, V, (4,), generator=g).repeat(T // 4 + 1)[:T]
        codes.append(torch.stack([c0] + [(c0 * (k + 2) + k) % V for k in range(1, 4)]))
    return TokenSet([f"c{i}" for i in range(n)], codes, [""] * n)


def _export(model, folder):
    path = folder / "toy.pt"
    torch.save(model.state_dict(), path)
    return path


def test_stratified_progress_covers_the_schedule_and_fraction_inverts_it():
    r = stratified_progress(8, torch.Generator().manual_seed(0))
    assert ((r >= torch.arange(8) / 8) & (r < (torch.arange(8) + 1) / 8)).all()
    for f in (0.3, 0.9):
        assert np.cos(progress_for_fraction(f) * np.pi / 2) == pytest.approx(f)


def test_loss_reaches_masked_tokens_only():
    torch.manual_seed(0)
    tokens = torch.randint(0, V, (2, 4, 10))
    masked = torch.rand(2, 4, 10) < 0.5
    logits = torch.randn(2, 2, 10, V, requires_grad=True)
    loss, correct = masked_logits_loss(logits, tokens, masked, n_conditioning=2)
    loss.backward()
    reached = logits.grad.abs().sum(-1) > 0  # [B, P, T]
    assert torch.equal(reached, masked[:, 2:])  # exactly the masked tokens of the predicted codebooks
    assert correct.numel() == int(masked[:, 2:].sum())


def test_c2f_step_never_masks_the_coarse_codebooks_and_rates_follow_the_schedule():
    model = toy_model("c2f")
    seen = []
    orig = model.forward

    def spy(x):
        seen.append(x.clone())
        return orig(x)

    model.forward = spy
    solver = VampNetSolver(model, patterned(16), patterned(4, seed=1), 40, _export, part="c2f")
    rates = []
    for step in range(6):
        out = solver.train_loss(model, list(range(16)), StepRandom(0, step, 0), "cpu")
        x = seen[-1]
        assert not (x[:, :2] == V).any()  # coarse codebooks always given
        hidden = (x[:, 2:] == V).flatten(1).float().mean(1)
        rates.append(hidden)
        assert out.loss.requires_grad and out.n_tokens == 16 * 4 * 40
    # a ratio per example: stratified over the batch, from nearly all hidden to nearly none
    r = torch.cat(rates)
    assert r.max() > 0.9 and r.min() < 0.15


def test_training_beats_the_unigram_floor_and_logs_it(tmp_path):
    solver = VampNetSolver(toy_model("coarse"), patterned(24, seed=1), patterned(8, seed=2), 40, _export)
    cfg = TrainConfig(steps=120, batch_size=8, lr=1e-2, warmup_steps=8, checkpoint_every=120, valid_every=60, log_every=10)
    res = fit(solver, cfg, tmp_path)
    log = pd.read_csv(res.log)
    v = log[log.phase == "valid"]
    assert {"valid_accuracy", "valid_unigram_accuracy", "valid_chance_accuracy", "valid_accuracy_stage1"} <= set(v.columns)
    before, after = v.iloc[0], v.iloc[-1]
    t = log[log.phase == "train"]
    assert t.loss.iloc[-1] < t.loss.iloc[0] - 0.5  # the loss falls
    assert after.valid_loss < before.valid_loss
    assert after.valid_accuracy > after.valid_unigram_accuracy + 0.1 > before.valid_accuracy


class Crash(RuntimeError):
    pass


class CrashingSolver(VampNetSolver):
    def __init__(self, *a, crash_at: int = -1, **k):
        super().__init__(*a, **k)
        self.crash_at, self.calls = crash_at, 0

    def train_loss(self, model, indices, rng, device):
        if self.calls == self.crash_at:
            raise Crash()
        self.calls += 1
        return super().train_loss(model, indices, rng, device)


def test_resume_after_a_crash_gives_the_same_weights(tmp_path):
    cfg = TrainConfig(steps=8, batch_size=4, lr=5e-3, warmup_steps=2, checkpoint_every=4, valid_every=8, log_every=2)

    def solver(crash_at=-1):
        return CrashingSolver(toy_model("c2f"), patterned(8), patterned(4, seed=1), 24, _export, part="c2f",
                              crash_at=crash_at)

    ref = fit(solver(), cfg, tmp_path / "ref")
    with pytest.raises(Crash):
        fit(solver(crash_at=6), cfg, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["step"] == 4
    resumed = solver()
    res = fit(resumed, cfg, tmp_path / "run")
    assert resumed.calls == 4
    a, b = torch.load(ref.export), torch.load(res.export)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_vampnet_command_exports_parts_that_pair_into_a_vampnet(tmp_path, monkeypatch):
    import soundfile as sf
    from typer.testing import CliRunner

    from magnet_eval.cli import app
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.models.codec import build_codec, save_codec
    from magnet_eval.models.vampnet_weights import pair_vampnet

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))
    sr, t = 32000, np.arange(32000) / 32000
    entries = []
    for i in range(4):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), sr)
        entries.append(ManifestEntry(f"c{i}", "", str(path), 1.0, labels={"split": "train" if i < 3 else "valid"}))
    manifest = Manifest(entries).write(tmp_path / "manifest.jsonl")
    torch.manual_seed(0)
    codec = save_codec(build_codec("tiny"), tmp_path / "compression_state_dict.bin")
    runner = CliRunner()
    outs = {}
    for part in ("coarse", "c2f"):
        outs[part] = tmp_path / part
        res = runner.invoke(app, ["train", "vampnet", "--part", part, "--data", str(manifest), "--codec", str(codec),
                                  "--out", str(outs[part]), "--steps", "2", "--batch-size", "2", "--segment-seconds",
                                  "0.4", "--checkpoint-every", "2", "--valid-every", "2", "--log-every", "1"])
        assert res.exit_code == 0, res.output
        log = pd.read_csv(outs[part] / "train_log.csv")
        assert {"valid_accuracy", "valid_unigram_accuracy"} <= set(log.columns)
    vn, codec_spec = pair_vampnet(outs["coarse"] / "vampnet_coarse.pt", outs["c2f"] / "vampnet_c2f.pt")
    assert vn.n_coarse == 2 and vn.n_codebooks == 4 and codec_spec.endswith("compression_state_dict.bin")
    bad = runner.invoke(app, ["train", "vampnet", "--part", "fine", "--data", str(manifest), "--codec", str(codec),
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--part" in (bad.output + str(bad.exception))
