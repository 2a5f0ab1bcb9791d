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

from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .base import Solver, StepOutput, StepRandom
from .magnet import LMTrainModule, _ids_hash, bare_lm, drop_conditions
from .tokens import TokenSet


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


class MusicGenSolver(Solver):
    """Trains a MusicGen LM (delay pattern) on cached tokens and text conditions."""

    name = "musicgen"

    def __init__(
        self,
        lm: torch.nn.Module,
        train: TokenSet,
        valid: TokenSet,
        segment_frames: int,
        export_fn: Callable[[torch.nn.Module, Path], Path],
        cond_dropout: float = 0.3,
        card: Optional[int] = None,
        extra_config: Optional[dict] = None,
    ):
        self.model = LMTrainModule(lm, predictions=True)
        # without text the condition projection gets no gradient: DDP must be told
        self.find_unused_parameters = train.conditions is None
        self.lm = lm
        self.train_set = train
        self.valid_set = valid
        self.segment_frames = segment_frames
        self.export_fn = export_fn
        self.cond_dropout = cond_dropout
        self.card = card if card is not None else int(getattr(lm, "card"))
        self.extra_config = extra_config or {}
        allc = torch.cat([c.reshape(c.shape[0], -1) for c in train.codes], dim=1)
        self._unigram = torch.stack([torch.bincount(allc[k], minlength=self.card).argmax() for k in range(allc.shape[0])])

    def config(self) -> dict:
        return {
            "solver": self.name, "segment_frames": self.segment_frames, "cond_dropout": self.cond_dropout,
            "card": self.card, "n_train": len(self.train_set), "train_ids": _ids_hash(self.train_set.ids),
            **self.extra_config,
        }

    def n_train_items(self) -> int:
        return len(self.train_set)

    def _cond(self, tokens: TokenSet, indices, generator, p_drop: float, device):
        if tokens.conditions is None:
            return None, None
        raw, mask = tokens.condition_batch(indices)
        if p_drop > 0:
            raw, mask, _ = drop_conditions(raw, mask, p_drop, generator)
        return raw.to(device), mask.to(device)

    def train_loss(self, model, indices, rng: StepRandom, device) -> StepOutput:
        codes = self.train_set.crop(indices, self.segment_frames, rng.local).to(device)
        B, K, T = codes.shape
        raw, cmask = self._cond(self.train_set, indices, rng.local, self.cond_dropout, device)
        logits, mask = model(codes, raw, cmask)
        loss, correct, _ = musicgen_loss(logits, codes, mask)
        return StepOutput(loss, B * K * T, {"train_next_token_accuracy": float(correct.float().mean())})

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

    def export(self, model, folder: Path) -> Path:
        return self.export_fn(bare_lm(model), folder)
