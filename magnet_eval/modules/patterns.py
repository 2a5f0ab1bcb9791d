"""Codebook interleaving patterns: how K parallel token streams become one sequence for the LM.

- `ParallelPattern` (MAGNeT): all K codebooks of frame t sit at sequence step t; nothing to undo.
- `DelayPattern` (MusicGen, delays [0, 1, 2, 3]): codebook q is shifted right by its delay, after
  one initial all-special step, as audiocraft's `DelayedPatternProvider` with flatten_first=0 and
  empty_initial=0. In sequence coordinates, step s of codebook q holds the token of frame
  t = s - 1 - delay_q (special token when that frame does not exist). A full sequence of T frames has
  T + max_delay + 1 steps; `valid_only=True` keeps the first T + 1 (what audiocraft trains on).
  The LM's output at step s predicts step s + 1, so the logits of frame t, codebook q, are read at
  step t + delay_q.
"""

from __future__ import annotations

from typing import Sequence

import torch


class ParallelPattern:
    """Identity pattern: the sequence is the codes themselves."""

    delays: tuple[int, ...] = ()

    def __init__(self, n_q: int):
        self.n_q = n_q
        self.delays = tuple(0 for _ in range(n_q))

    def build(self, codes: torch.Tensor, special: int, valid_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [B, K, T] -> (sequence [B, K, T], mask [K, T] all True)."""
        return codes, torch.ones(codes.shape[1:], dtype=torch.bool, device=codes.device)

    def revert(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return sequence, torch.ones(sequence.shape[1:], dtype=torch.bool, device=sequence.device)


class DelayPattern:
    """Delay pattern (MusicGen): codebook q is delayed by delays[q] steps, after one empty start step."""

    def __init__(self, delays: Sequence[int] = (0, 1, 2, 3)):
        delays = [int(d) for d in delays]
        if not delays or delays[0] != 0 or any(b < a for a, b in zip(delays, delays[1:])):
            raise ValueError(f"delays must start at 0 and be non-decreasing, got {delays}")
        self.delays = tuple(delays)
        self.n_q = len(delays)
        self.max_delay = max(delays)

    def sequence_length(self, timesteps: int, valid_only: bool = False) -> int:
        """Number of sequence steps for `timesteps` frames (T + 1 valid, T + max_delay + 1 in full)."""
        return timesteps + 1 if valid_only else timesteps + self.max_delay + 1

    def frame_index(self, steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """[K, steps] frame index t = s - 1 - delay_q held at each sequence step (may be out of range)."""
        s = torch.arange(steps, device=device).view(1, -1)
        d = torch.tensor(self.delays, device=device).view(-1, 1)
        return s - 1 - d

    def step_mask(self, steps: int, timesteps: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """[K, steps] True where the step holds a real frame (0 <= t < timesteps)."""
        t = self.frame_index(steps, device)
        return (t >= 0) & (t < timesteps)

    def build(self, codes: torch.Tensor, special: int, valid_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [B, K, T] -> (sequence [B, K, S], mask [K, S]); special token where no frame exists."""
        B, K, T = codes.shape
        if K != self.n_q:
            raise ValueError(f"codes have {K} codebooks, pattern has {self.n_q}")
        S = self.sequence_length(T, valid_only)
        t = self.frame_index(S, codes.device)
        mask = (t >= 0) & (t < T)
        index = t.clamp(0, max(T - 1, 0)).unsqueeze(0).expand(B, -1, -1)
        seq = torch.gather(codes, 2, index) if T > 0 else codes.new_zeros(B, K, S)
        seq = torch.where(mask.unsqueeze(0), seq, torch.full_like(seq, special))
        return seq, mask

    def revert(self, sequence: torch.Tensor, timesteps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """sequence [B, K, S] -> (codes [B, K, T], mask [K, T]): frame t of codebook q is step t + 1 + delay_q."""
        B, K, S = sequence.shape
        T = S - self.max_delay - 1 if timesteps is None else timesteps
        steps = torch.arange(T, device=sequence.device).view(1, -1) + 1 + torch.tensor(
            self.delays, device=sequence.device).view(-1, 1)
        mask = steps < S
        index = steps.clamp(max=S - 1).unsqueeze(0).expand(B, -1, -1)
        return torch.gather(sequence, 2, index), mask

    def revert_logits(self, logits: torch.Tensor, timesteps: int, fill: float = float("nan")
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """LM output [B, K, S, card] -> (logits of each frame [B, K, T, card], mask [K, T]).

        The prediction of frame t, codebook q, comes from step t + delay_q (it is the next token of
        that step); frames whose step is past the sequence end get `fill` and mask False.
        """
        B, K, S, card = logits.shape
        steps = torch.arange(timesteps, device=logits.device).view(1, -1) + torch.tensor(
            self.delays, device=logits.device).view(-1, 1)
        # the token predicted at step s sits at step s + 1, which must be a step of the input sequence
        mask = steps + 1 < S
        index = steps.clamp(max=S - 1).view(1, K, timesteps, 1).expand(B, -1, -1, card)
        out = torch.gather(logits, 2, index)
        out = torch.where(mask.view(1, K, timesteps, 1), out, torch.full_like(out, fill))
        return out, mask


def get_pattern(modeling: str, n_q: int, delays: Sequence[int] | None = None) -> ParallelPattern | DelayPattern:
    """The pattern named in an audiocraft config (`codebooks_pattern.modeling`)."""
    if modeling == "parallel":
        return ParallelPattern(n_q)
    if modeling == "delay":
        delays = list(delays) if delays is not None else list(range(n_q))
        if len(delays) != n_q:
            raise ValueError(f"{len(delays)} delays for {n_q} codebooks")
        return DelayPattern(delays)
    raise ValueError(f"unsupported codebook pattern {modeling!r} (supported: parallel, delay)")
