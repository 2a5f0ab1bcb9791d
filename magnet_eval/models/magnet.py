"""MAGNeT: masked non-autoregressive generation, one codebook stage at a time (audiocraft's MagnetLMModel).

Per stage k (earlier stages fixed, later ones still the mask token), `decoding_steps[k]` iterations:
at iteration i of n, the mask rate is p = cos(pi/2 * i/(n-1)); the least confident spans are
(re)masked, max(int(p * n_spans), 1) of them; the model predicts all frames in one forward pass of a
doubled batch (conditional + unconditional); CFG coefficient p*max + (1-p)*min; temperature
temp * steps_left / n (floor 0.01) when annealed; masked positions take the sampled tokens; each
newly sampled span gets a score (1 - max token prob with 'max', sum of -log p with 'prod') and spans
kept at this iteration are never re-masked. Span arrangements:
- 'nonoverlap': spans are fixed chunks of span_len frames (the sequence is cut to a multiple of it,
  as audiocraft does: 10 s at 50 Hz -> 498 frames);
- 'stride1': any window of span_len frames; the number of spans is searched so that their union
  covers (at most) the scheduled number of tokens.
The condition's cross-attention keys/values are computed once per generation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import torch

from .lm import Condition, LMConfig, LMModel
from .sampling import sample_from_probs

DONT_REMASK = -1e4


@dataclass
class MagnetDecoding:
    """MAGNeT's decoding knobs; defaults are audiocraft's `MAGNeT.set_generation_params`."""

    decoding_steps: list[int] = field(default_factory=lambda: [20, 10, 10, 10])
    temperature: float = 3.0
    top_k: int = 0
    top_p: float = 0.9
    max_cfg_coef: float = 10.0
    min_cfg_coef: float = 1.0
    anneal_temp: bool = True
    span_scoring: str = "max"
    span_arrangement: str = "nonoverlap"
    use_sampling: bool = True

    def __post_init__(self) -> None:
        if self.span_scoring not in ("max", "prod"):
            raise ValueError(f"span_scoring must be 'max' or 'prod', got {self.span_scoring!r}")
        if self.span_arrangement not in ("nonoverlap", "stride1"):
            raise ValueError(f"span_arrangement must be 'nonoverlap' or 'stride1', got {self.span_arrangement!r}")
        if any(int(s) < 1 for s in self.decoding_steps):
            raise ValueError(f"decoding_steps must all be >= 1, got {self.decoding_steps}")
        self.decoding_steps = [int(s) for s in self.decoding_steps]

    def to_dict(self) -> dict:
        return asdict(self)


# ---- schedules (pure functions, so they can be checked by hand) ------------------------------------
def mask_rates(steps: int) -> list[float]:
    """p_i = cos(pi/2 * t_i) for t_i = linspace(0, 1, steps), in float32 as audiocraft computes it."""
    t = torch.linspace(0, 1, steps)
    return [float(torch.cos(x * math.pi * 0.5)) for x in t]


def num_masked_schedule(steps: int, n_units: int) -> list[int]:
    """Spans (or tokens) masked at each iteration: max(int(p_i * n_units), 1)."""
    t = torch.linspace(0, 1, steps)
    return [max(int((torch.cos(x * math.pi * 0.5) * n_units).item()), 1) for x in t]


def cfg_schedule(steps: int, max_coef: float, min_coef: float) -> list[float]:
    """CFG coefficient at each iteration: p_i * max + (1 - p_i) * min (max when all masked, min at the end)."""
    return [p * max_coef + (1 - p) * min_coef for p in mask_rates(steps)]


def temperature_schedule(steps: int, temperature: float, anneal: bool = True) -> list[float]:
    """Temperature at each iteration: temp * steps_left / steps (steps_left = steps-1 .. 0), floor 0.01."""
    return [max(temperature * (left / steps) if anneal else temperature, 1e-2) for left in reversed(range(steps))]


def least_probable_spans_mask(scores: torch.Tensor, n_tokens: int, span_len: int) -> torch.Tensor:
    """'stride1' masking of one sequence: the highest-scoring windows of span_len frames (any start).

    scores [T] (higher = less confident; kept frames carry DONT_REMASK). Windows are ranked by their
    summed score and the largest number u of them whose union covers at most max(n_tokens, span_len)
    frames is taken (binary search: the union grows with u). Returns a bool mask [T].
    """
    T = scores.shape[-1]
    L = min(span_len, T)
    window = scores.unfold(0, L, 1).sum(-1)
    order = torch.argsort(window, descending=True, stable=True)
    target = min(max(n_tokens, L), T)
    offsets = torch.arange(L, device=scores.device)

    def cover(u: int) -> torch.Tensor:
        m = torch.zeros(T, dtype=torch.bool, device=scores.device)
        m[(order[:u].unsqueeze(1) + offsets).flatten()] = True
        return m

    lo, hi = 1, min(len(order), target - L + 1)
    best = cover(lo)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        m = cover(mid)
        if int(m.sum()) <= target:
            lo, best = mid, m
        else:
            hi = mid - 1
    return best


class MagnetLM(LMModel):
    """The MAGNeT LM (parallel pattern, bidirectional, restricted context for stages > 0) and its sampler."""

    def __init__(self, cfg: LMConfig):
        if cfg.kind != "magnet":
            raise ValueError("MagnetLM needs an LMConfig of kind 'magnet'")
        super().__init__(cfg)
        self.last_stats: dict[str, int] = {}

    @staticmethod
    def _sample_masked(probs: torch.Tensor, token_mask: torch.Tensor, dec: MagnetDecoding,
                       generators: Optional[Sequence[torch.Generator]]) -> torch.Tensor:
        """Sample tokens [B, T] at the masked positions only (the others are kept, so are not drawn)."""
        sampled = torch.zeros(token_mask.shape, dtype=torch.long, device=probs.device)
        if generators is None:
            sampled[token_mask] = sample_from_probs(probs[token_mask], dec.top_k, dec.top_p)[..., 0]
            return sampled
        for b, g in enumerate(generators):
            idx = token_mask[b]
            sampled[b, idx] = sample_from_probs(probs[b, idx].unsqueeze(0), dec.top_k, dec.top_p, [g])[0, :, 0]
        return sampled

    @torch.no_grad()
    def generate(self, condition: Condition, num_samples: int, frames: int,
                 decoding: Optional[MagnetDecoding] = None,
                 generators: Optional[Sequence[torch.Generator]] = None,
                 callback: Optional[Callable[[int, int], None]] = None,
                 trace: Optional[list] = None) -> torch.Tensor:
        """Generate codes [B, K, T'] (T' = frames cut to a multiple of span_len for 'nonoverlap').

        condition: (cond, mask) from `self.condition(texts)`, or None for unconditional sampling
        (no CFG). generators: one RNG per sample (see sampling.py). callback(step, total_steps).
        trace: if a list, one dict per iteration is appended (stage, step, mask_rate, n_masked spans
        or tokens, masked_tokens per sample, cfg_coef, temperature) for inspection and tests.
        """
        dec = decoding or MagnetDecoding()
        if len(dec.decoding_steps) != self.n_q:
            raise ValueError(f"decoding_steps has {len(dec.decoding_steps)} entries for {self.n_q} codebooks")
        device = self.emb[0].weight.device
        B, K = num_samples, self.n_q
        L = self.cfg.span_len
        chunked = L > 1 and dec.span_arrangement == "nonoverlap"
        T = (frames // L) * L if chunked else frames
        if T < max(L, 1):
            raise ValueError(f"{frames} frames is too short to generate (span length {L})")
        codes = torch.full((B, K, T), self.special_token_id, dtype=torch.long, device=device)

        cross_kv = None
        use_cfg = condition is not None
        if use_cfg:
            cond, mask = condition if isinstance(condition, tuple) else (condition, None)
            cond = cond.to(device=device, dtype=self.emb[0].weight.dtype)
            if cond.shape[0] != B:
                raise ValueError(f"condition batch {cond.shape[0]} != num_samples {B}")
            cross_kv = self.cross_kv(torch.cat([cond, torch.zeros_like(cond)], dim=0))  # once per generation

        total = sum(dec.decoding_steps)
        step = 0
        forwards = 0
        for stage, n_steps in enumerate(dec.decoding_steps):
            stage_codes = codes[:, stage].clone()  # [B, T], all masked
            n_chunks = T // L if chunked else T
            scores = torch.zeros(B, n_chunks, device=device)
            rates = mask_rates(n_steps)
            n_masked_list = num_masked_schedule(n_steps, n_chunks)
            coefs = cfg_schedule(n_steps, dec.max_cfg_coef, dec.min_cfg_coef)
            temps = temperature_schedule(n_steps, dec.temperature, dec.anneal_temp)
            for i in range(n_steps):
                n_masked = n_masked_list[i]
                # 1) (re)mask the least confident spans
                if chunked:
                    chosen = scores.topk(n_masked, dim=-1).indices
                    chunk_mask = torch.zeros(B, n_chunks, dtype=torch.bool, device=device).scatter(1, chosen, True)
                    token_mask = chunk_mask.repeat_interleave(L, dim=-1)
                elif L > 1:
                    token_mask = torch.stack([least_probable_spans_mask(scores[b], n_masked, L) for b in range(B)])
                else:
                    chosen = scores.topk(n_masked, dim=-1).indices
                    token_mask = torch.zeros(B, T, dtype=torch.bool, device=device).scatter(1, chosen, True)
                stage_codes = stage_codes.masked_fill(token_mask, self.special_token_id)
                codes[:, stage] = stage_codes
                # 2) predict all frames: conditional and unconditional rows in one batch
                if use_cfg:
                    logits = self(torch.cat([codes, codes], dim=0), None, stage, cross_kv=cross_kv, codebooks=[stage])
                    cond_logits, uncond_logits = logits[:, 0].float().split(B, dim=0)
                    stage_logits = uncond_logits + (cond_logits - uncond_logits) * coefs[i]
                else:
                    stage_logits = self(codes, None, stage, codebooks=[stage])[:, 0].float()
                forwards += 1
                if trace is not None:
                    trace.append({"stage": stage, "step": i, "mask_rate": rates[i], "n_masked": n_masked,
                                  "masked_tokens": token_mask.sum(-1).tolist(),
                                  "cfg_coef": coefs[i] if use_cfg else None, "temperature": temps[i]})
                # 3) sample with the (annealed) temperature
                probs = torch.softmax(stage_logits / temps[i], dim=-1)  # [B, T, card]
                if dec.use_sampling:
                    sampled = self._sample_masked(probs, token_mask, dec, generators)
                else:
                    sampled = probs.argmax(dim=-1)
                stage_codes = torch.where(token_mask, sampled, stage_codes)
                codes[:, stage] = stage_codes
                # 4) confidence of what was just sampled; everything else is kept for good
                token_p = torch.gather(probs, -1, sampled.unsqueeze(-1))[..., 0]
                if chunked:
                    per_chunk = token_p.view(B, n_chunks, L)
                    if dec.span_scoring == "max":
                        scores = 1 - per_chunk.max(dim=-1).values
                    else:
                        scores = -torch.log(per_chunk).sum(dim=-1)
                    scores = scores.masked_fill(~chunk_mask, DONT_REMASK)
                else:
                    scores = (-torch.log(token_p)).masked_fill(~token_mask, DONT_REMASK)
                step += 1
                if callback is not None:
                    callback(step, total)
        self.last_stats = {"decoding_steps": step, "forward_passes": forwards,
                           "batch_rows_per_pass": 2 * B if use_cfg else B, "frames": T}
        return codes
