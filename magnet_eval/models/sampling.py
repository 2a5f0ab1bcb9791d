"""Token sampling shared by MAGNeT and MusicGen: temperature, top-k, top-p (nucleus), per-clip randomness.

Per-clip determinism without a loop over the batch: a `ClipRandom` holds one 64-bit key per clip
and turns (key, stream, position) into a uniform number with a counter-based hash computed by
tensor ops, so every row of the batch draws in one batched operation and a clip's draws depend
only on its own key, the stream (the decoding step) and the position, never on the other rows,
the batch size or the clip's place in the batch. A token is then drawn by inverse-CDF sampling
(the first token whose cumulative probability exceeds u * total), which needs one uniform per
distribution. The unseeded path (`rng=None`) is plain batched `torch.multinomial`.

The hash is a chain of 32-bit integer mixers (xor-shift-multiply, multiplier 0x45d9f3b) kept in
int64 tensors; every product stays below 2**63, so there is no overflow on any device and the
numbers are the same on CPU and GPU.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

_M32 = 0xFFFFFFFF
_MULT = 0x45D9F3B  # < 2**27: x (< 2**32) * _MULT < 2**59, exact in int64
_GOLDEN = 0x9E3779B9


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _MULT) & _M32
    x = x ^ (x >> 16)
    x = (x * _MULT) & _M32
    return x ^ (x >> 16)


def hash_uniform(keys: torch.Tensor, stream: int, index: torch.Tensor) -> torch.Tensor:
    """Uniforms in [0, 1) (float32, 24 bits) for keys [B] (int64) x index [...] (int64 >= 0) -> [B, ...].

    Pure function of (key, stream, index): the same triple gives the same number on every call.
    """
    shape = (keys.shape[0],) + (1,) * index.dim()
    k = keys.view(shape)
    lo, hi = k & _M32, (k >> 32) & _M32
    s = int(stream) & _M32
    h = _mix32((index.unsqueeze(0) & _M32) ^ _GOLDEN)
    h = _mix32(h ^ s)
    h = _mix32(h ^ hi)
    h = _mix32(h ^ lo)
    h = _mix32((h + (index.unsqueeze(0) >> 32)) & _M32)  # indices past 2**32 (never in practice) stay distinct
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


class ClipRandom:
    """One random stream per clip: `uniform(stream, shape)` -> [B, *shape] draws, batch-invariant.

    keys: one integer seed per clip (the clip's derived seed). Streams must be distinct for every
    draw of a generation (e.g. the decoding step); positions inside a stream are the flattened
    index over `shape`. stream=None takes the next value of a per-object counter (0, 1, 2, ... in
    call order), like a generator's state advancing, for callers without a natural step number.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.seeds = [int(s) & ((1 << 63) - 1) for s in seeds]
        self.keys = torch.tensor(self.seeds, dtype=torch.int64, device=device)
        self.calls = 0

    def __len__(self) -> int:
        return len(self.seeds)

    def to(self, device: torch.device | str) -> "ClipRandom":
        return ClipRandom(self.seeds, device)

    def uniform(self, stream: Optional[int], shape: Sequence[int]) -> torch.Tensor:
        if stream is None:
            stream, self.calls = (1 << 31) + self.calls, self.calls + 1  # apart from explicit step numbers
        n = 1
        for d in shape:
            n *= int(d)
        index = torch.arange(n, dtype=torch.int64, device=self.keys.device).view(*shape)
        return hash_uniform(self.keys, stream, index)


RNG = Union[ClipRandom, Sequence[torch.Generator]]


def as_clip_random(rng: Optional[RNG], device: torch.device | str) -> Optional[ClipRandom]:
    """A ClipRandom from a ClipRandom, or from a list of seeded torch.Generators: each gives a fresh
    key per call, drawn from (and advancing) its own state, so repeated calls do not repeat draws."""
    if rng is None:
        return None
    if isinstance(rng, ClipRandom):
        if rng.keys.device == torch.device(device):
            return rng
        moved = rng.to(device)
        moved.calls = rng.calls
        return moved
    return ClipRandom([int(torch.randint(0, 1 << 62, (1,), generator=g, device=g.device)) for g in rng], device)


def top_k_filter(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k most probable tokens (ties with the k-th kept), renormalised."""
    k = min(k, probs.shape[-1])
    kth = torch.topk(probs, k, dim=-1).values[..., -1:]
    kept = probs * (probs >= kth)
    return kept / kept.sum(dim=-1, keepdim=True)


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose mass reaches p (nucleus), renormalised.

    A token is dropped when the mass of the tokens strictly more probable than it already exceeds p.
    Ties at the boundary are broken by token id (as a stable sort would), the same in any batch.
    """
    kept = None
    if probs.device.type == "cpu" and probs.dtype == torch.float32 and probs.numel():
        kept = _nucleus_from_sorted_values(probs, p)
    if kept is None:
        kept = _nucleus_by_argsort(probs, p)
    return kept / kept.sum(dim=-1, keepdim=True)


def _nucleus_by_argsort(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The nucleus's probabilities (others zero, not renormalised) through a stable descending sort of
    the tokens: the reference formulation."""
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs = sorted_probs * (before <= p)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def _nucleus_from_sorted_values(probs: torch.Tensor, p: float) -> Optional[torch.Tensor]:
    """`_nucleus_by_argsort`'s result, bit for bit, from the sorted values alone (numpy's SIMD sort, ~4x
    faster than torch's sort with indices on CPU; MAGNeT's sampler spent a fifth of its time sorting).

    The sorted values, hence their cumulative sums and which sorted positions are kept, are those of
    the stable sort. When the kept positions are a prefix (always, up to rounding), the kept tokens are
    those above the smallest kept value v, plus the first (by token id) of the tokens equal to v, as
    many as the prefix holds; rows where rounding makes them not a prefix go through the argsort. None
    when a row holds a NaN or an infinity (the sort puts them first): the argsort then decides.
    """
    import numpy as np

    flat = probs.reshape(-1, probs.shape[-1])
    card = flat.shape[-1]
    sorted_probs = torch.from_numpy(np.ascontiguousarray(np.sort(flat.numpy(), axis=-1)[:, ::-1]))
    if not bool(torch.isfinite(sorted_probs[:, 0]).all()):
        return None
    keep = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) <= p  # [N, card] over sorted positions
    n_keep = keep.sum(dim=-1, keepdim=True)
    first_dropped = (~keep).to(torch.uint8).argmax(dim=-1, keepdim=True)
    prefix = (n_keep == card) | (first_dropped == n_keep)
    v = sorted_probs.gather(-1, (n_keep - 1).clamp(min=0))  # the smallest kept value
    mask = flat >= v
    # rows where more tokens equal v than the prefix holds: the first of them by token id
    tie = ((mask.sum(dim=-1, keepdim=True) != n_keep) & prefix).nonzero()[:, 0]
    if tie.numel():
        above, equal = flat[tie] > v[tie], flat[tie] == v[tie]
        room = n_keep[tie] - above.sum(dim=-1, keepdim=True)
        mask[tie] = above | (equal & (torch.cumsum(equal, dim=-1) <= room))
    kept = torch.where(mask, flat, torch.zeros((), dtype=flat.dtype))
    if not bool(prefix.all()):
        rows = (~prefix).nonzero()[:, 0]
        kept[rows] = _nucleus_by_argsort(flat[rows], p)
    return kept.view(probs.shape)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draw from each distribution probs [..., card] with its uniform u [...] -> LongTensor [..., 1].

    Picks the first token whose cumulative mass exceeds u * total (a token of zero mass is never
    picked); a row is computed from its own numbers only, so the draw is batch-invariant.
    """
    cdf = torch.cumsum(probs.float(), dim=-1)
    total = cdf[..., -1:]
    idx = torch.searchsorted(cdf.contiguous(), (u.unsqueeze(-1) * total).contiguous(), right=True)
    # u * total can round up to total: fall back to the last token that has mass (first max of the cdf)
    last = torch.argmax(cdf, dim=-1, keepdim=True)
    return torch.minimum(idx, last)


def multinomial(probs: torch.Tensor, rng: Optional[RNG] = None, stream: Optional[int] = None) -> torch.Tensor:
    """One draw per distribution: probs [B, ..., card] -> LongTensor [B, ..., 1].

    With `rng` (a ClipRandom or one seeded torch.Generator per row) row b draws from its clip's
    stream `stream` (None: the ClipRandom's next one), all rows in one batched operation; without
    it, batched `torch.multinomial`.
    """
    card = probs.shape[-1]
    clip = as_clip_random(rng, probs.device)
    if clip is None:
        flat = torch.multinomial(probs.reshape(-1, card).float(), 1)
        return flat.view(*probs.shape[:-1], 1)
    if len(clip) != probs.shape[0]:
        raise ValueError(f"{len(clip)} random streams for a batch of {probs.shape[0]}")
    return inverse_cdf(probs, clip.uniform(stream, probs.shape[1:-1]))


def filter_probs(probs: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Top-p (taking precedence, as audiocraft) or top-k filtering of probabilities."""
    if top_p > 0.0:
        return top_p_filter(probs, top_p)
    if top_k > 0:
        return top_k_filter(probs, top_k)
    return probs


def sample_from_probs(probs: torch.Tensor, top_k: int = 0, top_p: float = 0.0,
                      generators: Optional[RNG] = None, stream: Optional[int] = None, *,
                      uniforms: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sample token ids [..., 1] from probabilities [..., card] after top-p / top-k filtering.

    uniforms [...]: explicit draws (e.g. a ClipRandom's, gathered at the positions to sample);
    else `generators` / `stream` as in `multinomial`; else unseeded torch.multinomial.
    """
    probs = filter_probs(probs, top_k, top_p)
    if uniforms is not None:
        return inverse_cdf(probs, uniforms)
    return multinomial(probs, generators, stream)


def make_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> ClipRandom:
    """One random stream per sample (a ClipRandom keyed by the seeds)."""
    return ClipRandom(seeds, device)
