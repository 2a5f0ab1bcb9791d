"""The MAGNeT objective: one codebook stage per step, span-masked, loss on that stage's masked tokens only.

Per step a stage k is drawn uniformly (the same on every rank). Codebooks < k are given as they
are, codebook k is span-masked at the rate cos(pi*t/2) (t ~ U(0,1) per sample, spans of 3 frames,
span count from the Appendix-C lookup), codebooks > k are fully masked. The LM sees the mask id
(= card) where masked and, for k > 0, attends only to |q - k| <= subcodes_context frames (the LM
does this when given `stage`). The loss is the cross-entropy over the masked positions of stage k;
no other stage contributes. The text condition is dropped (all zeros, mask off, as audiocraft's
null condition) for 30 % of the samples so the model also learns the unconditional distribution
that classifier-free guidance needs.

Validation is deterministic: fixed clip windows, fixed masks per (clip, stage) at fixed rates,
reporting masked-token accuracy and loss per stage and overall, next to the accuracy of always
predicting the most frequent training token of the stage (a floor that beats 1/card).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .base import Solver, StepOutput, StepRandom
from .masking import choose_stage, sample_masks
from .tokens import TokenSet



class LMTrainModule(torch.nn.Module):
    """The LM plus the projection of cached raw text-encoder outputs, as one module for DDP.

    The frozen text encoder ran once (tokens.encode_texts); the trainable part of conditioning is the
    LM's `condition_provider.conditioners.description.output_proj`, applied here inside forward so
    DDP sees every parameter that gets a gradient. Projected conditions are zeroed where the mask is
    off, as audiocraft's conditioner does (a dropped condition is then exactly the null condition).
    `predictions=True` routes forward to `compute_predictions` (MusicGen's delay pattern).
    Training checkpoints store this module (keys prefixed `lm.`); exports store the bare LM.
    """

    def __init__(self, lm: torch.nn.Module, predictions: bool = False):
        super().__init__()
        self.lm = lm
        self.predictions = predictions

    def project(self, raw: Optional[torch.Tensor], mask: Optional[torch.Tensor]):
        if raw is None:
            return None
        proj = self.lm.text_conditioner.output_proj
        cond = proj(raw.to(proj.weight.dtype))
        return cond * mask.unsqueeze(-1).to(cond.dtype), mask

    def forward(self, codes: torch.Tensor, raw: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                stage: Optional[int] = None):
        cond = self.project(raw, mask)
        if self.predictions:
            return self.lm.compute_predictions(codes, cond)
        return self.lm(codes, cond, stage)


def bare_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The LM inside DDP and/or LMTrainModule wrappers."""
    from .distributed import unwrap

    m = unwrap(model)
    return m.lm if isinstance(m, LMTrainModule) else m


def drop_conditions(raw: torch.Tensor, mask: torch.Tensor, p: float, generator: Optional[torch.Generator]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Condition dropout for CFG: each sample's condition becomes the null one (zeros, mask off) with prob. p.

    Returns (raw, mask, dropped [B] bool).
    """
    B = raw.shape[0]
    dropped = torch.rand(B, generator=generator) < p
    if dropped.any():
        raw = raw.clone()
        mask = mask.clone()
        raw[dropped.to(raw.device)] = 0
        mask[dropped.to(mask.device)] = False
    return raw, mask, dropped


def masked_stage_inputs(codes: torch.Tensor, stage: int, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """LM input for `stage`: earlier codebooks as given, this one masked where `mask`, later ones all masked."""
    x = codes.clone()
    x[:, stage] = torch.where(mask, torch.full_like(codes[:, stage], mask_id), codes[:, stage])
    x[:, stage + 1 :] = mask_id
    return x


def magnet_loss(logits: torch.Tensor, codes: torch.Tensor, stage: int, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the masked tokens of `stage` only; also returns the per-token correctness."""
    lg = logits[:, stage][mask].float()  # [N, card]
    target = codes[:, stage][mask]
    loss = F.cross_entropy(lg, target)
    correct = (lg.argmax(-1) == target)
    return loss, correct


class MagnetSolver(Solver):
    """Trains a MAGNeT LM on cached tokens and text conditions."""

    name = "magnet"
    find_unused_parameters = True  # the loss reaches only the chosen stage's output head

    def __init__(
        self,
        lm: torch.nn.Module,
        train: TokenSet,
        valid: TokenSet,
        segment_frames: int,
        export_fn: Callable[[torch.nn.Module, Path], Path],
        span_len: int = 3,
        cond_dropout: float = 0.3,
        n_q: Optional[int] = None,
        card: Optional[int] = None,
        valid_rates: tuple[float, ...] = (0.3, 0.6, 0.9),
        extra_config: Optional[dict] = None,
    ):
        self.model = LMTrainModule(lm)
        self.train_set = train
        self.valid_set = valid
        self.segment_frames = segment_frames
        self.export_fn = export_fn
        self.span_len = span_len
        self.cond_dropout = cond_dropout
        self.n_q = n_q or train.n_q
        self.card = card if card is not None else int(getattr(lm, "card"))
        self.mask_id = self.card
        self.valid_rates = valid_rates
        self.extra_config = extra_config or {}
        self._unigram = self._most_frequent_tokens()

    def config(self) -> dict:
        return {
            "solver": self.name, "segment_frames": self.segment_frames, "span_len": self.span_len,
            "cond_dropout": self.cond_dropout, "n_q": self.n_q, "card": self.card,
            "n_train": len(self.train_set), "train_ids": _ids_hash(self.train_set.ids), **self.extra_config,
        }

    def n_train_items(self) -> int:
        return len(self.train_set)

    def _cond(self, tokens: TokenSet, indices, generator, p_drop: float, device):
        """Raw conditions of a batch (after dropout) as (raw, mask), or (None, None) without text."""
        if tokens.conditions is None:
            return None, None
        raw, mask = tokens.condition_batch(indices)
        if p_drop > 0:
            raw, mask, _ = drop_conditions(raw, mask, p_drop, generator)
        return raw.to(device), mask.to(device)

    def train_loss(self, model, indices, rng: StepRandom, device) -> StepOutput:
        codes = self.train_set.crop(indices, self.segment_frames, rng.local).to(device)
        B, K, T = codes.shape
        stage = choose_stage(self.n_q, rng.shared)
        mask, rate = sample_masks(B, T, self.span_len, generator=rng.local, device=device)
        raw, cmask = self._cond(self.train_set, indices, rng.local, self.cond_dropout, device)
        logits = model(masked_stage_inputs(codes, stage, mask, self.mask_id), raw, cmask, stage)
        loss, correct = magnet_loss(logits, codes, stage, mask)
        return StepOutput(loss, B * K * T, {
            "stage": float(stage), "mask_rate": float(mask.float().mean()),
            "train_masked_accuracy": float(correct.float().mean()),
        })

    def _most_frequent_tokens(self) -> torch.Tensor:
        """Per stage, the most frequent training token (the floor a model must beat)."""
        allc = torch.cat([c.reshape(c.shape[0], -1) for c in self.train_set.codes], dim=1)
        return torch.stack([torch.bincount(allc[k], minlength=self.card).argmax() for k in range(allc.shape[0])])

    @torch.no_grad()
    def validate(self, model, device) -> dict[str, float]:
        vs = self.valid_set
        n = len(vs)
        idx = list(range(n))
        out: dict[str, float] = {}
        losses, accs, unigram_accs = [], [], []
        bs = 16
        for stage in range(self.n_q):
            s_loss, s_correct, s_total, s_uni = 0.0, 0, 0, 0
            for r_i, rate in enumerate(self.valid_rates):
                g = torch.Generator().manual_seed(1000 * stage + r_i)
                for start in range(0, n, bs):
                    chunk = idx[start : start + bs]
                    codes = vs.crop(chunk, self.segment_frames, random_offset=False).to(device)
                    B, K, T = codes.shape
                    t = torch.full((B,), float(torch.arccos(torch.tensor(rate)) * 2 / torch.pi))
                    mask, _ = sample_masks(B, T, self.span_len, generator=g, device=device, t=t)
                    raw, cmask = self._cond(vs, chunk, None, 0.0, device)
                    logits = model(masked_stage_inputs(codes, stage, mask, self.mask_id), raw, cmask, stage)
                    loss, correct = magnet_loss(logits, codes, stage, mask)
                    s_loss += float(loss) * int(mask.sum())
                    s_correct += int(correct.sum())
                    s_total += int(mask.sum())
                    s_uni += int((codes[:, stage][mask] == self._unigram[stage].to(device)).sum())
            out[f"valid_accuracy_stage{stage}"] = s_correct / s_total
            out[f"valid_loss_stage{stage}"] = s_loss / s_total
            losses.append(s_loss / s_total)
            accs.append(s_correct / s_total)
            unigram_accs.append(s_uni / s_total)
        out["valid_loss"] = sum(losses) / len(losses)
        out["valid_accuracy"] = sum(accs) / len(accs)
        out["valid_unigram_accuracy"] = sum(unigram_accs) / len(unigram_accs)
        out["valid_chance_accuracy"] = 1.0 / self.card
        return out

    def export(self, model, folder: Path) -> Path:
        return self.export_fn(bare_lm(model), folder)


def _ids_hash(ids: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
