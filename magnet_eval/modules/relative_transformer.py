"""The bidirectional T5-style transformer of VampNet: RMSNorm, relative position bias, gated-GELU feed-forward.

Why not `modules/transformer.py`: that stack is audiocraft's (LayerNorm, GELU, sinusoidal
positions, fused `in_proj_weight`), and the released VampNet weights need another one. Facts from
`vampnet/modules/transformer.py` (names are the reference's, so its state dict maps 1:1):
- pre-norm blocks `norm_1` -> `self_attn` -> residual, `norm_3` -> `feed_forward` -> residual, and
  a final `norm`; RMSNorm (scale only, eps 1e-6);
- attention projections `w_qs`, `w_ks`, `w_vs`, `fc`, all without bias; scores / sqrt(head_dim);
- T5 relative position buckets (32 buckets, max distance 128, bidirectional: half the buckets per
  side, half of those exact and half log-spaced), an `nn.Embedding(buckets, heads)` held by layer 0
  only (`layers.0.self_attn.relative_attention_bias`) whose bias every layer reuses; no absolute
  positions anywhere;
- feed-forward `w_1` (dim -> 4 dim), gated GELU (first half * tanh-GELU(second half)), `w_2` (2 dim -> dim).
The FiLM layers of the reference have no parameters at its `d_cond = 0` and are left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) * weight (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def relative_position_bucket(relative: torch.Tensor, num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """T5's bidirectional buckets of key - query offsets: exact for small offsets, log-spaced up to max_distance."""
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    dist = relative.abs()
    max_exact = half // 2
    large = max_exact + (torch.log(dist.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(dist < max_exact, dist, large)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with an additive relative position bias (owned by the first layer only)."""

    def __init__(self, dim: int, num_heads: int, has_bias_table: bool, num_buckets: int = 32,
                 max_distance: int = 128, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.dropout = dropout
        self.w_qs = nn.Linear(dim, dim, bias=False)
        self.w_ks = nn.Linear(dim, dim, bias=False)
        self.w_vs = nn.Linear(dim, dim, bias=False)
        self.fc = nn.Linear(dim, dim, bias=False)
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)

    def position_bias(self, length: int) -> torch.Tensor:
        """The additive bias [1, heads, T, T] for a sequence of `length` frames."""
        pos = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, H, C // H).transpose(1, 2)

        q, k, v = heads(self.w_qs(x)), heads(self.w_ks(x)), heads(self.w_vs(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.fc(out.transpose(1, 2).reshape(B, T, C))


class GatedFeedForward(nn.Module):
    """w_2(a * gelu_tanh(b)) where [a, b] = w_1(x): the reference's GEGLU feed-forward."""

    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        self.w_1 = nn.Linear(dim, 4 * dim, bias=False)
        self.w_2 = nn.Linear(2 * dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w_1(x).chunk(2, dim=-1)
        return self.w_2(self.drop(a * F.gelu(b, approximate="tanh")))


class RelativeTransformerLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, has_bias_table: bool, dropout: float = 0.0, **bias_kw: int):
        super().__init__()
        self.norm_1 = RMSNorm(dim)
        self.self_attn = RelativeSelfAttention(dim, num_heads, has_bias_table, dropout=dropout, **bias_kw)
        self.norm_3 = RMSNorm(dim)
        self.feed_forward = GatedFeedForward(dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.norm_1(x), bias))
        return x + self.drop(self.feed_forward(self.norm_3(x)))


class RelativeTransformer(nn.Module):
    """A stack of pre-norm layers sharing layer 0's relative position bias, then a final RMSNorm."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, dropout: float = 0.0, num_buckets: int = 32,
                 max_distance: int = 128):
        super().__init__()
        self.layers = nn.ModuleList([
            RelativeTransformerLayer(dim, num_heads, i == 0, dropout, num_buckets=num_buckets,
                                     max_distance=max_distance)
            for i in range(num_layers)])
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, dim] -> [B, T, dim]; every frame attends to every frame."""
        bias = self.layers[0].self_attn.position_bias(x.shape[1])
        for layer in self.layers:
            x = layer(x, bias)
        return self.norm(x)
