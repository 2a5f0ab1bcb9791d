"""VampNet's prompts as keep-masks over RVQ tokens, and their textual form for the command line.

A keep-mask is a bool tensor shaped like the tokens [B, K, T]: True = the token is kept from the
input (the prompt), False = the model regenerates it. The reference's `vampnet/mask.py` uses the
opposite sense (1 = to generate); its `mask_and` (keep where either keeps) is `keep_or` here and
its `mask_or` is `keep_and`. Every builder is a pure function of its arguments (dropout takes a
seeded generator), so a prompt is reproducible and testable on exact positions.

Textual form (`parse_prompt`): `periodic:P[:W]`, `upper:N`, `beat:W`, `onset:W`, `inpaint:T0-T1`,
`prefix:S`, `suffix:S`, `dropout:P`, `all`, `none` (seconds for times and widths). `build_keep`
combines several as the reference's `Interface.build_mask` does: the time prompts (periodic, beat,
onset, inpaint, prefix, suffix, all, none) are OR-ed, then dropout removes frames, then `upper:N`
restricts what is kept to the lowest N codebooks. With only `upper:N` every frame of the lowest N
codebooks is kept: the codec-only compression baseline at that bitrate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch

from ..errors import InvalidOptionError

# ---- the pure builders ---------------------------------------------------------------------------


def _check_tokens(tokens: torch.Tensor) -> tuple[int, int, int]:
    if tokens.ndim != 3:
        raise InvalidOptionError(f"tokens must be [batch, codebooks, frames], got shape {tuple(tokens.shape)}")
    B, K, T = tokens.shape
    return B, K, T


def keep_all(tokens: torch.Tensor) -> torch.Tensor:
    """Keep every token (vamping with it returns the input unchanged)."""
    _check_tokens(tokens)
    return torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)


def keep_none(tokens: torch.Tensor) -> torch.Tensor:
    """Keep nothing: unconditional generation."""
    _check_tokens(tokens)
    return torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)


def keep_frames(tokens: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Keep all codebooks of the frames where `frames` [T] (bool) is True."""
    B, K, T = _check_tokens(tokens)
    if frames.shape != (T,):
        raise InvalidOptionError(f"frame selection has shape {tuple(frames.shape)}, expected ({T},)")
    return frames.to(device=tokens.device, dtype=torch.bool).view(1, 1, T).expand(B, K, T).clone()


def periodic(tokens: torch.Tensor, period: int, width: int = 1, offset: int = 0) -> torch.Tensor:
    """Keep every `period`-th frame (frames offset, offset+P, ...), each with `width` frames around it.

    As the reference, a kept frame j keeps [j - width // 2, j + width // 2]; period 1 keeps all.
    The reference rolls the pattern by a random offset in its interface; here the offset is an argument.
    """
    if int(period) < 1:
        raise InvalidOptionError(f"periodic prompt: period must be >= 1, got {period}")
    if int(width) < 1:
        raise InvalidOptionError(f"periodic prompt: width must be >= 1, got {width}")
    _, _, T = _check_tokens(tokens)
    pos = torch.arange(T, device=tokens.device)
    half = int(width) // 2
    # distance from each frame to the nearest anchor (anchors at offset + n * period)
    phase = (pos - int(offset)) % int(period)
    dist = torch.minimum(phase, int(period) - phase)
    return keep_frames(tokens, dist <= half)


def lowest_codebooks(tokens: torch.Tensor, n: int) -> torch.Tensor:
    """Keep every frame of the lowest `n` codebooks (the reference's upper-codebook mask)."""
    _, K, _ = _check_tokens(tokens)
    if int(n) < 0:
        raise InvalidOptionError(f"upper-codebook prompt: number of kept codebooks must be >= 0, got {n}")
    keep = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    keep[:, : min(int(n), K)] = True
    return keep


def around_times(tokens: torch.Tensor, times_s: Sequence[float], frame_rate: float, before_s: float,
                 after_s: Optional[float] = None) -> torch.Tensor:
    """Keep the frames within [t - before_s, t + after_s] of each event time t (beats, onsets).

    The frame of t is round(t * frame_rate); the window is round(before_s * frame_rate) frames
    before and round(after_s * frame_rate) after it, so a width of 0 keeps exactly that frame.
    """
    _, _, T = _check_tokens(tokens)
    after_s = before_s if after_s is None else after_s
    if before_s < 0 or after_s < 0:
        raise InvalidOptionError(f"event prompt: widths must be >= 0 s, got {before_s}, {after_s}")
    b, a = round(before_s * frame_rate), round(after_s * frame_rate)
    frames = torch.zeros(T, dtype=torch.bool)
    for t in times_s:
        c = round(float(t) * frame_rate)
        lo, hi = max(c - b, 0), min(c + a, T - 1)
        if lo <= hi:
            frames[lo:hi + 1] = True
    return keep_frames(tokens, frames)


def inpaint(tokens: torch.Tensor, start_s: float, end_s: float, frame_rate: float) -> torch.Tensor:
    """Regenerate the frames in [start_s, end_s) and keep the rest."""
    _, _, T = _check_tokens(tokens)
    if not 0 <= start_s <= end_s:
        raise InvalidOptionError(f"inpaint prompt: need 0 <= start <= end, got {start_s}-{end_s}")
    lo, hi = round(start_s * frame_rate), round(end_s * frame_rate)
    frames = torch.ones(T, dtype=torch.bool)
    frames[min(lo, T):min(hi, T)] = False
    return keep_frames(tokens, frames)


def prefix(tokens: torch.Tensor, seconds: float, frame_rate: float) -> torch.Tensor:
    """Keep the first `seconds` (continuation / outpainting after the prompt)."""
    _, _, T = _check_tokens(tokens)
    if seconds < 0:
        raise InvalidOptionError(f"prefix prompt: seconds must be >= 0, got {seconds}")
    frames = torch.zeros(T, dtype=torch.bool)
    frames[: min(round(seconds * frame_rate), T)] = True
    return keep_frames(tokens, frames)


def suffix(tokens: torch.Tensor, seconds: float, frame_rate: float) -> torch.Tensor:
    """Keep the last `seconds` (outpainting before them)."""
    _, _, T = _check_tokens(tokens)
    if seconds < 0:
        raise InvalidOptionError(f"suffix prompt: seconds must be >= 0, got {seconds}")
    n = min(round(seconds * frame_rate), T)
    frames = torch.zeros(T, dtype=torch.bool)
    if n > 0:
        frames[T - n:] = True
    return keep_frames(tokens, frames)


def dropout(keep: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Regenerate round(p * T) distinct frames drawn with `generator` (all codebooks), whatever else keeps them.

    The reference draws int(p * T) frames with replacement (so fewer may be dropped) from the
    global RNG; distinct frames from a seeded generator make the count exact and reproducible.
    """
    if not 0.0 <= p <= 1.0:
        raise InvalidOptionError(f"dropout prompt: probability must be in [0, 1], got {p}")
    T = keep.shape[-1]
    drop = torch.randperm(T, generator=generator)[: round(p * T)]
    out = keep.clone()
    out[..., drop.to(keep.device)] = False
    return out


def keep_or(*keeps: torch.Tensor) -> torch.Tensor:
    """Kept where any prompt keeps (the reference's `mask_and` of its to-generate masks)."""
    return _combine(keeps, torch.logical_or)


def keep_and(*keeps: torch.Tensor) -> torch.Tensor:
    """Kept only where every prompt keeps (the reference's `mask_or`)."""
    return _combine(keeps, torch.logical_and)


def _combine(keeps: Sequence[torch.Tensor], op) -> torch.Tensor:
    if not keeps:
        raise InvalidOptionError("no masks to combine")
    out = keeps[0].bool()
    for k in keeps[1:]:
        if k.shape != out.shape:
            raise InvalidOptionError(f"masks must have the same shape, got {tuple(out.shape)} and {tuple(k.shape)}")
        out = op(out, k.bool())
    return out


def kept_bitrate(keep: torch.Tensor, frame_rate: float, cardinality: int) -> float:
    """Bits per second carried by the kept tokens: kept count * log2(cardinality) / duration (mean over batch)."""
    B, _, T = keep.shape
    if T == 0:
        return 0.0
    return float(keep.sum()) / B * math.log2(cardinality) / (T / frame_rate)


# ---- textual form --------------------------------------------------------------------------------

TIME_KINDS = ("periodic", "beat", "onset", "inpaint", "prefix", "suffix", "all", "none")
KINDS = TIME_KINDS + ("upper", "dropout")
SYNTAX = ("periodic:P[:W] (keep every P-th frame, W frames wide), upper:N (keep the lowest N codebooks), "
          "beat:W / onset:W (keep +-W s around beats / onsets), inpaint:T0-T1 (regenerate T0..T1 s), "
          "prefix:S / suffix:S (keep the first / last S s), dropout:P (regenerate a fraction P of frames), "
          "all, none")

_NUM = r"\d+(?:\.\d*)?|\.\d+"


@dataclass(frozen=True)
class Prompt:
    """One parsed prompt: its kind and its numbers (see SYNTAX); `text` is what the user wrote."""

    kind: str
    args: tuple[float, ...]
    text: str

    @property
    def needs_beats(self) -> bool:
        return self.kind == "beat"

    @property
    def needs_onsets(self) -> bool:
        return self.kind == "onset"


def parse_prompt(text: str) -> Prompt:
    """Parse one `--prompt` string; a string that does not parse or a value out of range is an error naming it."""
    s = str(text).strip()
    kind, _, rest = s.partition(":")
    kind = kind.lower()

    def bad(why: str) -> InvalidOptionError:
        return InvalidOptionError(f"--prompt {text!r}: {why}. Prompts: {SYNTAX}")

    if kind not in KINDS:
        raise bad(f"unknown prompt kind {kind!r}")
    if kind in ("all", "none"):
        if rest:
            raise bad(f"{kind} takes no value")
        return Prompt(kind, (), s)
    if kind == "inpaint":
        m = re.fullmatch(rf"({_NUM})-({_NUM})", rest)
        if not m:
            raise bad("expected inpaint:T0-T1 in seconds, e.g. inpaint:1.0-2.0")
        t0, t1 = float(m.group(1)), float(m.group(2))
        if t1 < t0:
            raise bad(f"end {t1} is before start {t0}")
        return Prompt(kind, (t0, t1), s)
    parts = rest.split(":") if rest else []
    if not parts or not all(re.fullmatch(rf"-?(?:{_NUM})", p) for p in parts):
        raise bad(f"expected {kind}:NUMBER")
    nums = tuple(float(p) for p in parts)
    if kind == "periodic":
        if len(nums) > 2 or any(n != int(n) for n in nums):
            raise bad("expected periodic:P or periodic:P:W with whole numbers")
        if nums[0] < 1:
            raise bad(f"period P must be >= 1, got {nums[0]:g}")
        if len(nums) == 2 and nums[1] < 1:
            raise bad(f"width W must be >= 1 frame, got {nums[1]:g}")
        return Prompt(kind, nums, s)
    if len(nums) != 1:
        raise bad(f"expected one number after {kind}:")
    v = nums[0]
    if kind == "upper" and (v != int(v) or v < 0):
        raise bad(f"N must be a whole number >= 0, got {v:g}")
    if kind == "dropout" and not 0.0 <= v <= 1.0:
        raise bad(f"P must be in [0, 1], got {v:g}")
    if kind in ("beat", "onset", "prefix", "suffix") and v < 0:
        raise bad(f"seconds must be >= 0, got {v:g}")
    return Prompt(kind, nums, s)


def parse_prompts(texts: Iterable[str]) -> list[Prompt]:
    """Parse every `--prompt` value."""
    return [parse_prompt(t) for t in texts]


def build_keep(prompts: Sequence[Prompt], tokens: torch.Tensor, frame_rate: float,
               beats_s: Optional[Sequence[float]] = None, onsets_s: Optional[Sequence[float]] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The keep-mask of several prompts, combined as the reference's interface (see the module doc).

    beats_s / onsets_s: event times in seconds (from `prompts.events`), needed by beat / onset prompts.
    generator: the RNG of dropout prompts (seed 0 when not given).
    """
    time_keeps: list[torch.Tensor] = []
    for p in prompts:
        if p.kind == "periodic":
            time_keeps.append(periodic(tokens, int(p.args[0]), int(p.args[1]) if len(p.args) > 1 else 1))
        elif p.kind in ("beat", "onset"):
            times = beats_s if p.kind == "beat" else onsets_s
            if times is None:
                raise InvalidOptionError(f"--prompt {p.text!r}: no {p.kind} times were given")
            time_keeps.append(around_times(tokens, times, frame_rate, p.args[0]))
        elif p.kind == "inpaint":
            time_keeps.append(inpaint(tokens, p.args[0], p.args[1], frame_rate))
        elif p.kind == "prefix":
            time_keeps.append(prefix(tokens, p.args[0], frame_rate))
        elif p.kind == "suffix":
            time_keeps.append(suffix(tokens, p.args[0], frame_rate))
        elif p.kind == "all":
            time_keeps.append(keep_all(tokens))
        elif p.kind == "none":
            time_keeps.append(keep_none(tokens))
    keep = keep_or(*time_keeps) if time_keeps else keep_all(tokens)
    for p in prompts:
        if p.kind == "dropout":
            keep = dropout(keep, p.args[0], generator or torch.Generator().manual_seed(0))
    for p in prompts:
        if p.kind == "upper":
            keep = keep_and(keep, lowest_codebooks(tokens, int(p.args[0])))
    return keep
