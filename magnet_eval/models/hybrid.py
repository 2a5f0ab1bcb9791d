"""Hybrid-MAGNeT (Ziv et al., ICLR 2024): the first seconds decoded autoregressively by the MAGNeT model
itself under a causal attention mask, the rest by MAGNeT's parallel decoding conditioned on that prefix.

Autoregressive mode of a MAGNeT LM (parallel pattern): the input is the sequence shifted right by one
frame (an all-mask-token frame first), attention is causal, and the output at position t predicts all
K codebooks of frame t at once. Decoding keeps a KV cache, so each frame costs one forward pass of one
position (a doubled batch with CFG). The training side is `hybrid_losses_inputs` (used by the MAGNeT
solver with `--hybrid`): a causal, shifted pass over the whole clip whose loss covers a random prefix,
alongside the usual masked pass over the rest with the prefix left unmasked.

Randomness: frame t draws from its clip's `ClipRandom` stream AR_STREAM_BASE + t, one uniform per
codebook, so a clip's tokens depend only on its seed and prompt (docs/determinism.md).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from ..modules.transformer import KVCache
from .lm import Condition, LMModel
from .musicgen import MusicGenDecoding, next_frame_tokens
from .sampling import RNG, as_clip_random

# random streams of the autoregressive frames: apart from MAGNeT's stage * 65536 + step streams
AR_STREAM_BASE = 1 << 24


# The autoregressive frames sample with MusicGen's knobs and defaults (top-k 250, temperature 1, CFG 3).
ARSettings = MusicGenDecoding


def causal_mask(queries: int, keys: int, device: torch.device | str) -> torch.Tensor:
    """Boolean [queries, keys] mask (True = attend) for the last `queries` positions of `keys`: causal."""
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(diagonal=keys - queries)


def shift_right(codes: torch.Tensor, special: int) -> torch.Tensor:
    """codes [B, K, T] -> [B, K, T]: one all-special frame first, the last frame dropped (teacher forcing)."""
    first = torch.full_like(codes[..., :1], special)
    return torch.cat([first, codes[..., :-1]], dim=-1)


def make_cross_kv(lm: LMModel, condition: Condition, batch: int) -> Optional[list]:
    """Cross-attention keys of [condition; null condition] (CFG rows), padded keys masked; None without condition."""
    if condition is None:
        return None
    device = lm.emb[0].weight.device
    cond, mask = condition if isinstance(condition, tuple) else (condition, None)
    cond = cond.to(device=device, dtype=lm.emb[0].weight.dtype)
    if cond.shape[0] != batch:
        raise ValueError(f"condition batch {cond.shape[0]} != num_samples {batch}")
    mask = torch.ones(cond.shape[:2], device=device) if mask is None else mask.to(device)
    return lm.cross_kv((torch.cat([cond, torch.zeros_like(cond)], dim=0),
                        torch.cat([mask, torch.zeros_like(mask)], dim=0)))


@torch.no_grad()
def decode_frames(lm: LMModel, codes: torch.Tensor, start: int, stop: int, settings: ARSettings,
                  cross_kv: Optional[list], generators: Optional[RNG] = None,
                  callback: Optional[Callable[[int], None]] = None) -> int:
    """Fill frames start..stop-1 of codes [B, K, T] in place, one frame per step, causally.

    Frames before `start` are the fixed context (an audio prompt): they are fed in one causal pass
    that fills the KV cache. Returns the number of forward passes.
    """
    if stop <= start:
        return 0
    B = codes.shape[0]
    device = codes.device
    rng = as_clip_random(generators, device)
    use_cfg = cross_kv is not None
    inp = shift_right(codes[..., :start + 1], lm.special_token_id)  # positions 0..start
    cache = KVCache(max_len=stop + 1)
    passes = 0
    for t in range(start, stop):
        x = torch.cat([inp, inp], dim=0) if use_cfg else inp
        mask = causal_mask(x.shape[-1], cache.offset + x.shape[-1], device)
        logits = lm(x, None, None, cross_kv=cross_kv, cache=cache, attn_mask=mask)[:, :, -1].float()  # [rows,K,card]
        passes += 1
        nxt = next_frame_tokens(logits, B if use_cfg else 0, settings, rng, AR_STREAM_BASE + t)
        codes[:, :, t] = nxt
        inp = nxt.unsqueeze(-1)
        if callback is not None:
            callback(t - start + 1)
    return passes


@torch.no_grad()
def autoregressive_generate(lm: LMModel, condition: Condition, num_samples: int, frames: int,
                            settings: Optional[ARSettings] = None, generators: Optional[RNG] = None,
                            prompt: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Plain autoregressive decoding of a MAGNeT LM (every frame causal) -> codes [B, K, frames].

    prompt [B, K, P]: fixed first frames (continuation), kept as they are.
    """
    device = lm.emb[0].weight.device
    codes = torch.full((num_samples, lm.n_q, frames), lm.special_token_id, dtype=torch.long, device=device)
    start = 0
    if prompt is not None:
        start = min(prompt.shape[-1], frames)
        codes[..., :start] = prompt[..., :start].to(device)
    cross_kv = make_cross_kv(lm, condition, num_samples)
    decode_frames(lm, codes, start, frames, settings or ARSettings(), cross_kv, generators)
    return codes


def causal_logits(lm: LMModel, codes: torch.Tensor, condition: Any = None) -> torch.Tensor:
    """Teacher-forced autoregressive logits [B, K, T, card]: position t predicts frame t from frames < t.

    The training pass of Hybrid-MAGNeT's prefix (one causal forward over the shifted clip).
    """
    T = codes.shape[-1]
    return lm(shift_right(codes, lm.special_token_id), condition, None,
              attn_mask=causal_mask(T, T, codes.device))
