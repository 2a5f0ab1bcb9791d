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
The condition's cross-attention keys/values are computed once per generation (padded condition
keys masked, so a clip does not depend on its batch-mates' prompt lengths).

Beyond audiocraft (docs/magnet-beyond-audiocraft.md): fixed first frames (an audio prompt to continue,
kept bit for bit; they are never masked and the schedule counts only the spans after them), Hybrid-MAGNeT
(`hybrid_prefix` seconds decoded autoregressively by this model first, `models/hybrid.py`) and the
paper's rescoring (`models/rescoring.py`: an external MusicGen's probability of each sampled token mixed
into the confidence that ranks the spans to re-mask, weight `rescore_weight`).

Batch invariance: every step is one batched operation over the rows (no loop over the batch).
Randomness comes from the clips' `ClipRandom` keys (stream = stage and step, one uniform per
frame, drawn whether or not the frame is masked, so a draw never depends on other frames or rows);
the spans to re-mask are ranked by a stable sort (ties broken by position), so a clip's tokens
depend only on its seed, its prompt and the decoding settings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

from .hybrid import ARSettings, decode_frames
from .lm import Condition, LMConfig, LMModel
from .rescoring import PAPER_RESCORE_WEIGHT, Rescoring, combine_probs
from .sampling import RNG, as_clip_random, sample_from_probs

DONT_REMASK = -1e4
STREAMS_PER_STAGE = 1 << 16  # random stream of (stage, step) = stage * 65536 + step


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
    # beyond audiocraft: Hybrid-MAGNeT's autoregressive prefix (seconds) and its sampling (MusicGen's
    # defaults), and the rescorer's weight w_r (used only when a rescorer is given)
    hybrid_prefix: float = 0.0
    prefix_temperature: float = 1.0
    prefix_top_k: int = 250
    prefix_cfg_coef: float = 3.0
    rescore_weight: float = PAPER_RESCORE_WEIGHT

    def __post_init__(self) -> None:
        if self.hybrid_prefix < 0:
            raise ValueError(f"hybrid_prefix must be >= 0 seconds, got {self.hybrid_prefix}")
        if not 0.0 <= self.rescore_weight <= 1.0:
            raise ValueError(f"rescore_weight must be in [0, 1] (the rescorer's share w_r), got {self.rescore_weight}")
        if self.span_scoring not in ("max", "prod"):
            raise ValueError(f"span_scoring must be 'max' or 'prod', got {self.span_scoring!r}")
        if self.span_arrangement not in ("nonoverlap", "stride1"):
            raise ValueError(f"span_arrangement must be 'nonoverlap' or 'stride1', got {self.span_arrangement!r}")
        if any(int(s) < 1 or int(s) >= STREAMS_PER_STAGE for s in self.decoding_steps):
            raise ValueError(f"decoding_steps must all be in 1..{STREAMS_PER_STAGE - 1}, got {self.decoding_steps}")
        self.decoding_steps = [int(s) for s in self.decoding_steps]

    def to_dict(self) -> dict:
        """The settings that decide the tokens: the hybrid knobs only with a hybrid prefix, and the rescorer's
        weight never (it counts only with a rescorer: `Generator.settings` adds both), so that a plain
        generation records what it always recorded."""
        d = asdict(self)
        d.pop("rescore_weight")
        if self.hybrid_prefix == 0:
            for key in ("hybrid_prefix", "prefix_temperature", "prefix_top_k", "prefix_cfg_coef"):
                d.pop(key)
        return d


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
    """'stride1' masking: the highest-scoring windows of span_len frames (any start), all rows at once.

    scores [T] or [B, T] (higher = less confident; kept frames carry DONT_REMASK). Windows are ranked
    by their summed score (stable: ties go to the earlier window) and, per row, the largest number u
    of them whose union covers at most max(n_tokens, span_len) frames is taken (a binary search run
    for every row together: the union grows with u). Returns a bool mask shaped like scores.
    """
    single = scores.dim() == 1
    scores = scores.unsqueeze(0) if single else scores
    B, T = scores.shape
    L = min(span_len, T)
    window = scores.unfold(-1, L, 1).sum(-1)  # [B, W]
    W = window.shape[-1]
    order = torch.argsort(window, dim=-1, descending=True, stable=True)
    positions = torch.arange(W, device=scores.device).expand(B, -1)
    rank = torch.empty_like(order).scatter_(-1, order, positions)  # rank of each window in its row
    target = min(max(n_tokens, L), T)

    def cover(u: torch.Tensor) -> torch.Tensor:
        chosen = rank < u.unsqueeze(-1)  # [B, W]: the u best windows of each row
        m = torch.zeros(B, T, dtype=torch.bool, device=scores.device)
        for o in range(L):
            m[:, o:o + W] |= chosen
        return m

    lo = torch.ones(B, dtype=torch.long, device=scores.device)
    hi = torch.full_like(lo, min(W, target - L + 1))
    for _ in range(max(W, 1).bit_length() + 1):  # enough halvings for any row
        mid = (lo + hi + 1) // 2
        ok = cover(mid).sum(-1) <= target
        active = lo < hi
        lo = torch.where(active & ok, mid, lo)
        hi = torch.where(active & ~ok, mid - 1, hi)
    best = cover(lo)
    return best[0] if single else best


def remask_choice(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Indices [B, n] of the n highest scores per row; ties go to the lower index (a stable sort), so
    the choice is the same in any batch and on any device."""
    return torch.argsort(scores, dim=-1, descending=True, stable=True)[:, :n]


class MagnetLM(LMModel):
    """The MAGNeT LM (parallel pattern, bidirectional, restricted context for stages > 0) and its sampler."""

    def __init__(self, cfg: LMConfig):
        if cfg.kind != "magnet":
            raise ValueError("MagnetLM needs an LMConfig of kind 'magnet'")
        super().__init__(cfg)
        self.last_stats: dict[str, int] = {}

    @staticmethod
    def _sample_masked(probs: torch.Tensor, token_mask: torch.Tensor, dec: MagnetDecoding,
                       rng: Optional[RNG] = None, stream: int = 0) -> torch.Tensor:
        """Sample tokens [B, T] at the masked positions only (the others are kept), every row at once.

        With `rng`, frame t of clip b uses the uniform (key_b, stream, t), drawn for all frames so
        that it does not depend on which other frames are masked.
        """
        sampled = torch.zeros(token_mask.shape, dtype=torch.long, device=probs.device)
        clip = as_clip_random(rng, probs.device)
        if clip is None:
            sampled[token_mask] = sample_from_probs(probs[token_mask], dec.top_k, dec.top_p)[..., 0]
            return sampled
        if len(clip) != probs.shape[0]:
            raise ValueError(f"{len(clip)} random streams for a batch of {probs.shape[0]}")
        u = clip.uniform(stream, token_mask.shape[1:])
        sampled[token_mask] = sample_from_probs(probs[token_mask], dec.top_k, dec.top_p,
                                                uniforms=u[token_mask])[..., 0]
        return sampled

    @torch.no_grad()
    def generate(self, condition: Condition, num_samples: int, frames: int,
                 decoding: Optional[MagnetDecoding] = None,
                 generators: Optional[RNG] = None,
                 callback: Optional[Callable[[int, int], None]] = None,
                 trace: Optional[list] = None, prompt: Optional[torch.Tensor] = None,
                 rescorer: Optional[Rescoring] = None) -> torch.Tensor:
        """Generate codes [B, K, T'] (T' = frames cut to a multiple of span_len for 'nonoverlap').

        condition: (cond, mask) from `self.condition(texts)`, or None for unconditional sampling
        (no CFG). generators: the clips' random streams, a `ClipRandom` or one seeded torch.Generator
        per sample (see sampling.py); None = unseeded. callback(step, total_steps).
        trace: if a list, one dict per iteration is appended (stage, step, mask_rate, n_masked spans
        or tokens, masked_tokens per sample, the token mask [B, T], cfg_coef, temperature) for
        inspection and tests.
        prompt [B, K, P]: fixed first frames (continuation), kept bit for bit and never masked.
        rescorer: an external model bound to this batch's prompts; with `decoding.rescore_weight` > 0
        the confidence of each sampled token is w_r * p_rescorer + (1 - w_r) * p_MAGNeT.
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
        generators = as_clip_random(generators, device)  # one key per clip for the whole generation
        fixed = 0  # frames [0, fixed) are given (prompt) or decoded autoregressively (hybrid prefix)
        if prompt is not None:
            if prompt.shape[0] != B or prompt.shape[1] != K:
                raise ValueError(f"prompt codes {tuple(prompt.shape)} do not fit {B} samples x {K} codebooks")
            fixed = min(int(prompt.shape[-1]), T)
            codes[..., :fixed] = prompt[..., :fixed].to(device)

        cross_kv = None
        use_cfg = condition is not None
        if use_cfg:
            cond, mask = condition if isinstance(condition, tuple) else (condition, None)
            cond = cond.to(device=device, dtype=self.emb[0].weight.dtype)
            if cond.shape[0] != B:
                raise ValueError(f"condition batch {cond.shape[0]} != num_samples {B}")
            if mask is None:
                mask = torch.ones(cond.shape[:2], device=device)
            mask = mask.to(device)
            # once per generation; the null rows (CFG) have an all-zero mask
            cross_kv = self.cross_kv((torch.cat([cond, torch.zeros_like(cond)], dim=0),
                                      torch.cat([mask, torch.zeros_like(mask)], dim=0)))

        hybrid = min(int(round(dec.hybrid_prefix * self.cfg.frame_rate)), T)
        ar_frames = max(hybrid - fixed, 0)
        stages = list(enumerate(dec.decoding_steps))
        total = sum(dec.decoding_steps) + ar_frames
        step = 0
        forwards = ar_forwards = 0
        if ar_frames:
            ar = ARSettings(temperature=dec.prefix_temperature, top_k=dec.prefix_top_k, top_p=0.0,
                            cfg_coef=dec.prefix_cfg_coef, use_sampling=dec.use_sampling)
            cb = None if callback is None else (lambda done: callback(done, total))
            ar_forwards = decode_frames(self, codes, fixed, hybrid, ar, cross_kv, generators, cb)
            fixed, step = hybrid, ar_frames
        if fixed >= T:
            stages = []  # nothing left for the parallel decoding
        use_rescorer = rescorer is not None and dec.rescore_weight > 0
        frame_fixed = torch.arange(T, device=device) < fixed  # [T]
        for stage, n_steps in stages:
            stage_codes = codes[:, stage].clone()  # [B, T], masked after the fixed frames
            n_chunks = T // L if chunked else T
            scores = torch.zeros(B, n_chunks, device=device)
            n_units = n_chunks
            if fixed:
                # units (chunks or frames) wholly inside the fixed frames are never masked
                unit_fixed = ((torch.arange(n_chunks, device=device) + 1) * L <= fixed) if chunked else frame_fixed
                scores = scores.masked_fill(unit_fixed.unsqueeze(0), DONT_REMASK)
                n_units = n_chunks - int(unit_fixed.sum())
            rates = mask_rates(n_steps)
            n_masked_list = num_masked_schedule(n_steps, n_units)
            coefs = cfg_schedule(n_steps, dec.max_cfg_coef, dec.min_cfg_coef)
            temps = temperature_schedule(n_steps, dec.temperature, dec.anneal_temp)
            for i in range(n_steps):
                n_masked = n_masked_list[i]
                # 1) (re)mask the least confident spans
                if chunked:
                    chosen = remask_choice(scores, n_masked)
                    chunk_mask = torch.zeros(B, n_chunks, dtype=torch.bool, device=device).scatter(1, chosen, True)
                    token_mask = chunk_mask.repeat_interleave(L, dim=-1)
                elif L > 1:
                    token_mask = least_probable_spans_mask(scores, n_masked, L)
                else:
                    chosen = remask_choice(scores, n_masked)
                    token_mask = torch.zeros(B, T, dtype=torch.bool, device=device).scatter(1, chosen, True)
                if fixed:
                    token_mask = token_mask & ~frame_fixed.unsqueeze(0)
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
                                  "masked_tokens": token_mask.sum(-1).tolist(), "mask": token_mask.cpu(),
                                  "cfg_coef": coefs[i] if use_cfg else None, "temperature": temps[i]})
                # 3) sample with the (annealed) temperature
                probs = torch.softmax(stage_logits / temps[i], dim=-1)  # [B, T, card]
                if dec.use_sampling:
                    sampled = self._sample_masked(probs, token_mask, dec, generators, stage * STREAMS_PER_STAGE + i)
                else:
                    sampled = probs.argmax(dim=-1)
                stage_codes = torch.where(token_mask, sampled, stage_codes)
                codes[:, stage] = stage_codes
                # 4) confidence of what was just sampled; everything else is kept for good
                token_p = torch.gather(probs, -1, sampled.unsqueeze(-1))[..., 0]
                if use_rescorer and i < n_steps - 1:  # the last iteration's scores are never used
                    p_res = rescorer.token_probs(codes, stage)
                    token_p = combine_probs(token_p, p_res.to(token_p.device), dec.rescore_weight)
                if fixed:  # a fixed frame neither raises a span's max nor adds to its -log sum
                    token_p = token_p.masked_fill(frame_fixed.unsqueeze(0),
                                                  0.0 if (chunked and dec.span_scoring == "max") else 1.0)
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
        res_forwards = rescorer.forward_passes if use_rescorer else 0
        self.last_stats = {"decoding_steps": step, "forward_passes": forwards + ar_forwards + res_forwards,
                           "magnet_forward_passes": forwards, "autoregressive_forward_passes": ar_forwards,
                           "rescorer_forward_passes": res_forwards,
                           "batch_rows_per_pass": 2 * B if use_cfg else B, "frames": T}
        return codes
