"""What the MAGNeT and MusicGen solvers share: a text-conditioned LM trained on cached tokens.

Both families crop token windows, drop the text condition for a fraction of samples (so
classifier-free guidance has an unconditional model), measure against the most-frequent-token
floor and export the bare LM. They differ only in what the LM sees and which tokens carry the
loss (MAGNeT: one span-masked stage; MusicGen: the delayed streams, next token), which is the
`objective` hook of `TextLMSolver`.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from .interface import Solver, StepOutput, StepRandom
from .tokens import TokenSet

Conditions = tuple[Optional[torch.Tensor], Optional[torch.Tensor]]


def zero_gradient_anchor(lm: torch.nn.Module, computed: Sequence[int]) -> torch.Tensor:
    """0 times the output heads not in `computed`: added to the logits, it gives those heads an exact zero gradient.

    Why: audiocraft computes every head's logits and takes MAGNeT's loss on one stage, so the other
    heads get a zero gradient and AdamW still steps them (momentum, weight decay). Computing only the
    stage's head (a quarter of the output-layer cost with 4 codebooks) and anchoring the others at zero
    keeps that training trajectory bit for bit. It is added inside `forward` so that DDP sees every
    parameter used by the forward pass.
    """
    computed = set(computed)
    others = [head.weight for k, head in enumerate(lm.linears) if k not in computed]
    zero = torch.zeros((), device=lm.linears[0].weight.device, dtype=lm.linears[0].weight.dtype)
    return sum((w.sum() * 0.0 for w in others), zero)


class LMTrainModule(torch.nn.Module):
    """The LM plus the projection of cached raw text-encoder outputs, as one module for DDP.

    The frozen text encoder ran once (tokens.encode_texts); the trainable part of conditioning is the
    LM's `condition_provider.conditioners.description.output_proj`, applied here inside forward so
    DDP sees every parameter that gets a gradient. Projected conditions are zeroed where the mask is
    off, as audiocraft's conditioner does (a dropped condition is then exactly the null condition).
    `predictions=True` routes forward to `compute_predictions` (MusicGen's delay pattern), or with
    `delayed=True` returns the logits over the delayed sequence itself, one tensor per codebook (no
    re-alignment copy, no stacked copy).
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
                stage: Optional[int] = None, attn_mask: Optional[torch.Tensor] = None,
                codebooks: Optional[list[int]] = None, delayed: bool = False):
        cond = self.project(raw, mask)
        if self.predictions and delayed:  # the LM's own output over the delayed sequence (MusicGen's training loss)
            seq, _ = self.lm.pattern.build(codes, self.lm.special_token_id, valid_only=True)
            return self.lm(seq, cond, per_head=True)
        if self.predictions:
            return self.lm.compute_predictions(codes, cond)
        # attn_mask: e.g. Hybrid-MAGNeT's per-row causal / stage masks (None: the stage's own)
        logits = self.lm(codes, cond, stage, attn_mask=attn_mask, codebooks=codebooks)
        if codebooks is not None and self.training:
            logits = logits + zero_gradient_anchor(self.lm, codebooks)
        return logits


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


def ids_hash(ids: list[str]) -> str:
    """A short digest of the training ids, so a resumed run can tell it trains on the same clips."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def most_frequent_tokens(tokens: TokenSet, card: int) -> torch.Tensor:
    """Per codebook, the most frequent token of the set (the floor a model must beat)."""
    allc = torch.cat([c.reshape(c.shape[0], -1) for c in tokens.codes], dim=1)
    return torch.stack([torch.bincount(allc[k], minlength=card).argmax() for k in range(allc.shape[0])])


class TextLMSolver(Solver):
    """One training step for a text-conditioned token LM; the family supplies `objective` and `validate`.

    `predictions`: the LM is trained through `compute_predictions` (MusicGen's delay pattern).
    """

    predictions: bool = False

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
        self.model = LMTrainModule(lm, predictions=self.predictions)
        self.lm = lm
        self.train_set = train
        self.valid_set = valid
        self.segment_frames = segment_frames
        self.export_fn = export_fn
        self.cond_dropout = cond_dropout
        self.card = card if card is not None else int(getattr(lm, "card"))
        self.extra_config = extra_config or {}
        self._unigram = most_frequent_tokens(train, self.card)

    def objective_config(self) -> dict:
        """The family's settings that define a run (the middle of `config`, in the order it is written)."""
        return {"cond_dropout": self.cond_dropout, "card": self.card}

    def config(self) -> dict:
        return {
            "solver": self.name, "segment_frames": self.segment_frames, **self.objective_config(),
            "n_train": len(self.train_set), "train_ids": ids_hash(self.train_set.ids), **self.extra_config,
        }

    def n_train_items(self) -> int:
        return len(self.train_set)

    def _cond(self, tokens: TokenSet, indices, generator, p_drop: float, device) -> Conditions:
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

        def conditions() -> Conditions:
            return self._cond(self.train_set, indices, rng.local, self.cond_dropout, device)

        loss, metrics = self.objective(model, codes, conditions, rng, device)
        return StepOutput(loss, B * K * T, metrics)

    @abstractmethod
    def objective(self, model: torch.nn.Module, codes: torch.Tensor, conditions: Callable[[], Conditions],
                  rng: StepRandom, device) -> tuple[torch.Tensor, dict[str, float]]:
        """The family's loss on a cropped batch [B, K, T], and its step metrics.

        `conditions()` draws the batch's (dropped-out) text conditions from `rng.local`; the family
        calls it at the point of its own random draws where it always has (the order is part of a
        run's reproducibility).
        """

    def export(self, model, folder: Path) -> Path:
        return self.export_fn(bare_lm(model), folder)
