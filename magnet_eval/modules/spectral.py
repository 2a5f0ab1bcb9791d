"""Frequency-domain codec parts: a log-mel encoder and an iSTFT decoder (the tiny preset's codec).

MelEncoder: waveform -> log-mel frames at the codec's frame rate, a fixed (parameter-free)
analysis, so the quantiser sees an informative latent from the first step instead of waiting for
a SEANet encoder to learn one; the RVQ then codes spectral envelopes.

ISTFTDecoder: latent frames -> STFT magnitude and phase -> inverse STFT.

Why: a SEANet decoder has to learn to synthesise waveforms sample by sample through transposed
convolutions, which takes far more steps than the few hundred that fit in the offline preset on
2 CPU cores (after 600 steps its reconstructions were barely better than its random-token
output). Predicting a log-magnitude and a phase per STFT bin, as Vocos does, puts the harmonic
structure in the output layer, so a small network reaches a usable reconstruction in minutes.

Layout: a 1-d conv stem at the latent frame rate, residual blocks (depthwise conv + pointwise
MLP, pre-norm), `upsample` output frames per latent frame (a pointwise layer then a reshape),
and a head giving (log |S|, x, y) per bin; the complex spectrum is |S| * (x + iy) / |x + iy|,
inverted with a Hann-window iSTFT whose hop is `hop_length / upsample`.
"""

from __future__ import annotations

import torch
from torch import nn


class MelEncoder(nn.Module):
    """Waveform [B, C, T] -> normalised log-mel [B, n_mels, ceil(T / hop_length)] (no learned weights)."""

    def __init__(self, sample_rate: int, hop_length: int, n_mels: int, channels: int = 1):
        super().__init__()
        import torchaudio

        self.hop = hop_length
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=4 * hop_length, hop_length=hop_length, n_mels=n_mels, power=1.0,
            center=True, f_min=0.0, f_max=sample_rate / 2)
        self.channels = channels

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        b, c, t = wav.shape
        x = wav.float().mean(dim=1)  # mono analysis
        frames = -(-t // self.hop)
        m = self.mel(x)[..., :frames]
        return ((torch.log(m.clamp_min(1e-5)) + 5.0) / 4.0).to(wav.dtype)  # roughly zero mean, unit scale


class ResBlock(nn.Module):
    """Pre-norm residual block: depthwise conv over time, then a pointwise GELU MLP."""

    def __init__(self, dim: int, kernel_size: int = 7, expansion: int = 3):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, expansion * dim), nn.GELU(), nn.Linear(expansion * dim, dim))
        self.scale = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        h = self.dwconv(x).transpose(1, 2)
        h = self.mlp(self.norm(h)) * self.scale
        return x + h.transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """Latent [B, D, F] -> waveform [B, channels, F * hop_length]."""

    def __init__(self, dimension: int, hop_length: int, channels: int = 1, width: int = 256, n_blocks: int = 4,
                 upsample: int = 4, n_fft_factor: int = 4):
        super().__init__()
        if hop_length % upsample:
            raise ValueError(f"hop_length {hop_length} is not a multiple of upsample {upsample}")
        self.channels = channels
        self.upsample = upsample
        self.hop = hop_length // upsample
        self.n_fft = self.hop * n_fft_factor
        self.bins = self.n_fft // 2 + 1
        self.stem = nn.Conv1d(dimension, width, 7, padding=3)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, width * upsample)
        self.fine = ResBlock(width)
        self.head = nn.Conv1d(width, channels * 3 * self.bins, 1)
        with torch.no_grad():  # start near silence (log |S| = -5), not at |S| = 1 in every bin
            self.head.bias.view(channels, 3, self.bins)[:, 0].fill_(-5.0)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, _, f = z.shape
        x = self.stem(z)
        for block in self.blocks:
            x = block(x)
        x = self.expand(self.norm(x.transpose(1, 2)))  # [B, F, width * up]
        x = x.reshape(b, f * self.upsample, -1).transpose(1, 2)  # [B, width, F * up]
        x = self.fine(x)
        out = self.head(x).float().reshape(b * self.channels, 3, self.bins, -1)
        mag = torch.exp(out[:, 0].clamp(max=6.0))
        re, im = out[:, 1], out[:, 2]
        norm = torch.sqrt(re * re + im * im + 1e-8)
        spec = torch.complex(mag * re / norm, mag * im / norm)
        length = f * self.upsample * self.hop
        wav = torch.istft(spec, self.n_fft, self.hop, self.n_fft, window=self.window, center=True, length=length)
        return wav.reshape(b, self.channels, length).to(z.dtype)
