"""MAGNeT's span masking: the cosine rate schedule, the rate -> span-count lookup, masks, stage choice.

MAGNeT masks spans of `span_len` tokens (3 frames = 60 ms at 50 Hz) rather than single tokens.
A rate gamma(t) = cos(pi*t/2) with t ~ U(0,1) per sample gives the fraction of a sequence to mask.
Spans are placed by drawing u distinct start positions out of T (spans may overlap and are cut at
the sequence end), so the rate has to be translated into u: the paper's Appendix C uses the
expected masked fraction of u random spans, 1 - C(T-L, u) / C(T, u), and picks the u whose
expected fraction is nearest the rate. The table of expected fractions is computed once per
(T, L) and cached.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import torch


def cosine_schedule(t: torch.Tensor) -> torch.Tensor:
    """gamma(t) = cos(pi*t/2): the masking rate for a uniform t in [0, 1] (1 -> all masked at t=0)."""
    return torch.cos(t * math.pi / 2)


@lru_cache(maxsize=64)
def expected_masked_fraction(T: int, span_len: int) -> torch.Tensor:
    """Expected masked fraction for u = 0..T span starts: 1 - C(T-L, u) / C(T, u) (Appendix C).

    Computed in log space (lgamma) so T of several thousand frames stays exact enough.
    Returns a float64 tensor of length T + 1, non-decreasing in u.
    """
    if T < 1 or span_len < 1:
        raise ValueError(f"need T >= 1 and span_len >= 1, got T={T}, span_len={span_len}")
    L = min(span_len, T)
    u = torch.arange(T + 1, dtype=torch.float64)
    # C(T-L, u) / C(T, u) = [(T-L)! (T-u)!] / [T! (T-L-u)!]; zero once u > T - L
    fraction = torch.ones(T + 1, dtype=torch.float64)
    valid = u <= T - L
    uv = u[valid]
    log_ratio = (
        math.lgamma(T - L + 1)
        + torch.lgamma(T - uv + 1)
        - math.lgamma(T + 1)
        - torch.lgamma(T - L - uv + 1)
    )
    fraction[valid] = 1.0 - torch.exp(log_ratio)
    return fraction


def spans_for_rate(rate: torch.Tensor, T: int, span_len: int, min_spans: int = 1) -> torch.Tensor:
    """Number of span starts per sample whose expected masked fraction is nearest `rate` (long tensor).

    At least `min_spans` (1) so every sample has masked tokens to learn from.
    """
    table = expected_masked_fraction(T, span_len).to(rate.device)
    dist = (table[None, :] - rate.double()[:, None]).abs()
    u = dist.argmin(dim=1)
    return u.clamp(min=min_spans, max=T)


def span_mask(
    n_spans: torch.Tensor, T: int, span_len: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Boolean mask [B, T]: for each row, n_spans[b] distinct random starts, each masking span_len frames.

    Spans may overlap and are truncated at T, as in training (inference uses non-overlapping spans).
    """
    B = n_spans.shape[0]
    device = n_spans.device
    # a random permutation per row: the first u entries are the starts
    scores = torch.rand(B, T, generator=generator, device="cpu").to(device)
    order = scores.argsort(dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(T, device=device).expand(B, T).contiguous())
    starts = rank < n_spans[:, None]  # [B, T] boolean: True at chosen span starts
    if span_len == 1:
        return starts
    # a frame is masked when a start lies within the previous span_len - 1 frames (or at it)
    s = starts.float()[:, None, :]  # [B, 1, T]
    kernel = torch.ones(1, 1, span_len, device=device)
    covered = torch.nn.functional.conv1d(torch.nn.functional.pad(s, (span_len - 1, 0)), kernel)
    return covered[:, 0, :] > 0.5


def sample_masks(
    B: int,
    T: int,
    span_len: int = 3,
    generator: Optional[torch.Generator] = None,
    device: torch.device | str = "cpu",
    t: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw t ~ U(0,1) per sample (unless given), turn gamma(t) into span counts, build the masks.

    Returns (mask [B, T] bool, rate [B] float): rate is the scheduled gamma(t) per sample.
    """
    if t is None:
        t = torch.rand(B, generator=generator)
    rate = cosine_schedule(t.float().cpu())
    n = spans_for_rate(rate, T, span_len)
    mask = span_mask(n, T, span_len, generator=generator)
    return mask.to(device), rate.to(device)


def choose_stage(n_q: int, generator: Optional[torch.Generator] = None) -> int:
    """The codebook stage trained this step, uniform over 0..n_q-1 (shared by the whole batch)."""
    return int(torch.randint(0, n_q, (1,), generator=generator).item())
