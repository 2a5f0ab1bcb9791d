"""MusicGen: the autoregressive baseline (delay pattern [0, 1, 2, 3], causal LM, KV cache).

Generation walks the delayed sequence one step at a time, as audiocraft's `LMModel.generate`: the
sequence of T frames has T + max_delay + 1 steps, the first all-special; each step feeds only the
newest step to the model (earlier keys/values live in the `KVCache`), the conditional and
unconditional rows run as one doubled batch (logits = uncond + cfg_coef * (cond - uncond)), and
positions of the pattern that hold no frame are forced to the special token. The condition's
cross-attention keys/values are computed once (padded condition keys masked, so a clip does not
depend on its batch-mates' prompt lengths). Defaults: top-k 250, temperature 1, CFG 3.

Audio prompts (continuation, as audiocraft's `generate_continuation`): the prompt's frames are placed
in the delayed sequence, fed in one causal pass that fills the KV cache, and never overwritten: a
step only writes the positions whose frame is past the prompt. Past the trained segment
(`cfg.segment_duration`), generation slides a window as audiocraft's `extend_stride`: the first
segment is generated whole, then each next window is a continuation whose prompt is the last
(segment - stride) seconds generated so far, and it adds `stride` seconds.

Batch invariance: each step samples all rows in one batched operation from the clips' `ClipRandom`
streams (stream = sequence step, one uniform per codebook), so a clip's tokens depend only on its
seed, its prompt and the decoding settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch

from ..modules.patterns import DelayPattern
from ..modules.transformer import KVCache
from .lm import Condition, LMConfig, LMModel
from .sampling import RNG, as_clip_random, sample_from_probs

WINDOW_STREAMS = 1 << 20  # random streams of window w of a long generation: w * 2**20 + sequence step
EXTEND_STRIDE_SHARE = 0.6  # default stride: 60% of the trained segment (audiocraft: 18 s of 30 s)


@dataclass
class MusicGenDecoding:
    """MusicGen's decoding knobs; defaults are audiocraft's `MusicGen.set_generation_params`."""

    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg_coef: float = 3.0
    use_sampling: bool = True
    extend_stride: Optional[float] = None  # seconds added per window past the trained segment (None: 60%)

    def __post_init__(self) -> None:
        if self.extend_stride is not None and self.extend_stride <= 0:
            raise ValueError(f"extend_stride must be > 0 seconds, got {self.extend_stride}")

    def to_dict(self) -> dict:
        """The settings (extend_stride only when set: the default stride is recorded as no entry)."""
        d = asdict(self)
        if self.extend_stride is None:
            d.pop("extend_stride")
        return d


def next_frame_tokens(logits: torch.Tensor, cfg_batch: int, dec: MusicGenDecoding, generators: RNG,
                      stream: int) -> torch.Tensor:
    """One autoregressive step's tokens [B, K] from logits [rows, K, card]: classifier-free guidance when
    cfg_batch > 0 (conditional rows first, then as many unconditional ones), then temperature and
    top-k / top-p sampling from each clip's own random stream, or the argmax when not sampling."""
    if cfg_batch:
        cond_logits, uncond_logits = logits.split(cfg_batch, dim=0)
        logits = uncond_logits + (cond_logits - uncond_logits) * dec.cfg_coef
    if dec.use_sampling and dec.temperature > 0:
        probs = torch.softmax(logits / dec.temperature, dim=-1)
        return sample_from_probs(probs, dec.top_k, dec.top_p, generators, stream=stream)[..., 0]
    return logits.argmax(dim=-1)


class MusicGenLM(LMModel):
    """The MusicGen LM (delay pattern, causal) and its autoregressive sampler."""

    def __init__(self, cfg: LMConfig):
        if cfg.kind != "musicgen":
            raise ValueError("MusicGenLM needs an LMConfig of kind 'musicgen'")
        if not cfg.causal:
            raise ValueError("MusicGen's LM must be causal")
        super().__init__(cfg)
        self.last_stats: dict[str, int] = {}

    @torch.no_grad()
    def generate(self, condition: Condition, num_samples: int, frames: int,
                 decoding: Optional[MusicGenDecoding] = None,
                 generators: Optional[RNG] = None,
                 callback: Optional[Callable[[int, int], None]] = None,
                 prompt: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Generate codes [B, K, frames] autoregressively (condition None = unconditional, no CFG).

        generators: the clips' random streams (a `ClipRandom` or one seeded torch.Generator per
        sample; None = unseeded). prompt [B, K, P]: fixed first frames (continuation), kept bit for
        bit. More frames than the trained segment: a sliding window (module doc).
        """
        dec = decoding or MusicGenDecoding()
        segment = self.cfg.max_frames
        if frames <= segment:
            return self._generate_window(condition, num_samples, frames, dec, generators, callback, prompt, 0)
        stride_s = dec.extend_stride if dec.extend_stride is not None else EXTEND_STRIDE_SHARE * self.cfg.segment_duration
        stride = int(round(stride_s * self.cfg.frame_rate))
        if not 0 < stride < segment:
            raise ValueError(f"extend_stride {stride_s} s must be shorter than the trained segment "
                             f"({self.cfg.segment_duration} s) and at least one frame")
        generators = as_clip_random(generators, self.emb[0].weight.device)
        if prompt is not None and prompt.shape[-1] >= segment:  # a long prompt: the windows continue it
            out = prompt[..., :frames].to(self.emb[0].weight.device)
            stats = {"decoding_steps": 0, "forward_passes": 0, "batch_rows_per_pass": 0}
        else:
            out = self._generate_window(condition, num_samples, segment, dec, generators, callback, prompt, 0)
            stats = dict(self.last_stats)
        window = 1
        while out.shape[-1] < frames:
            context = out[..., out.shape[-1] - (segment - stride):]
            length = min(segment, context.shape[-1] + frames - out.shape[-1])
            chunk = self._generate_window(condition, num_samples, length, dec, generators, callback, context,
                                          window * WINDOW_STREAMS)
            out = torch.cat([out, chunk[..., context.shape[-1]:]], dim=-1)
            for key in ("decoding_steps", "forward_passes"):
                stats[key] += self.last_stats[key]
            window += 1
        self.last_stats = {**stats, "frames": frames, "windows": window}
        return out

    def _generate_window(self, condition: Condition, num_samples: int, frames: int, dec: MusicGenDecoding,
                         generators: Optional[RNG], callback: Optional[Callable[[int, int], None]],
                         prompt: Optional[torch.Tensor], stream_base: int) -> torch.Tensor:
        """One autoregressive pass over at most the trained segment (see `generate`)."""
        pattern = self.pattern
        if not isinstance(pattern, DelayPattern):
            raise ValueError("MusicGen generation needs the delay pattern")
        device = self.emb[0].weight.device
        dtype = self.emb[0].weight.dtype
        B, K, T = num_samples, self.n_q, frames
        S = pattern.sequence_length(T)
        seq = torch.full((B, K, S), self.special_token_id, dtype=torch.long, device=device)
        valid = pattern.step_mask(S, T, device)  # [K, S]
        generators = as_clip_random(generators, device)  # one key per clip for the whole generation
        known = torch.zeros_like(valid)  # [K, S]: positions holding a prompt frame
        P = 0
        if prompt is not None:
            if prompt.shape[0] != B or prompt.shape[1] != K:
                raise ValueError(f"prompt codes {tuple(prompt.shape)} do not fit {B} samples x {K} codebooks")
            P = min(int(prompt.shape[-1]), T)
            frames_in = torch.full((B, K, T), self.special_token_id, dtype=torch.long, device=device)
            frames_in[..., :P] = prompt[..., :P].to(device)
            seq, _ = pattern.build(frames_in, self.special_token_id, valid_only=False)
            t = pattern.frame_index(S, device)
            known = (t >= 0) & (t < P)

        use_cfg = condition is not None
        rows = 2 * B if use_cfg else B
        cross_kv = None
        if use_cfg:
            cond, mask = condition if isinstance(condition, tuple) else (condition, None)
            cond = cond.to(device=device, dtype=dtype)
            if cond.shape[0] != B:
                raise ValueError(f"condition batch {cond.shape[0]} != num_samples {B}")
            mask = (torch.ones(cond.shape[:2], device=device) if mask is None else mask.to(device))
            # once per generation; the null rows (CFG) have an all-zero mask
            cross_kv = self.cross_kv((torch.cat([cond, torch.zeros_like(cond)], dim=0),
                                      torch.cat([mask, torch.zeros_like(mask)], dim=0)))
        cache = KVCache(max_len=S)
        forwards = 0
        first = P + 1 if P else 1  # steps 1..P hold only prompt frames (or none): nothing to sample there
        if first > 1:  # the prompt's steps 0..P-1 in one causal pass that fills the cache
            pre = seq[:, :, :first - 1]
            self(torch.cat([pre, pre], dim=0) if use_cfg else pre, None, None, cross_kv=cross_kv, cache=cache)
            forwards += 1
        for offset in range(first, S):
            step_in = seq[:, :, offset - 1:offset]
            if use_cfg:
                step_in = torch.cat([step_in, step_in], dim=0)
            logits = self(step_in, None, None, cross_kv=cross_kv, cache=cache)[:, :, -1].float()  # [rows,K,card]
            forwards += 1
            nxt = next_frame_tokens(logits, B if use_cfg else 0, dec, generators, stream_base + offset)
            nxt = torch.where(valid[:, offset].unsqueeze(0), nxt, torch.full_like(nxt, self.special_token_id))
            nxt = torch.where(known[:, offset].unsqueeze(0), seq[:, :, offset], nxt)  # prompt tokens stay
            seq[:, :, offset] = nxt
            if callback is not None:
                callback(offset, S - 1)
        codes, _ = pattern.revert(seq, T)
        self.last_stats = {"decoding_steps": S - first, "forward_passes": forwards, "batch_rows_per_pass": rows,
                           "frames": T}
        return codes
