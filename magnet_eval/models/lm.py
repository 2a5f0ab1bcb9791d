"""The token language model shared by MAGNeT and MusicGen, with audiocraft's parameter names.

State-dict keys are exactly audiocraft's `LMModel` keys, so a released `best_state` loads unchanged:

    condition_provider.conditioners.description.output_proj.{weight,bias}   (text_dim -> dim)
    emb.{k}.weight            [card + 1, dim]   (row `card` is the mask / special token)
    transformer.layers.{i}.*  (see modules/transformer.py)
    out_norm.{weight,bias}
    linears.{k}.weight        [card, dim]

Forward API (used by training and generation)::

    logits = lm(codes, condition, stage)            # codes [B, K, T] -> logits [B, K, T, card]
    logits, mask = lm.compute_predictions(codes, condition)   # through the codebook pattern

`condition` is `(cond [B, S, dim], mask [B, S])` as returned by `lm.condition(texts)` (already
projected to the LM width and zeroed where masked), a bare `cond` tensor, or None (no
cross-attention: identical to the all-zero "null" condition of classifier-free guidance, because
the attention projections have no bias). As in audiocraft, the plain forward's cross-attention does
not mask: padded condition positions are attended to (the conditioner zeroes them, but they still
take softmax mass), which keeps training and the audiocraft fixtures exact. Generation instead
precomputes `cross_kv(condition)`, which masks the padded keys: a prompt's result is then what
audiocraft computes for that prompt alone (no padding), whatever the lengths of its batch-mates.

`stage` (MAGNeT): None or 0 = bidirectional attention over all frames; stage > 0 = the restricted
context band |q - k| <= subcodes_context (or, with `cfg.stage_attention='audiocraft-sdpa'`, the
causal mask that audiocraft's torch backend silently uses instead). Causal models (MusicGen) ignore it.

The text conditioner is `magnet_eval.modules.conditioners.TextConditioner` (frozen encoder loaded
on first use and never saved; learned `output_proj`): `lm.condition(texts)` encodes prompts,
None entries give the null condition used by classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from ..modules.conditioners import ENCODER_DIMS, TextConditioner, build_text_conditioner
from ..modules.patterns import DelayPattern, ParallelPattern, get_pattern
from ..modules.transformer import CrossKV, KVCache, Transformer, restricted_context_mask

Condition = Union[tuple[torch.Tensor, torch.Tensor], torch.Tensor, None]

# How MAGNeT's stages > 0 attend. 'restricted': the band |q - k| <= subcodes_context (the paper, and
# audiocraft with its xformers backend, on which the released models were trained). 'audiocraft-sdpa':
# a causal mask, which is what audiocraft actually computes on its torch backend (CPU, no xformers),
# because it passes `is_causal=attn_mask is not None` to SDPA (audiocraft issue #407); only useful to
# reproduce audiocraft's CPU outputs (e.g. the stage > 0 logits of the shared audiocraft fixtures).
STAGE_ATTENTION_MODES = ("restricted", "audiocraft-sdpa")

TEXT_ENCODER_DIMS = ENCODER_DIMS


@dataclass
class LMConfig:
    """Everything needed to rebuild an LM (and its generation context) from a checkpoint.

    kind: 'magnet' (parallel pattern, bidirectional, restricted context for stages > 0) or
    'musicgen' (delay pattern, causal). codec: the spec `load_codec` understands (or a path).
    """

    kind: str = "magnet"
    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    hidden_scale: int = 4
    n_q: int = 4
    card: int = 2048
    causal: bool = False
    pattern: str = "parallel"
    delays: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    subcodes_context: Optional[int] = 5
    span_len: int = 3
    segment_duration: float = 10.0
    frame_rate: float = 50.0
    sample_rate: int = 32000
    cross_attention: bool = True
    text_encoder: str = "t5-base"
    text_dim: int = 768
    max_period: float = 10000.0
    codec: str = "encodec_32khz"
    stage_attention: str = "restricted"

    def __post_init__(self) -> None:
        if self.kind not in ("magnet", "musicgen"):
            raise ValueError(f"LMConfig.kind must be 'magnet' or 'musicgen', got {self.kind!r}")
        if self.stage_attention not in STAGE_ATTENTION_MODES:
            raise ValueError(f"stage_attention must be one of {STAGE_ATTENTION_MODES}, got {self.stage_attention!r}")
        self.delays = [int(d) for d in self.delays]

    @property
    def max_frames(self) -> int:
        """Frames in one training segment (segment_duration * frame_rate)."""
        return int(round(self.segment_duration * self.frame_rate))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LMConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def make_text_conditioner(encoder: str, text_dim: int, dim: int) -> TextConditioner:
    """The conditioner of `condition_provider.conditioners.description`: a frozen encoder (loaded lazily,
    never saved) + the learned `output_proj` text_dim -> dim. 'random' is the weight-free stand-in
    for benchmarks (see modules/conditioners.py)."""
    return build_text_conditioner(encoder, dim, lazy=True, random_dim=text_dim)


class ConditionProvider(nn.Module):
    """Holds the conditioners under `conditioners.<name>` (audiocraft's key layout)."""

    def __init__(self, description: nn.Module):
        super().__init__()
        self.conditioners = nn.ModuleDict({"description": description})


class LMModel(nn.Module):
    """Embeddings of the K codebooks (summed) -> transformer -> out_norm -> one linear head per codebook."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.n_q = cfg.n_q
        self.card = cfg.card
        self.special_token_id = cfg.card  # the mask token of MAGNeT, the "empty" token of the delay pattern
        self.condition_provider = ConditionProvider(make_text_conditioner(cfg.text_encoder, cfg.text_dim, cfg.dim))
        self.emb = nn.ModuleList([nn.Embedding(cfg.card + 1, cfg.dim) for _ in range(cfg.n_q)])
        self.transformer = Transformer(cfg.dim, cfg.num_heads, cfg.num_layers, cfg.hidden_scale,
                                       cross_attention=cfg.cross_attention, causal=cfg.causal,
                                       max_period=cfg.max_period)
        self.out_norm = nn.LayerNorm(cfg.dim, eps=1e-5)
        self.linears = nn.ModuleList([nn.Linear(cfg.dim, cfg.card, bias=False) for _ in range(cfg.n_q)])
        self.pattern: ParallelPattern | DelayPattern = get_pattern(cfg.pattern, cfg.n_q, cfg.delays)
        self._init_weights()

    def _init_weights(self) -> None:
        """Gaussian init with std dim**-0.5 (audiocraft's 'gaussian' weight_init); norms 1/0, biases 0."""
        std = self.cfg.dim ** -0.5
        for name, p in self.named_parameters():
            if "norm" in name:
                continue
            if name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, std=std)

    # ---- conditioning -------------------------------------------------------------------------
    @property
    def text_conditioner(self) -> TextConditioner:
        return self.condition_provider.conditioners["description"]  # type: ignore[return-value]

    def set_text_encoder(self, encoder: str) -> None:
        """Swap the frozen text encoder (e.g. to 'random' for benchmarks), keeping the learned projection.

        The new encoder must have the same width as the projection's input (cfg.text_dim).
        """
        old = self.text_conditioner
        new = make_text_conditioner(encoder, self.cfg.text_dim, self.cfg.dim)
        if new.output_proj.in_features != old.output_proj.in_features:
            raise ValueError(f"text encoder {encoder!r} is {new.output_proj.in_features}-d, the model's projection "
                             f"takes {old.output_proj.in_features}-d")
        new.output_proj = old.output_proj
        self.condition_provider.conditioners["description"] = new
        self.cfg.text_encoder = encoder

    def condition(self, texts: Sequence[Optional[str]], independent: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts (None = null condition for CFG dropout) -> (cond [B, S, dim], mask [B, S]).

        cond is zero at padded positions (and everywhere for None); the frozen encoder runs without
        gradients, the projection with them (it is trained). independent: encode every prompt alone
        and pad afterwards (generation does this), so a prompt's encoding is bit-identical whatever
        its batch; a batched encoder run pads to the longest prompt, which can change its float rounding.
        """
        texts = list(texts)
        if independent and len(texts) > 1:
            parts = [self.text_conditioner([t]) for t in texts]
            length = max(c.shape[1] for c, _ in parts)
            cond = torch.cat([torch.nn.functional.pad(c, (0, 0, 0, length - c.shape[1])) for c, _ in parts])
            mask = torch.cat([torch.nn.functional.pad(m, (0, length - m.shape[1])) for _, m in parts])
        else:
            cond, mask = self.text_conditioner(texts)
        dtype = self.emb[0].weight.dtype
        return cond.to(dtype), mask

    @staticmethod
    def null_condition(condition: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional counterpart of a condition: zeros (what audiocraft's dropout to '' gives)."""
        cond, mask = condition
        return torch.zeros_like(cond), torch.zeros_like(mask)

    def cross_kv(self, condition: Condition, mask_padding: bool = True) -> Optional[list[CrossKV]]:
        """Cross-attention keys/values of a condition for every layer: compute once per generation.

        With a (cond, mask) condition and mask_padding, padded keys are masked so that a row does not
        depend on the padding its batch-mates impose (batch-invariant generation; see module doc).
        """
        if isinstance(condition, tuple):
            cond, mask = condition
            return self.transformer.cross_kv(cond, mask if mask_padding else None)
        return self.transformer.cross_kv(condition)

    # ---- forward ------------------------------------------------------------------------------
    def attn_mask(self, stage: Optional[int], length: int, device: torch.device | str) -> Optional[torch.Tensor]:
        """Self-attention mask for a stage: None (full) for stage None/0 or causal models, else the band."""
        if self.cfg.causal or stage is None or stage <= 0 or self.cfg.subcodes_context is None:
            return None
        if self.cfg.stage_attention == "audiocraft-sdpa":
            return torch.ones(length, length, dtype=torch.bool, device=device).tril()
        return restricted_context_mask(length, self.cfg.subcodes_context, device)

    def forward(self, codes: torch.Tensor, condition: Condition = None, stage: Optional[int] = None, *,
                cross_kv: Optional[Sequence[CrossKV]] = None, cache: Optional[KVCache] = None,
                codebooks: Optional[Sequence[int]] = None, attn_mask: Optional[torch.Tensor] = None,
                per_head: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """codes [B, K, T] (ids in 0..card, card = mask/special) -> logits [B, K, T, card].

        condition: (cond, mask), cond or None (see module doc); cross_kv: precomputed from
        `cross_kv(condition)` (takes precedence); cache: KV cache for autoregressive decoding;
        codebooks: compute only these output heads (-> [B, len(codebooks), T, card]), e.g. the
        stage MAGNeT is decoding. attn_mask: boolean [T, S] self-attention mask (True = attend) that
        replaces the stage's own, e.g. the causal mask of Hybrid-MAGNeT's autoregressive prefix.
        per_head: return the heads' logits as a list of [B, T, card] instead of stacking them (a loss
        taken per codebook then needs no stacked copy, nor its full-size gradient).
        """
        B, K, T = codes.shape
        if K != self.n_q:
            raise ValueError(f"codes have {K} codebooks, the model has {self.n_q}")
        x = self.emb[0](codes[:, 0])
        for k in range(1, K):
            x = x + self.emb[k](codes[:, k])
        cross_src = None
        if cross_kv is None and condition is not None:
            cross_src = condition[0] if isinstance(condition, tuple) else condition
            cross_src = cross_src.to(x.dtype)
        mask = attn_mask if attn_mask is not None else self.attn_mask(stage, T, codes.device)
        out = self.transformer(x, cross_src=cross_src, cross_kv=cross_kv, attn_mask=mask, cache=cache)
        out = self.out_norm(out)
        heads = range(self.n_q) if codebooks is None else codebooks
        logits = [self.linears[k](out) for k in heads]
        if per_head:
            return logits
        return logits[0].unsqueeze(1) if len(logits) == 1 else torch.stack(logits, dim=1)  # one head: a view, no copy

    def compute_predictions(self, codes: torch.Tensor, condition: Condition = None, stage: Optional[int] = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits of each frame through the codebook pattern, as audiocraft's LMModel.

        codes [B, K, T] -> (logits [B, K, T, card] with NaN where invalid, mask [B, K, T] bool).
        For the delay pattern the sequence keeps only its T + 1 valid steps and the logits are
        re-aligned with the input frames; for the parallel pattern this is `forward`.
        """
        B, K, T = codes.shape
        if isinstance(self.pattern, DelayPattern):
            seq, _ = self.pattern.build(codes, self.special_token_id, valid_only=True)
            logits = self.forward(seq, condition, stage)
            logits, mask = self.pattern.revert_logits(logits, T)
        else:
            logits = self.forward(codes, condition, stage)
            mask = torch.ones(K, T, dtype=torch.bool, device=codes.device)
        return logits, mask.unsqueeze(0).expand(B, -1, -1)

    def lm_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict in audiocraft's export layout (what `checkpoints.save_lm` writes)."""
        return {k: v.detach() for k, v in self.state_dict().items()}

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

