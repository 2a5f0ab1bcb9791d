"""MAGNeT's model rescoring (Ziv et al., ICLR 2024, section 3.4): an external pre-trained model rescores
the tokens MAGNeT samples, and the confidence that decides which spans are re-masked mixes both models.

The paper writes the final probability of a sampled token as the convex combination

    p = w_r * p_rescorer + (1 - w_r) * p_MAGNeT

with w_r the rescorer's weight. So w_r = 0 is plain MAGNeT and w_r = 1 ranks the spans by the
rescorer alone. Rescoring changes only the ranking (which spans are re-masked at the next
iteration); the tokens are still drawn from MAGNeT's distribution. `docs/magnet-beyond-audiocraft.md`
says what the paper fixes and what this toolkit chose (the default weight, which probabilities).

The rescorer here is a MusicGen LM (delay pattern, causal) over the same codec: at every MAGNeT
iteration it is teacher-forced on the current sequence (all codebooks, the stages not decoded yet
still holding the mask token, which is the rescorer's special token), in one forward pass of B rows
(its conditional prediction, no CFG), and the probability of each sampled token is read at its frame
through the delay pattern. Its text condition's cross-attention keys are computed once with padded
keys masked, so a clip's rescored tokens do not depend on its batch (docs/determinism.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..errors import MagnetEvalError
from ..modules.patterns import DelayPattern
from .lm import Condition, LMModel

# The rescorer weight w_r used when none is given. The paper's text-to-music setting (see the docs note).
PAPER_RESCORE_WEIGHT = 0.8


def combine_probs(p_magnet: torch.Tensor, p_rescorer: torch.Tensor, weight: float) -> torch.Tensor:
    """The paper's convex combination w * p_rescorer + (1 - w) * p_magnet, elementwise.

    weight 0 returns p_magnet itself (bit for bit: plain MAGNeT), weight 1 the rescorer's probabilities.
    """
    w = float(weight)
    if not 0.0 <= w <= 1.0:
        raise MagnetEvalError(f"--rescore-weight must be in [0, 1] (the rescorer's share), got {weight}")
    if w == 0.0:
        return p_magnet
    return w * p_rescorer.to(p_magnet.dtype) + (1.0 - w) * p_magnet


def check_rescorer(magnet: LMModel, rescorer: LMModel, name: str = "rescorer") -> None:
    """Refuse a rescorer that cannot score MAGNeT's tokens: it must be a MusicGen LM over the same codebooks."""
    if rescorer.cfg.kind != "musicgen" or not isinstance(rescorer.pattern, DelayPattern):
        raise MagnetEvalError(f"{name}: the rescorer must be a MusicGen model (autoregressive, delay pattern), "
                              f"got a {rescorer.cfg.kind} model")
    if rescorer.n_q != magnet.n_q or rescorer.card != magnet.card:
        raise MagnetEvalError(f"{name}: the rescorer's tokens ({rescorer.n_q} x {rescorer.card}) are not MAGNeT's "
                              f"({magnet.n_q} x {magnet.card}); both must use the same codec")
    if abs(float(rescorer.cfg.frame_rate) - float(magnet.cfg.frame_rate)) > 1e-6:
        raise MagnetEvalError(f"{name}: frame rate {rescorer.cfg.frame_rate} Hz differs from MAGNeT's "
                              f"{magnet.cfg.frame_rate} Hz; both must use the same codec")


@dataclass
class Rescoring:
    """A rescorer bound to one batch: the MusicGen LM and its text condition for these prompts.

    `forward_passes` counts the rescorer's forward passes (added to the generator's `last_stats`).
    """

    lm: LMModel
    condition: Condition
    name: str = "rescorer"
    forward_passes: int = 0
    _cross_kv: Optional[Any] = field(default=None, repr=False)

    def token_probs(self, codes: torch.Tensor, stage: int) -> torch.Tensor:
        """Teacher-forced probability of codes[:, stage] under the rescorer -> [B, T] (float32).

        codes [B, K, T]: MAGNeT's current sequence (mask token = the rescorer's special token).
        """
        lm = self.lm
        device = lm.emb[0].weight.device
        codes = codes.to(device)
        if self._cross_kv is None and self.condition is not None:
            cond, mask = self.condition if isinstance(self.condition, tuple) else (self.condition, None)
            cond = cond.to(device=device, dtype=lm.emb[0].weight.dtype)
            if mask is None:
                mask = torch.ones(cond.shape[:2], device=device)
            self._cross_kv = lm.cross_kv((cond, mask.to(device)))
        T = codes.shape[-1]
        seq, _ = lm.pattern.build(codes, lm.special_token_id, valid_only=False)  # T + max_delay + 1 steps
        logits = lm(seq, None, None, cross_kv=self._cross_kv, codebooks=[stage])[:, 0]  # [B, S, card]
        self.forward_passes += 1
        # the prediction of frame t of codebook `stage` is the output at step t + delay (delay pattern)
        delay = int(lm.pattern.delays[stage])
        probs = torch.softmax(logits[:, delay:delay + T].float(), dim=-1)  # [B, T, card]
        tokens = codes[:, stage].clamp(max=lm.card - 1)
        return torch.gather(probs, -1, tokens.unsqueeze(-1))[..., 0]
