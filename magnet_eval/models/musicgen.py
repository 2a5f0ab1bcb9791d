"""MusicGen: the autoregressive baseline (delay pattern [0, 1, 2, 3], causal LM, KV cache).

Generation walks the delayed sequence one step at a time, as audiocraft's `LMModel.generate`: the
sequence of T frames has T + max_delay + 1 steps, the first all-special; each step feeds only the
newest step to the model (earlier keys/values live in the `KVCache`), the conditional and
unconditional rows run as one doubled batch (logits = uncond + cfg_coef * (cond - uncond)), and
positions of the pattern that hold no frame are forced to the special token. The condition's
cross-attention keys/values are computed once. Defaults: top-k 250, temperature 1, CFG 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import torch

from ..modules.patterns import DelayPattern
from ..modules.transformer import KVCache
from .lm import Condition, LMConfig, LMModel
from .sampling import sample_from_probs


@dataclass
class MusicGenDecoding:
    """MusicGen's decoding knobs; defaults are audiocraft's `MusicGen.set_generation_params`."""

    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg_coef: float = 3.0
    use_sampling: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


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
                 generators: Optional[Sequence[torch.Generator]] = None,
                 callback: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
        """Generate codes [B, K, frames] autoregressively (condition None = unconditional, no CFG)."""
        dec = decoding or MusicGenDecoding()
        pattern = self.pattern
        if not isinstance(pattern, DelayPattern):
            raise ValueError("MusicGen generation needs the delay pattern")
        device = self.emb[0].weight.device
        dtype = self.emb[0].weight.dtype
        B, K, T = num_samples, self.n_q, frames
        S = pattern.sequence_length(T)
        seq = torch.full((B, K, S), self.special_token_id, dtype=torch.long, device=device)
        valid = pattern.step_mask(S, T, device)  # [K, S]

        use_cfg = condition is not None
        rows = 2 * B if use_cfg else B
        cross_kv = None
        if use_cfg:
            cond = condition[0] if isinstance(condition, tuple) else condition
            cond = cond.to(device=device, dtype=dtype)
            if cond.shape[0] != B:
                raise ValueError(f"condition batch {cond.shape[0]} != num_samples {B}")
            cross_kv = self.cross_kv(torch.cat([cond, torch.zeros_like(cond)], dim=0))  # once per generation
        cache = KVCache(max_len=S)
        forwards = 0
        for offset in range(1, S):
            step_in = seq[:, :, offset - 1:offset]
            if use_cfg:
                step_in = torch.cat([step_in, step_in], dim=0)
            logits = self(step_in, None, None, cross_kv=cross_kv, cache=cache)[:, :, -1].float()  # [rows,K,card]
            forwards += 1
            if use_cfg:
                cond_logits, uncond_logits = logits.split(B, dim=0)
                logits = uncond_logits + (cond_logits - uncond_logits) * dec.cfg_coef
            if dec.use_sampling and dec.temperature > 0:
                probs = torch.softmax(logits / dec.temperature, dim=-1)
                nxt = sample_from_probs(probs, dec.top_k, dec.top_p, generators)[..., 0]
            else:
                nxt = logits.argmax(dim=-1)
            nxt = torch.where(valid[:, offset].unsqueeze(0), nxt, torch.full_like(nxt, self.special_token_id))
            seq[:, :, offset] = nxt
            if callback is not None:
                callback(offset, S - 1)
        codes, _ = pattern.revert(seq, T)
        self.last_stats = {"decoding_steps": S - 1, "forward_passes": forwards, "batch_rows_per_pass": rows,
                           "frames": T}
        return codes
