"""Token sampling shared by MAGNeT and MusicGen: temperature, top-k, top-p (nucleus), per-sample RNGs.

Passing one `torch.Generator` per batch row makes each sample's draws depend only on its own
seed, not on which other prompts share its batch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def top_k_filter(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k most probable tokens (ties with the k-th kept), renormalised."""
    k = min(k, probs.shape[-1])
    kth = torch.topk(probs, k, dim=-1).values[..., -1:]
    kept = probs * (probs >= kth)
    return kept / kept.sum(dim=-1, keepdim=True)


def top_p_filter(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose mass reaches p (nucleus), renormalised.

    A token is dropped when the mass of the tokens strictly more probable than it already exceeds p.
    """
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs = sorted_probs * (before <= p)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def multinomial(probs: torch.Tensor, generators: Optional[Sequence[torch.Generator]] = None) -> torch.Tensor:
    """One draw per distribution: probs [B, ..., card] -> LongTensor [B, ..., 1].

    With `generators` (one per row of the leading batch dimension) every row draws from its own RNG.
    """
    card = probs.shape[-1]
    if generators is None:
        flat = torch.multinomial(probs.reshape(-1, card).float(), 1)
        return flat.view(*probs.shape[:-1], 1)
    if len(generators) != probs.shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {probs.shape[0]}")
    rows = [torch.multinomial(probs[b].reshape(-1, card).float(), 1, generator=g).view(*probs.shape[1:-1], 1)
            for b, g in enumerate(generators)]
    return torch.stack(rows, dim=0)


def sample_from_probs(probs: torch.Tensor, top_k: int = 0, top_p: float = 0.0,
                      generators: Optional[Sequence[torch.Generator]] = None) -> torch.Tensor:
    """Sample token ids from probabilities, with top-p taking precedence over top-k (as audiocraft)."""
    if top_p > 0.0:
        probs = top_p_filter(probs, top_p)
    elif top_k > 0:
        probs = top_k_filter(probs, top_k)
    return multinomial(probs, generators)


def make_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One seeded RNG per sample."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
