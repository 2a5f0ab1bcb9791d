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

`hybrid=True` (`train magnet --hybrid`, Hybrid-MAGNeT; docs/magnet-beyond-audiocraft.md): each sample
also draws a prefix length p ~ U{0..T}. The masked pass sees the first p frames whole (all codebooks,
as the autoregressive prefix is at inference) and masks only after them; a second set of rows, in the
same forward, reads the clip shifted right by one frame under a causal mask and is trained to predict
every codebook of each prefix frame (next-frame cross-entropy). The loss is the sum of the two means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .interface import StepRandom
from .masking import choose_stage, sample_masks
from .text_lm import Conditions, TextLMSolver, bare_lm
from .tokens import TokenSet


def masked_stage_inputs(codes: torch.Tensor, stage: int, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """LM input for `stage`: earlier codebooks as given, this one masked where `mask`, later ones all masked."""
    x = codes.clone()
    x[:, stage] = torch.where(mask, torch.full_like(codes[:, stage], mask_id), codes[:, stage])
    x[:, stage + 1 :] = mask_id
    return x


def magnet_loss(logits: torch.Tensor, codes: torch.Tensor, stage: int, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the masked tokens of `stage` only; also returns the per-token correctness.

    logits: [B, K, T, card] (every head) or [B, 1, T, card] (the stage's head only)."""
    lg = logits[:, stage if logits.shape[1] > 1 else 0][mask].float()  # [N, card]
    target = codes[:, stage][mask]
    loss = F.cross_entropy(lg, target)
    correct = (lg.argmax(-1) == target)
    return loss, correct


class StageTally:
    """Masked-token loss, accuracy and most-frequent-token hits summed per stage, then averaged.

    What a masked family's validation reports (per stage, then the mean over stages), kept in one
    place so every masked solver's `valid_*` columns mean the same.
    """

    def __init__(self) -> None:
        self._sums: dict[int, list] = {}  # stage -> [sum of loss x tokens, correct, unigram hits, tokens]

    def add(self, stage: int, loss: torch.Tensor, correct: torch.Tensor, unigram_hits: int, n_tokens: int) -> None:
        """One batch of a stage: its mean masked loss over `n_tokens` tokens and their correctness."""
        s = self._sums.setdefault(stage, [0.0, 0, 0, 0])
        s[0] += float(loss) * n_tokens
        s[1] += int(correct.sum())
        s[2] += unigram_hits
        s[3] += n_tokens

    def metrics(self) -> dict[str, float]:
        """valid_accuracy_stage{k} / valid_loss_stage{k} per stage, then valid_loss / _accuracy / _unigram_accuracy."""
        out: dict[str, float] = {}
        losses, accs, unigram_accs = [], [], []
        for stage, (loss_sum, correct, hits, total) in self._sums.items():
            out[f"valid_accuracy_stage{stage}"] = correct / total
            out[f"valid_loss_stage{stage}"] = loss_sum / total
            losses.append(loss_sum / total)
            accs.append(correct / total)
            unigram_accs.append(hits / total)
        out["valid_loss"] = sum(losses) / len(losses)
        out["valid_accuracy"] = sum(accs) / len(accs)
        out["valid_unigram_accuracy"] = sum(unigram_accs) / len(unigram_accs)
        return out


class MagnetSolver(TextLMSolver):
    """Trains a MAGNeT LM on cached tokens and text conditions."""

    name = "magnet"
    # every head gets a gradient (an exact zero for the stages not trained this step: text_lm.zero_gradient_anchor);
    # DDP's search for unused parameters stays on as a safety net
    find_unused_parameters = True

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
        hybrid: bool = False,
    ):
        super().__init__(lm, train, valid, segment_frames, export_fn, cond_dropout, card, extra_config)
        self.span_len = span_len
        self.n_q = n_q or train.n_q
        self.mask_id = self.card
        self.valid_rates = valid_rates
        self.hybrid = hybrid

    def objective_config(self) -> dict:
        cfg = {"span_len": self.span_len, "cond_dropout": self.cond_dropout, "n_q": self.n_q, "card": self.card}
        if self.hybrid:
            cfg["hybrid"] = True
        return cfg

    def objective(self, model, codes, conditions: Callable[[], Conditions], rng: StepRandom, device):
        """A stage drawn on the shared RNG, span masks on it, loss on its masked tokens only."""
        if self.hybrid:
            return self._hybrid_objective(model, codes, conditions, rng, device)
        B, K, T = codes.shape
        stage = choose_stage(self.n_q, rng.shared)
        mask, rate = sample_masks(B, T, self.span_len, generator=rng.local, device=device)
        raw, cmask = conditions()
        # the stage's output head only (LMTrainModule anchors the others at an exact zero gradient)
        logits = model(masked_stage_inputs(codes, stage, mask, self.mask_id), raw, cmask, stage, codebooks=[stage])
        loss, correct = magnet_loss(logits, codes, stage, mask)
        return loss, {
            "stage": float(stage), "mask_rate": float(mask.float().mean()),
            "train_masked_accuracy": float(correct.float().mean()),
        }

    def _hybrid_objective(self, model, codes, conditions: Callable[[], Conditions], rng: StepRandom, device):
        """Hybrid-MAGNeT: masked loss after a random prefix + causal next-frame loss on it, in one forward."""
        from ..models.hybrid import causal_mask, shift_right

        B, K, T = codes.shape
        stage = choose_stage(self.n_q, rng.shared)
        mask, _ = sample_masks(B, T, self.span_len, generator=rng.local, device=device)
        prefix = torch.randint(0, T + 1, (B,), generator=rng.local).to(device)
        in_prefix = torch.arange(T, device=device).unsqueeze(0) < prefix.unsqueeze(1)  # [B, T]
        mask = mask & ~in_prefix
        masked_in = torch.where(in_prefix.unsqueeze(1), codes, masked_stage_inputs(codes, stage, mask, self.mask_id))
        own = bare_lm(model).attn_mask(stage, T, device)
        own = torch.ones(T, T, dtype=torch.bool, device=device) if own is None else own
        attn = torch.cat([own.expand(B, 1, T, T), causal_mask(T, T, device).expand(B, 1, T, T)])
        raw, cmask = conditions()
        twice = (lambda t: None if t is None else torch.cat([t, t]))
        logits = model(torch.cat([masked_in, shift_right(codes, self.mask_id)]), twice(raw), twice(cmask), stage,
                       attn_mask=attn)
        nar, ar = logits[:B], logits[B:]
        ar_sel = in_prefix.unsqueeze(1).expand(B, K, T)

        def mean_ce(lg: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(lg.float(), target) if target.numel() else lg.sum() * 0.0

        masked_loss = mean_ce(nar[:, stage][mask], codes[:, stage][mask])
        ar_loss = mean_ce(ar[ar_sel], codes[ar_sel])
        correct = (nar[:, stage][mask].argmax(-1) == codes[:, stage][mask]).float()
        return masked_loss + ar_loss, {
            "stage": float(stage), "mask_rate": float(mask.float().mean()),
            "train_masked_accuracy": float(correct.mean()) if correct.numel() else float("nan"),
            "hybrid_prefix_frames": float(prefix.float().mean()), "train_ar_loss": float(ar_loss.detach()),
        }

    @torch.no_grad()
    def validate(self, model, device) -> dict[str, float]:
        vs = self.valid_set
        n = len(vs)
        idx = list(range(n))
        tally = StageTally()
        bs = 16
        for stage in range(self.n_q):
            for r_i, rate in enumerate(self.valid_rates):
                g = torch.Generator().manual_seed(1000 * stage + r_i)
                for start in range(0, n, bs):
                    chunk = idx[start : start + bs]
                    codes = vs.crop(chunk, self.segment_frames, random_offset=False).to(device)
                    B, K, T = codes.shape
                    t = torch.full((B,), float(torch.arccos(torch.tensor(rate)) * 2 / torch.pi))
                    mask, _ = sample_masks(B, T, self.span_len, generator=g, device=device, t=t)
                    raw, cmask = self._cond(vs, chunk, None, 0.0, device)
                    logits = model(masked_stage_inputs(codes, stage, mask, self.mask_id), raw, cmask, stage,
                                   codebooks=[stage])
                    loss, correct = magnet_loss(logits, codes, stage, mask)
                    hits = int((codes[:, stage][mask] == self._unigram[stage].to(device)).sum())
                    tally.add(stage, loss, correct, hits, int(mask.sum()))
        out = tally.metrics()
        out["valid_chance_accuracy"] = 1.0 / self.card
        return out
