"""Codec training: the reconstruction metrics and losses, the adversary's gradient routing, a short fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from magnet_eval.solvers.base import StepRandom, TrainConfig, fit
from magnet_eval.solvers.codec import CodecLossConfig, CodecSolver, CodecTrainModule, MultiScaleMel, mel_loss, si_snr

SR = 16000


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_si_snr_known_values():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 1, 16000, generator=g)
    n = torch.randn(4, 1, 16000, generator=g)
    n = n - (n * s).sum(-1, keepdim=True) / (s * s).sum(-1, keepdim=True) * s  # orthogonal noise
    for snr_db in (0.0, 10.0, 20.0):
        scale = (s.pow(2).sum(-1, keepdim=True) / n.pow(2).sum(-1, keepdim=True) / 10 ** (snr_db / 10)).sqrt()
        got = si_snr(s + scale * n, s)
        assert torch.allclose(got, torch.full((4,), snr_db), atol=0.05), got
    # scale invariant, and a perfect copy is very high
    noisy = s + 0.1 * n
    assert torch.allclose(si_snr(3 * noisy, s), si_snr(noisy, s), atol=1e-4)
    assert si_snr(s, s).min() > 60


def test_mel_loss_zero_on_identity_and_grows_with_error():
    mel = MultiScaleMel(SR, (256, 512))
    t = torch.arange(8000) / SR
    x = torch.sin(2 * math.pi * 440 * t)[None, None]
    assert mel_loss(mel, x, x).item() == pytest.approx(0.0, abs=1e-6)
    small = mel_loss(mel, x + 0.01 * torch.randn_like(x), x).item()
    big = mel_loss(mel, x + 0.3 * torch.randn_like(x), x).item()
    assert 0 < small < big


class ToyCodec(torch.nn.Module):
    """Strided conv encoder / transposed conv decoder with a rounding 'quantiser' (straight-through)."""

    sample_rate = SR

    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Conv1d(1, 16, 32, stride=16, padding=8)
        self.dec = torch.nn.ConvTranspose1d(16, 1, 32, stride=16, padding=8)

    def forward(self, wav):
        z = self.enc(wav)
        q = z + (torch.round(z * 4) / 4 - z).detach()
        commit = (z - q.detach()).pow(2).mean()
        codes = torch.round(z[:, :2] * 4).long().clamp(0, 15)
        return self.dec(q), codes, commit


def _clips(n, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    return [(0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)).astype(np.float16) for _ in range(n)]


def test_adversary_gradients_are_routed(tmp_path):
    module = CodecTrainModule(ToyCodec(), SR, CodecLossConfig(adversarial=True, mel_windows=(256, 512)))
    wav = torch.from_numpy(np.stack(_clips(2, 0.25)).astype(np.float32))[:, None]
    terms = module(wav)
    assert {"adv", "feat", "disc", "mel", "l1", "commit"} <= set(terms)
    # the generator's adversarial terms reach the codec but not the discriminator
    (terms["adv"] + terms["feat"]).backward(retain_graph=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in module.disc.parameters())
    assert module.codec.dec.weight.grad.abs().sum() > 0
    module.zero_grad(set_to_none=True)
    # the discriminator's loss reaches the discriminator but not the codec
    terms["disc"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.disc.parameters())
    assert module.codec.dec.weight.grad is None or module.codec.dec.weight.grad.abs().sum() == 0


def test_codec_fit_improves_reconstruction(tmp_path):
    exported = []

    def export(codec, folder):
        path = folder / "codec.pt"
        torch.save(codec.state_dict(), path)
        exported.append(path)
        return path

    loss_cfg = CodecLossConfig(segment_seconds=0.25, valid_seconds=0.5, mel_windows=(256, 512), n_valid=4)
    solver = CodecSolver(ToyCodec(), SR, _clips(16), _clips(4, seed=1), export, loss_cfg)
    before = solver.validate(solver.model, torch.device("cpu"))
    res = fit(solver, TrainConfig(steps=60, batch_size=4, lr=3e-3, warmup_steps=5, checkpoint_every=30, valid_every=30,
                                  log_every=10), tmp_path)
    v = pd.read_csv(res.log).query("phase == 'valid'")
    assert list(v.step) == [30, 60]  # no step-0 validation: EnCodec's k-means init must see training data first
    assert v.valid_si_snr_db.iloc[-1] > before["valid_si_snr_db"] + 3
    assert v.valid_mel_distance.iloc[-1] < before["valid_mel_distance"]
    t = pd.read_csv(res.log).query("phase == 'train'")
    assert {"train_mel", "train_l1", "train_commit"} <= set(t.columns)
    assert res.export == tmp_path / "codec.pt" and len(exported) == 2
    # the export holds the codec alone (no mel filterbanks, no discriminator)
    assert set(torch.load(res.export)) == set(ToyCodec().state_dict())
