"""Codec training: reconstruction losses (multi-scale mel, waveform L1, commitment), optional adversary.

The offline preset needs its own small EnCodec (32 kHz, 50 Hz, 4 codebooks) trained on the rendered
corpus. The generator objective is audiocraft's minus the adversary by default: L1 on the waveform,
a multi-scale mel-spectrogram loss (L1 on linear and log mels over several window sizes) and the
quantizer's commitment loss. `adversarial=True` adds a small multi-scale STFT discriminator with
hinge and feature-matching losses, trained in the same backward pass (the generator's adversarial
term sees detached discriminator weights, the discriminator sees a detached reconstruction).
Validation reports SI-SNR, mel distance and waveform L1 on fixed clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .interface import Solver, StepOutput, StepRandom


@dataclass
class CodecLossConfig:
    """Loss weights and settings: audiocraft's EnCodec recipe (l1 0.1 with an adversary) reweighted for
    training without one: the waveform L1 gets weight 1 so phase is learned from the loss alone."""

    l1: float = 1.0
    mel: float = 1.0
    commit: float = 1.0
    adversarial: bool = False
    adv: float = 1.0
    feat: float = 1.0
    mel_windows: tuple[int, ...] = (256, 512, 1024, 2048)
    segment_seconds: float = 1.0
    valid_seconds: float = 2.0
    n_valid: int = 12


class MultiScaleMel(nn.Module):
    """Mel spectrograms at several window sizes (hop = window / 4)."""

    def __init__(self, sample_rate: int, windows: Sequence[int] = (256, 512, 1024, 2048)):
        super().__init__()
        import torchaudio

        self.mels = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=w, win_length=w, hop_length=w // 4,
                n_mels=min(64, w // 8), power=1.0, normalized=False, center=True,
            )
            for w in windows
        )

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        x = wav.float().reshape(-1, wav.shape[-1])
        return [m(x) for m in self.mels]


def mel_loss(mel: MultiScaleMel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over scales of L1(mel) + L1(log mel)."""
    total = x.new_zeros(())
    for mx, my in zip(mel(x), mel(y)):
        total = total + F.l1_loss(mx, my) + F.l1_loss(torch.log(mx.clamp_min(1e-5)), torch.log(my.clamp_min(1e-5)))
    return total / len(mel.mels)


def si_snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB, per item ([B, ..., N] -> [B])."""
    x = estimate.reshape(estimate.shape[0], -1).double()
    s = target.reshape(target.shape[0], -1).double()
    x = x - x.mean(-1, keepdim=True)
    s = s - s.mean(-1, keepdim=True)
    proj = (x * s).sum(-1, keepdim=True) / (s.pow(2).sum(-1, keepdim=True) + eps) * s
    noise = x - proj
    return (10 * torch.log10((proj.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))).float()


class STFTDiscriminator(nn.Module):
    """One-resolution complex-STFT discriminator (2-channel real/imag input), returns logits and features."""

    def __init__(self, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [nn.Conv2d(2, channels, (3, 9), padding=(1, 4))]
        for d in (1, 2, 4):
            convs.append(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
        convs.append(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(nn.utils.parametrizations.weight_norm(c) for c in convs)
        self.out = nn.utils.parametrizations.weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(wav.float().reshape(-1, wav.shape[-1]), self.n_fft, self.n_fft // 4, window=self.window,
                          return_complex=True, normalized=True)
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, freq]
        feats = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, ffts: Sequence[int] = (512, 1024, 2048), channels: int = 32):
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(n, channels) for n in ffts)

    def forward(self, wav: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(wav) for d in self.discs]


class CodecTrainModule(nn.Module):
    """The codec plus (optionally) its discriminator; forward returns every loss term of one batch.

    One module so that DDP sees a single forward, and one optimizer updates both parts.
    """

    def __init__(self, codec: nn.Module, sample_rate: int, loss_cfg: CodecLossConfig):
        super().__init__()
        self.codec = codec
        self.loss_cfg = loss_cfg
        self.mel = MultiScaleMel(sample_rate, loss_cfg.mel_windows)
        self.disc = MultiScaleSTFTDiscriminator() if loss_cfg.adversarial else None

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        recon, codes, commit = self.codec(wav)
        recon = recon[..., : wav.shape[-1]]
        lc = self.loss_cfg
        terms = {
            "l1": F.l1_loss(recon.float(), wav.float()),
            "mel": mel_loss(self.mel, recon, wav),
            "commit": commit.float().mean() if torch.is_tensor(commit) else torch.tensor(float(commit)),
        }
        total = lc.l1 * terms["l1"] + lc.mel * terms["mel"] + lc.commit * terms["commit"]
        if self.disc is not None:
            from torch.func import functional_call

            frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
            fake_g = functional_call(self.disc, frozen, (recon,))
            real_g = functional_call(self.disc, frozen, (wav,))
            adv = sum(F.relu(1 - logits).mean() for logits, _ in fake_g) / len(fake_g)
            feat = sum(
                sum(F.l1_loss(f, r.detach()) / (r.detach().abs().mean() + 1e-5) for f, r in zip(ff, rf)) / len(ff)
                for (_, ff), (_, rf) in zip(fake_g, real_g)
            ) / len(fake_g)
            fake_d = self.disc(recon.detach())
            real_d = self.disc(wav)
            d_loss = sum(F.relu(1 + lf).mean() + F.relu(1 - lr).mean() for (lf, _), (lr, _) in zip(fake_d, real_d)) / len(fake_d)
            terms.update(adv=adv, feat=feat, disc=d_loss)
            total = total + lc.adv * adv + lc.feat * feat + d_loss
        terms["total"] = total
        terms["n_frames"] = torch.tensor(codes.shape[-1] * codes.shape[0] * codes.shape[1])
        return terms


class CodecSolver(Solver):
    """Trains a codec on random crops of the training clips; validates on fixed clips."""

    name = "codec"
    token_unit = "tok"
    # EnCodec initialises its codebooks by k-means on the first batch it sees, in any mode: a
    # step-0 validation would initialise them from validation clips.
    validate_untrained = False

    def __init__(
        self,
        codec: nn.Module,
        sample_rate: int,
        train_audio: list[np.ndarray],
        valid_audio: list[np.ndarray],
        export_fn: Callable[[nn.Module, Path], Path],
        loss_cfg: Optional[CodecLossConfig] = None,
        extra_config: Optional[dict] = None,
    ):
        self.loss_cfg = loss_cfg or CodecLossConfig()
        self.sample_rate = sample_rate
        self.train_audio = train_audio
        self.valid_audio = valid_audio[: self.loss_cfg.n_valid]
        self.model = CodecTrainModule(codec, sample_rate, self.loss_cfg)
        self.export_fn = export_fn
        self.extra_config = extra_config or {}
        self.segment = int(round(self.loss_cfg.segment_seconds * sample_rate))

    def config(self) -> dict:
        cfg = asdict(self.loss_cfg)
        cfg["mel_windows"] = list(cfg["mel_windows"])
        return {"solver": self.name, "sample_rate": self.sample_rate, "loss": cfg, **self.extra_config}

    def n_train_items(self) -> int:
        return len(self.train_audio)

    def _crops(self, indices: list[int], gen: torch.Generator) -> torch.Tensor:
        n = min([self.segment] + [len(self.train_audio[i]) for i in indices])
        out = []
        for i in indices:
            a = self.train_audio[i]
            off = int(torch.randint(0, len(a) - n + 1, (1,), generator=gen).item())
            out.append(torch.from_numpy(a[off : off + n].astype(np.float32)))
        return torch.stack(out)[:, None, :]

    def train_loss(self, model, indices, rng: StepRandom, device) -> StepOutput:
        wav = self._crops(indices, rng.local).to(device)
        terms = model(wav)
        metrics = {f"train_{k}": float(v.detach()) for k, v in terms.items() if k not in ("total", "n_frames")}
        return StepOutput(terms["total"], int(terms["n_frames"]), metrics)

    @torch.no_grad()
    def validate(self, model, device) -> dict[str, float]:
        codec = model.codec
        n = int(round(self.loss_cfg.valid_seconds * self.sample_rate))
        snr, mel_d, l1, totals = [], [], [], []
        for a in self.valid_audio:
            wav = torch.from_numpy(a[:n].astype(np.float32))[None, None].to(device)
            recon, _codes, commit = codec(wav)
            recon = recon[..., : wav.shape[-1]]
            snr.append(float(si_snr(recon, wav)[0]))
            m = mel_loss(model.mel, recon, wav)
            mel_d.append(float(m))
            l1.append(float(F.l1_loss(recon, wav)))
            lc = self.loss_cfg
            c = float(commit.mean()) if torch.is_tensor(commit) else float(commit)
            totals.append(lc.l1 * l1[-1] + lc.mel * mel_d[-1] + lc.commit * c)
        return {
            "valid_loss": float(np.mean(totals)),
            "valid_si_snr_db": float(np.mean(snr)),
            "valid_mel_distance": float(np.mean(mel_d)),
            "valid_l1": float(np.mean(l1)),
        }

    def export(self, model, folder: Path) -> Path:
        return self.export_fn(model.codec, folder)
