"""The MusicGen objective: next-token cross-entropy over the delayed codebook streams.

The LM's `compute_predictions(codes, condition)` applies the delay pattern, runs the causal
transformer and re-aligns the logits with the input frames, returning which (codebook, frame)
positions hold a real prediction; the loss is the cross-entropy over those positions, averaged
over codebooks (as audiocraft: the mean of per-codebook CEs). Conditions are dropped for a
fraction of samples (0.3, audiocraft's `text2music` conditioner setting, which MusicGen trains
with too) so CFG has an unconditional model.
Validation reports next-token accuracy per codebook and overall, with the most-frequent-token floor.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..modules.patterns import DelayPattern
from .interface import StepRandom
from .text_lm import Conditions, TextLMSolver, bare_lm


def musicgen_loss(logits: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Mean over codebooks of the CE at valid positions; also per-token correctness per codebook."""
    B, K, T, card = logits.shape
    if mask.dim() == 2:
        mask = mask.unsqueeze(0).expand(B, K, T)
    losses, corrects = [], []
    for k in range(K):
        m = mask[:, k]
        lg = logits[:, k][m].float()
        tgt = codes[:, k][m]
        losses.append(F.cross_entropy(lg, tgt))
        corrects.append(lg.argmax(-1) == tgt)
    return torch.stack(losses).mean(), torch.cat(corrects), corrects


def musicgen_sequence_loss(seq_logits: torch.Tensor | Sequence[torch.Tensor], codes: torch.Tensor,
                           delays: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """`musicgen_loss` read straight off the delayed sequence's logits: [B, K, T + 1, card], or one
    [B, T + 1, card] tensor per codebook (the LM's `per_head` output, which skips the stacked copy).

    Frame t of codebook k is predicted at step t + delay_k, and is valid for t < T - delay_k (the
    sequence has T + 1 steps). Each codebook's cross-entropy runs over its whole logits (a view, no
    copy) with the invalid steps ignored: the mean over the same B * n_k tokens, so every logit gets
    the same gradient bit for bit as from `musicgen_loss` after `revert_logits`, without a re-aligned
    copy or a zero-filled full-size gradient per codebook (a fifth of a tiny model's step on CPU).
    """
    B, K, T = codes.shape
    heads = list(seq_logits.unbind(1)) if isinstance(seq_logits, torch.Tensor) else list(seq_logits)
    losses, corrects = [], []
    for k, d in enumerate(delays):
        n = max(T - int(d), 0)
        lg = heads[k]
        target = torch.full(lg.shape[:2], -100, dtype=torch.long, device=lg.device)
        target[:, d: d + n] = codes[:, k, :n]
        losses.append(F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float(), target.view(-1), ignore_index=-100))
        with torch.no_grad():
            corrects.append((lg[:, d: d + n].argmax(-1) == codes[:, k, :n]).reshape(-1))
    return torch.stack(losses).mean(), torch.cat(corrects)


class MusicGenSolver(TextLMSolver):
    """Trains a MusicGen LM (delay pattern) on cached tokens and text conditions."""

    name = "musicgen"
    predictions = True

    @property
    def find_unused_parameters(self) -> bool:  # type: ignore[override]
        """Without text the condition projection gets no gradient: DDP must be told."""
        return self.train_set.conditions is None

    def objective(self, model, codes, conditions: Callable[[], Conditions], rng: StepRandom, device):
        """Next-token cross-entropy over the delayed streams (the LM applies the delay pattern)."""
        raw, cmask = conditions()
        lm = bare_lm(model)
        if isinstance(lm.pattern, DelayPattern):
            loss, correct = musicgen_sequence_loss(model(codes, raw, cmask, delayed=True), codes, lm.pattern.delays)
        else:
            logits, mask = model(codes, raw, cmask)
            loss, correct, _ = musicgen_loss(logits, codes, mask)
        return loss, {"train_next_token_accuracy": float(correct.float().mean())}

    @torch.no_grad()
    def validate(self, model, device) -> dict[str, float]:
        vs = self.valid_set
        idx = list(range(len(vs)))
        K = vs.n_q
        loss_sum = torch.zeros(K, dtype=torch.float64)
        correct = torch.zeros(K, dtype=torch.long)
        uni = torch.zeros(K, dtype=torch.long)
        total = torch.zeros(K, dtype=torch.long)
        for start in range(0, len(idx), 16):
            chunk = idx[start : start + 16]
            codes = vs.crop(chunk, self.segment_frames, random_offset=False).to(device)
            B, _, T = codes.shape
            raw, cmask = self._cond(vs, chunk, None, 0.0, device)
            logits, mask = model(codes, raw, cmask)
            if mask.dim() == 2:
                mask = mask.unsqueeze(0).expand(B, K, T)
            for k in range(K):
                m = mask[:, k]
                lg = logits[:, k][m].float()
                tgt = codes[:, k][m]
                loss_sum[k] += float(F.cross_entropy(lg, tgt, reduction="sum"))
                correct[k] += int((lg.argmax(-1) == tgt).sum())
                uni[k] += int((tgt == self._unigram[k].to(device)).sum())
                total[k] += int(m.sum())
        out = {f"valid_accuracy_cb{k}": float(correct[k] / total[k]) for k in range(K)}
        out.update({f"valid_loss_cb{k}": float(loss_sum[k] / total[k]) for k in range(K)})
        out["valid_loss"] = float((loss_sum / total).mean())
        out["valid_accuracy"] = float((correct.double() / total).mean())
        out["valid_unigram_accuracy"] = float((uni.double() / total).mean())
        out["valid_chance_accuracy"] = 1.0 / self.card
        return out
