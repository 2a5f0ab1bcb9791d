"""The one transformer used by both MAGNeT and MusicGen, laid out so audiocraft's weights load unchanged.

Pre-norm LayerNorm blocks (self-attention, cross-attention to the condition, GELU feed-forward of
`hidden_scale * dim`), no biases in the attention, feed-forward or output projections, and
sinusoidal positions (no parameters) added to the input. Parameter names follow audiocraft's
`StreamingTransformer`: `layers.{i}.self_attn.in_proj_weight`, `...self_attn.out_proj.weight`,
`...cross_attention.*`, `...linear1/linear2.weight`, `...norm1/norm2/norm_cross.{weight,bias}`.

Attention always goes through `F.scaled_dot_product_attention`:
- MAGNeT stage 0: no mask (bidirectional); stages > 0: an explicit *boolean band* mask
  |q - k| <= subcodes_context (`restricted_context_mask`), not a causal one;
- MusicGen: causal; autoregressive decoding keeps a `KVCache` so each step feeds one frame;
- cross-attention keys/values depend only on the condition, so `Transformer.cross_kv` computes
  them once per generation and every decoding step reuses them. Given the condition's mask, it also
  masks the padded keys (`cross_key_mask`): a prompt then attends to its own tokens only, so its
  result does not depend on how far its batch-mates' longer prompts padded it (generation does
  this; the plain forward keeps audiocraft's unmasked cross-attention, see models/lm.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# (keys, values) [B, H, S, hd], optionally with a boolean key mask [B, 1, 1, S] (True = attend)
CrossKV = tuple[torch.Tensor, ...]


def cross_key_mask(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Boolean [B, 1, 1, S] attention mask of a condition mask [B, S] (1 = real token, 0 = padding).

    A row without any real token (the null condition of CFG, an empty prompt) may attend to all its
    keys: its condition is zero there, so the output is exactly zero whatever the padding length,
    which is what audiocraft computes for it.
    """
    if mask is None:
        return None
    keep = mask.bool()
    keep = keep | ~keep.any(dim=-1, keepdim=True)
    return keep[:, None, None, :]


def create_sin_embedding(positions: torch.Tensor, dim: int, max_period: float = 10000.0,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal positions [..., dim]: cos of the phases in the first half, sin in the second (as audiocraft).

    positions: [B, T, 1] (or broadcastable). Phase of channel i is pos / max_period ** (i / (dim/2 - 1)).
    """
    if dim % 2 != 0:
        raise ValueError(f"sinusoidal embedding needs an even dimension, got {dim}")
    half = dim // 2
    positions = positions.to(dtype)
    adim = torch.arange(half, device=positions.device, dtype=dtype).view(1, 1, -1)
    period = torch.full([], max_period, device=positions.device, dtype=dtype)
    phase = positions / (period ** (adim / max(half - 1, 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def restricted_context_mask(length: int, context: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean [length, length] mask, True where |query - key| <= context (MAGNeT stages > 0).

    Each frame sees a band of 2 * context + 1 frames (11 for the released context of 5).
    """
    pos = torch.arange(length, device=device)
    return (pos.view(-1, 1) - pos.view(1, -1)).abs() <= context


@dataclass
class KVCache:
    """Self-attention keys/values of the frames decoded so far, one (k, v) per layer.

    Buffers are preallocated for `max_len` frames ([B, heads, max_len, head_dim]) so a decoding
    step writes one slice instead of re-concatenating the whole history.
    """

    max_len: int
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    offset: int = 0  # frames already stored (= position of the next frame)

    def ensure(self, layer: int, like: torch.Tensor) -> None:
        """Allocate the buffers of `layer` on first use, shaped after `like` [B, H, t, hd]."""
        while len(self.keys) <= layer:
            B, H, _, hd = like.shape
            self.keys.append(like.new_zeros(B, H, self.max_len, hd))
            self.values.append(like.new_zeros(B, H, self.max_len, hd))

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new frames' k/v at the current offset; return all k/v up to and including them."""
        self.ensure(layer, k)
        t = k.shape[2]
        end = self.offset + t
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} frames > max_len {self.max_len}")
        self.keys[layer][:, :, self.offset:end] = k
        self.values[layer][:, :, self.offset:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class MultiheadAttention(nn.Module):
    """Bias-free multi-head attention with audiocraft's parameter names (`in_proj_weight`, `out_proj`)."""

    def __init__(self, dim: int, num_heads: int, cross: bool = False):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.cross = cross
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)
        nn.init.normal_(self.in_proj_weight, std=dim ** -0.5)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def project_kv(self, src: torch.Tensor) -> CrossKV:
        """Keys and values [B, H, S, hd] of a source sequence (the condition, for cross-attention)."""
        w = self.in_proj_weight
        k = F.linear(src, w[self.dim:2 * self.dim])
        v = F.linear(src, w[2 * self.dim:])
        return self._heads(k), self._heads(v)

    def forward(self, x: torch.Tensor, *, kv: Optional[CrossKV] = None, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False, cache: Optional[KVCache] = None, layer: int = 0) -> torch.Tensor:
        """x [B, T, dim] -> [B, T, dim].

        Self-attention projects q, k, v from x (and appends k, v to `cache` when given).
        Cross-attention takes precomputed `kv` from `project_kv`. `attn_mask` is boolean,
        True = may attend, shaped [T, S] or broadcastable to [B, H, T, S].
        """
        w = self.in_proj_weight
        if kv is not None:
            q = self._heads(F.linear(x, w[:self.dim]))
            k, v = kv[0], kv[1]
            if len(kv) > 2 and kv[2] is not None:
                attn_mask = kv[2]
        else:
            q, k, v = (self._heads(t) for t in F.linear(x, w).chunk(3, dim=-1))
            if cache is not None:
                k, v = cache.append(layer, k, v)
        if is_causal and attn_mask is None and q.shape[2] != k.shape[2]:
            # decoding with a cache: the new frames sit at the end of the key sequence
            T, S = q.shape[2], k.shape[2]
            attn_mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            is_causal = False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal and attn_mask is None)
        B, H, T, hd = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, H * hd))


class TransformerLayer(nn.Module):
    """One pre-norm block: x += SA(norm1 x); x += CA(norm_cross x, cond); x += FF(norm2 x)."""

    def __init__(self, dim: int, num_heads: int, hidden_scale: int = 4, cross_attention: bool = True,
                 norm_eps: float = 1e-5):
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads)
        self.linear1 = nn.Linear(dim, hidden_scale * dim, bias=False)
        self.linear2 = nn.Linear(hidden_scale * dim, dim, bias=False)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.has_cross = cross_attention
        if cross_attention:
            self.cross_attention = MultiheadAttention(dim, num_heads, cross=True)
            self.norm_cross = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, *, cross_kv: Optional[CrossKV] = None, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False, cache: Optional[KVCache] = None, layer: int = 0) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal, cache=cache, layer=layer)
        if self.has_cross and cross_kv is not None:
            x = x + self.cross_attention(self.norm_cross(x), kv=cross_kv)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Transformer(nn.Module):
    """A stack of `TransformerLayer`s with sinusoidal positions added to the input."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, hidden_scale: int = 4,
                 cross_attention: bool = True, causal: bool = False, max_period: float = 10000.0,
                 positional_scale: float = 1.0):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.causal = causal
        self.max_period = max_period
        self.positional_scale = positional_scale
        self.cross_attention = cross_attention
        self.layers = nn.ModuleList(
            [TransformerLayer(dim, num_heads, hidden_scale, cross_attention) for _ in range(num_layers)])

    def cross_kv(self, cross_src: Optional[torch.Tensor], mask: Optional[torch.Tensor] = None
                 ) -> Optional[list[CrossKV]]:
        """Per-layer cross-attention keys/values of the condition: compute once, reuse every step.

        mask [B, S]: the condition's mask; when given, padded keys are masked (see `cross_key_mask`).
        """
        if cross_src is None or not self.cross_attention:
            return None
        key_mask = cross_key_mask(mask)
        if key_mask is None:
            return [layer.cross_attention.project_kv(cross_src) for layer in self.layers]
        return [(*layer.cross_attention.project_kv(cross_src), key_mask) for layer in self.layers]

    def forward(self, x: torch.Tensor, *, cross_src: Optional[torch.Tensor] = None,
                cross_kv: Optional[Sequence[CrossKV]] = None, attn_mask: Optional[torch.Tensor] = None,
                cache: Optional[KVCache] = None) -> torch.Tensor:
        """x [B, T, dim] -> [B, T, dim].

        cross_src [B, S, dim]: the (projected) condition; or cross_kv from `cross_kv()`; neither = no
        cross-attention (equivalent to an all-zero condition, since the projections have no bias).
        attn_mask: boolean [T, S] (True = attend) or None; `self.causal` adds causality when no mask
        is given. cache: positions continue from `cache.offset`, which is advanced by T.
        """
        B, T, C = x.shape
        offset = cache.offset if cache is not None else 0
        positions = torch.arange(offset, offset + T, device=x.device).view(1, -1, 1)
        x = x + self.positional_scale * create_sin_embedding(positions, C, self.max_period, dtype=x.dtype)
        if cross_kv is None and cross_src is not None:
            cross_kv = self.cross_kv(cross_src)
        for i, layer in enumerate(self.layers):
            x = layer(x, cross_kv=cross_kv[i] if cross_kv is not None else None, attn_mask=attn_mask,
                      is_causal=self.causal, cache=cache, layer=i)
        if cache is not None:
            cache.offset += T
        return x
