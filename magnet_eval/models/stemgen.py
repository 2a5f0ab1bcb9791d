"""StemGen (Parker et al. 2023): a masked non-autoregressive transformer that listens to a mix and answers with a stem.

Each sequence element is one codec frame of two audio channels, the context mix and the target
stem: per channel the codebook levels' embeddings are summed, the two channel embeddings
(dim/2 each) are concatenated, and the instrument's learned embedding is added (a null class
for classifier-free guidance). A bidirectional transformer (the toolkit's, without
cross-attention) predicts the target's codebooks with one head per level.

Sampling is level by level (as SoundStorm / MAGNeT): per level, MaskGIT-style iterations unmask
the tokens with the highest rank
    rho = w_conf * confidence + causal_bias * (1 - n / N) + w_noise * U(0, 1)
(`unmask_ranking`; n = frame index, N = frames; causal_bias 0 = off), with multi-source
classifier-free guidance over the audio context and the instrument (`multi_source_cfg`):
    log p~(t) = log p(t) + sum_i w_i (log p(t | c_i) - log p(t)),
the 1 + n_sources forward passes of a step in one batch. docs/stemgen.md lists the paper's facts
and every choice it leaves open.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, MagnetEvalError, MissingWeightsError
from ..files import load_torch
from ..modules.transformer import Transformer
from ..stems import INSTRUMENTS, instrument_index
from .sampling import make_generators, sample_from_probs

__all__ = ["STEMGEN_PRESETS", "StemGenConfig", "StemGenDecoding", "StemGenLM", "build_stemgen", "cfg_rows",
           "is_stemgen_preset", "load_stemgen", "multi_source_cfg", "save_stemgen", "select_unmasked",
           "stemgen_preset_config", "unmask_ranking", "unmasked_schedule"]


@dataclass
class StemGenConfig:
    """Everything needed to rebuild a StemGen model; `instruments` is the class vocabulary (saved with it)."""

    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 20
    hidden_scale: int = 4
    n_q: int = 4
    card: int = 2048
    frame_rate: float = 50.0
    sample_rate: int = 32000
    segment_duration: float = 10.0
    codec: str = "encodec_32khz"
    instruments: list[str] = field(default_factory=lambda: list(INSTRUMENTS))

    def __post_init__(self) -> None:
        if self.dim % 2 or (self.dim // 2) % 2:
            raise MagnetEvalError(f"StemGen dim must be a multiple of 4 (two channels of dim/2), got {self.dim}")
        if self.n_q < 1 or self.card < 2:
            raise MagnetEvalError(f"bad codebook layout n_q={self.n_q}, card={self.card}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StemGenConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---- presets ---------------------------------------------------------------------------------------
# tiny: the CPU scale of the toolkit's other tiny presets (dim 256, 4 heads, 4 layers) over the tiny codec.
# paper: ~250M parameters (the paper's Slakh / internal models), EnCodec 32 kHz; the layout (1024 wide,
# 16 heads, 18 layers -> 244M with the embeddings and heads) is our choice for that size (docs/stemgen.md).
STEMGEN_PRESETS: dict[str, dict[str, Any]] = {
    "stemgen-tiny": {"dim": 256, "num_heads": 4, "num_layers": 4, "codec": "tiny"},
    "stemgen-paper": {"dim": 1024, "num_heads": 16, "num_layers": 18, "codec": "encodec_32khz"},
}


def is_stemgen_preset(name: str) -> bool:
    return name in STEMGEN_PRESETS


def stemgen_preset_config(name: str, codec: Optional[Any] = None) -> StemGenConfig:
    """The config of a preset; `codec` (n_q, card, frame_rate, sample_rate) overrides the codebook layout."""
    if name not in STEMGEN_PRESETS:
        raise MagnetEvalError(f"unknown StemGen preset {name!r}; presets: {', '.join(STEMGEN_PRESETS)}")
    cfg = StemGenConfig(**STEMGEN_PRESETS[name])
    if codec is not None:
        cfg = replace(cfg, n_q=int(codec.n_q), card=int(codec.card), frame_rate=float(codec.frame_rate),
                      sample_rate=int(codec.sample_rate))
    return cfg


# ---- pure sampling pieces --------------------------------------------------------------------------
def multi_source_cfg(uncond: torch.Tensor, conds: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """The paper's multi-source guidance on logits: log p(t) + sum_i w_i (log p(t|c_i) - log p(t)).

    uncond: logits with every source dropped; conds[i]: logits with only source i present. Each is
    turned into log-probabilities first (log_softmax over the last axis); the result is an
    unnormalised log-probability (softmax it to sample).
    """
    if len(conds) != len(weights):
        raise ValueError(f"{len(conds)} conditional logits for {len(weights)} guidance weights")
    lp_u = F.log_softmax(uncond.float(), dim=-1)
    out = lp_u.clone()
    for c, w in zip(conds, weights):
        out = out + float(w) * (F.log_softmax(c.float(), dim=-1) - lp_u)
    return out


def _uniforms(rng: Any, stream: int, B: int, T: int) -> torch.Tensor:
    """[B, T] uniforms: from a per-clip random stream (`make_generators`' object, keyed by stream) or
    from one seeded torch.Generator per row; unseeded when rng is None."""
    if rng is None:
        return torch.rand(B, T)
    if len(rng) != B:
        raise ValueError(f"{len(rng)} random streams for a batch of {B}")
    if hasattr(rng, "uniform"):
        return rng.uniform(stream, (T,)).float().cpu()
    return torch.stack([torch.rand(T, generator=g) for g in rng])


def unmask_ranking(confidence: torch.Tensor, causal_bias: float = 0.1, confidence_weight: float = 0.1,
                   noise_weight: float = 1.0, generators: Optional[Any] = None, stream: int = 0) -> torch.Tensor:
    """Rank of each frame for unmasking: w_c * confidence + causal_bias * (1 - n/N) + w_r * U(0, 1).

    confidence [B, T] (e.g. the probability of the sampled token). Higher rank = unmasked earlier.
    causal_bias > 0 favours early frames (n small); 0 makes the order independent of position
    (only confidence and noise). generators: `make_generators(seeds)` (draws from `stream`) or
    one torch.Generator per row; the noise of a row depends only on its own seed.
    """
    B, T = confidence.shape
    noise = _uniforms(generators, stream, B, T)
    position = 1.0 - torch.arange(T, dtype=torch.float32) / T
    return (confidence_weight * confidence.float().cpu() + causal_bias * position[None]
            + noise_weight * noise).to(confidence.device)


def select_unmasked(ranking: torch.Tensor, masked: torch.Tensor, n_unmask: int) -> torch.Tensor:
    """Bool [B, T]: the `n_unmask` still-masked frames of highest rank per row (ties: the earlier frame)."""
    score = ranking.masked_fill(~masked, -math.inf)
    n = min(int(n_unmask), int(masked.sum(-1).min()))
    if n <= 0:
        return torch.zeros_like(masked)
    idx = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :n]
    return torch.zeros_like(masked).scatter(1, idx, True)


def unmasked_schedule(steps: int, T: int) -> list[int]:
    """Frames unmasked at each of `steps` iterations (MaskGIT cosine).

    Still masked after iteration i: floor(T cos(pi/2 (i+1)/steps)), 0 after the last; at least
    one frame per iteration while frames remain (so later iterations may get 0 when steps > T).
    The counts sum to T.
    """
    remaining = [int(math.floor(T * math.cos(math.pi / 2 * (i + 1) / steps))) for i in range(steps)]
    remaining[-1] = 0
    out, left = [], T
    for i, r in enumerate(remaining):
        r = min(r, left - 1) if left > 0 and i < steps - 1 else r
        r = max(r, 0)
        out.append(left - r)
        left = r
    return out


def cfg_rows(context: torch.Tensor, instrument: torch.Tensor, null_context: int, null_instrument: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The three condition rows of multi-source CFG, stacked [uncond; context only; instrument only] (3B rows)."""
    null_ctx = torch.full_like(context, null_context)
    null_ins = torch.full_like(instrument, null_instrument)
    return (torch.cat([null_ctx, context, null_ctx], dim=0), torch.cat([null_ins, null_ins, instrument], dim=0))


@dataclass
class StemGenDecoding:
    """Decoding knobs. Defaults: the paper's steps per level and ranking weights; the rest are our choices.

    cfg_weights: (context, instrument) guidance weights, or None = no guidance (one fully
    conditional pass per step: the "multi-source CFG off" ablation).
    """

    decoding_steps: list[int] = field(default_factory=lambda: [128, 64, 32, 32])
    cfg_weights: Optional[tuple[float, float]] = (3.0, 3.0)
    causal_bias: float = 0.1
    confidence_weight: float = 0.1
    noise_weight: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0

    def __post_init__(self) -> None:
        if any(int(s) < 1 for s in self.decoding_steps):
            raise MagnetEvalError(f"decoding_steps must all be >= 1, got {self.decoding_steps}")
        self.decoding_steps = [int(s) for s in self.decoding_steps]
        if self.cfg_weights is not None:
            if len(self.cfg_weights) != 2:
                raise MagnetEvalError(f"cfg_weights takes two weights (context, instrument), got {self.cfg_weights}")
            self.cfg_weights = (float(self.cfg_weights[0]), float(self.cfg_weights[1]))
        if self.temperature <= 0:
            raise MagnetEvalError(f"temperature must be > 0, got {self.temperature}")

    def to_dict(self) -> dict:
        return asdict(self)


# ---- the model -------------------------------------------------------------------------------------
class StemGenLM(nn.Module):
    """Context + target tokens + instrument -> logits of the target's codebooks.

    Token id `card` is the mask token on the target channel and the null (dropped) context on
    the context channel; instrument id `len(instruments)` is the null instrument.
    """

    def __init__(self, cfg: StemGenConfig):
        super().__init__()
        self.cfg = cfg
        self.n_q, self.card = cfg.n_q, cfg.card
        half = cfg.dim // 2
        self.context_emb = nn.ModuleList([nn.Embedding(cfg.card + 1, half) for _ in range(cfg.n_q)])
        self.target_emb = nn.ModuleList([nn.Embedding(cfg.card + 1, half) for _ in range(cfg.n_q)])
        self.instrument_emb = nn.Embedding(len(cfg.instruments) + 1, cfg.dim)
        self.transformer = Transformer(cfg.dim, cfg.num_heads, cfg.num_layers, cfg.hidden_scale,
                                       cross_attention=False, causal=False)
        self.out_norm = nn.LayerNorm(cfg.dim)
        self.linears = nn.ModuleList([nn.Linear(cfg.dim, cfg.card, bias=False) for _ in range(cfg.n_q)])

    @property
    def mask_id(self) -> int:
        return self.card

    @property
    def null_instrument(self) -> int:
        return len(self.cfg.instruments)

    def instrument_ids(self, names: Sequence[str]) -> torch.Tensor:
        """Class ids of instrument names (unknown names raise an error listing the vocabulary)."""
        return torch.tensor([instrument_index(n, self.cfg.instruments) for n in names], dtype=torch.long)

    def embed(self, context: torch.Tensor, target: torch.Tensor, instrument: torch.Tensor) -> torch.Tensor:
        """[B, dim, T]-free input: per channel the levels' embeddings summed, channels concatenated, + instrument."""
        if context.shape != target.shape or context.dim() != 3 or context.shape[1] != self.n_q:
            raise ValueError(f"context {tuple(context.shape)} and target {tuple(target.shape)} must both be "
                             f"[B, {self.n_q}, T]")
        ctx = sum(self.context_emb[k](context[:, k]) for k in range(self.n_q))
        tgt = sum(self.target_emb[k](target[:, k]) for k in range(self.n_q))
        return torch.cat([ctx, tgt], dim=-1) + self.instrument_emb(instrument)[:, None, :]

    def forward(self, context: torch.Tensor, target: torch.Tensor, instrument: torch.Tensor,
                codebooks: Optional[Sequence[int]] = None) -> torch.Tensor:
        """context, target [B, K, T] (ids in [0, card]), instrument [B] -> logits [B, K', T, card]."""
        h = self.out_norm(self.transformer(self.embed(context, target, instrument)))
        ks = range(self.n_q) if codebooks is None else codebooks
        return torch.stack([self.linears[k](h) for k in ks], dim=1)

    # -- training ------------------------------------------------------------------------------------
    def training_inputs(self, context: torch.Tensor, target: torch.Tensor, instrument: torch.Tensor,
                        p_drop_context: float = 0.2, p_drop_instrument: float = 0.2,
                        generator: Optional[torch.Generator] = None, stage: Optional[int] = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """The masked-token objective's inputs: (context, masked target, instrument, level k, mask [B, T]).

        One level k per batch (uniform unless given); levels < k as they are, level k masked at a
        cosine rate per sample (single tokens, as SoundStorm), levels > k fully masked; the context
        (-> null token) and the instrument (-> null class) dropped independently per sample for
        guidance. Pure of the model's weights, so a solver can call the (DDP-wrapped) model on them.
        """
        from ..solvers.magnet import masked_stage_inputs
        from ..solvers.masking import choose_stage, sample_masks

        B, K, T = target.shape
        k = choose_stage(K, generator) if stage is None else int(stage)
        mask, _ = sample_masks(B, T, span_len=1, generator=generator, device=target.device)
        drop_c = (torch.rand(B, generator=generator) < p_drop_context).to(target.device)
        drop_i = (torch.rand(B, generator=generator) < p_drop_instrument).to(target.device)
        ctx = torch.where(drop_c[:, None, None], torch.full_like(context, self.mask_id), context)
        ins = torch.where(drop_i, torch.full_like(instrument, self.null_instrument), instrument)
        return ctx, masked_stage_inputs(target, k, mask, self.mask_id), ins, k, mask

    def training_loss(self, context: torch.Tensor, target: torch.Tensor, instrument: torch.Tensor,
                      p_drop_context: float = 0.2, p_drop_instrument: float = 0.2,
                      generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy over the masked tokens of level k (see `training_inputs`); also {"acc", "stage"}."""
        from ..solvers.magnet import magnet_loss

        ctx, x, ins, k, mask = self.training_inputs(context, target, instrument, p_drop_context,
                                                    p_drop_instrument, generator)
        logits = self(ctx, x, ins, codebooks=[k])  # [B, 1, T, card]: only level k's head
        loss, correct = magnet_loss(logits, target[:, k:k + 1], 0, mask)
        return loss, {"acc": float(correct.float().mean()) if correct.numel() else 0.0, "stage": float(k)}

    # -- sampling ------------------------------------------------------------------------------------
    def _guided_logprobs(self, context: torch.Tensor, target: torch.Tensor, instrument: torch.Tensor,
                         stage: int, dec: StemGenDecoding) -> torch.Tensor:
        """Log-probabilities [B, T, card] of level `stage`, guided; all forward passes of the step in one batch."""
        B = target.shape[0]
        if dec.cfg_weights is None:
            return F.log_softmax(self(context, target, instrument, codebooks=[stage])[:, 0].float(), dim=-1)
        ctx_rows, ins_rows = cfg_rows(context, instrument, self.mask_id, self.null_instrument)
        logits = self(ctx_rows, target.repeat(3, 1, 1), ins_rows, codebooks=[stage])[:, 0]
        uncond, ctx_only, ins_only = logits.split(B, dim=0)
        return multi_source_cfg(uncond, [ctx_only, ins_only], dec.cfg_weights)

    @torch.no_grad()
    def generate(self, context: torch.Tensor, instrument: torch.Tensor, decoding: Optional[StemGenDecoding] = None,
                 generators: Optional[Any] = None, seeds: Optional[Sequence[int]] = None,
                 callback: Optional[Callable[[int, int], None]] = None, trace: Optional[list] = None) -> torch.Tensor:
        """Target codes [B, K, T] for context codes [B, K, T] and instrument ids [B].

        Level by level; at each iteration the model predicts the level's masked frames, tokens are
        sampled there, and the frames of highest `unmask_ranking` are kept (the rest re-masked).
        generators (or seeds): one RNG per sample, so a sample's tokens depend only on its seed.
        trace: if a list, one dict per iteration (stage, step, unmasked frame indices per sample).
        """
        dec = decoding or StemGenDecoding()
        if len(dec.decoding_steps) != self.n_q:
            raise MagnetEvalError(f"decoding_steps has {len(dec.decoding_steps)} entries for {self.n_q} codebooks")
        device = self.linears[0].weight.device
        context = context.to(device)
        instrument = instrument.to(device)
        B, K, T = context.shape
        if generators is None and seeds is not None:
            generators = make_generators(list(seeds), device)
        target = torch.full((B, K, T), self.mask_id, dtype=torch.long, device=device)
        total, done = sum(dec.decoding_steps), 0
        for stage, n_steps in enumerate(dec.decoding_steps):
            masked = torch.ones(B, T, dtype=torch.bool, device=device)
            for i, n_unmask in enumerate(unmasked_schedule(n_steps, T)):
                logp = self._guided_logprobs(context, target, instrument, stage, dec)
                probs = torch.softmax(logp / dec.temperature, dim=-1)
                # distinct random streams per iteration: even = token draws, odd = ranking noise
                sampled = sample_from_probs(probs, dec.top_k, dec.top_p, generators, stream=2 * done)[..., 0]
                conf = torch.gather(probs, -1, sampled.unsqueeze(-1))[..., 0]
                rank = unmask_ranking(conf, dec.causal_bias, dec.confidence_weight, dec.noise_weight, generators,
                                      stream=2 * done + 1)
                keep = select_unmasked(rank, masked, n_unmask)
                level = target[:, stage]
                target[:, stage] = torch.where(keep, sampled, level)
                masked = masked & ~keep
                if trace is not None:
                    trace.append({"stage": stage, "step": i,
                                  "unmasked": [torch.nonzero(keep[b]).flatten().tolist() for b in range(B)]})
                done += 1
                if callback is not None:
                    callback(done, total)
        return target


# ---- building, saving, loading ---------------------------------------------------------------------
CHECKPOINT_KIND = "magnet_eval.stemgen"


def save_stemgen(model: StemGenLM, path: str | Path, extra: Optional[dict] = None) -> Path:
    """Write {'kind', 'config', 'state_dict', 'extra'} (plain tensors and types: loads with weights_only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"kind": CHECKPOINT_KIND, "config": model.cfg.to_dict(), "state_dict": model.state_dict(),
                "extra": dict(extra or {})}, tmp)
    tmp.replace(path)
    return path


def load_stemgen(path: str | Path, device: str | torch.device = "cpu") -> StemGenLM:
    """A StemGen checkpoint written by `save_stemgen` (never runs code from the file: weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: StemGen checkpoint does not exist")
    pkg = load_torch(path)  # the one safe loader: plain data only, CheckpointError naming the file
    if not isinstance(pkg, dict) or pkg.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path}: not a StemGen checkpoint (no kind {CHECKPOINT_KIND!r})")
    model = StemGenLM(StemGenConfig.from_dict(pkg["config"]))
    missing, unexpected = model.load_state_dict(pkg["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: state dict does not match its config (missing {list(missing)[:5]}, "
                              f"unexpected {list(unexpected)[:5]})")
    return model.to(device).eval()


def _codec_for(spec: str, device: str | torch.device, random_ok: bool) -> Any:
    from .codec import load_codec

    try:
        return load_codec(spec, device=device)
    except MissingWeightsError:
        if not random_ok:
            raise
        return load_codec(spec, device=device, pretrained=False)


def build_stemgen(spec: str, device: str | torch.device = "cpu", codec: Optional[str] = None) -> tuple[StemGenLM, Any]:
    """(model, codec) from a preset name (seeded random weights) or a checkpoint path.

    codec: a codec spec overriding the model's (`load_codec` forms); a preset accepts a codec
    with random weights when the real one is not on this machine (benchmarks, smoke tests).
    """
    if is_stemgen_preset(spec):
        cfg = stemgen_preset_config(spec)
        cod = _codec_for(codec or cfg.codec, device, random_ok=True)
        cfg = stemgen_preset_config(spec, cod)
        with torch.random.fork_rng(devices=[]):  # the same random weights every time a preset is built
            torch.manual_seed(0)
            model = StemGenLM(cfg)
        return model.to(device).eval(), cod
    p = Path(spec).expanduser()
    if not p.exists():
        raise MagnetEvalError(f"unknown StemGen model {spec!r}: give a preset ({', '.join(STEMGEN_PRESETS)}) or a "
                              "checkpoint written by save_stemgen")
    model = load_stemgen(p, device)
    cod = _codec_for(codec or model.cfg.codec, device, random_ok=False)
    if (cod.n_q, cod.card) != (model.n_q, model.card):
        spec_used = codec or model.cfg.codec
        raise CheckpointError(f"{p}: model expects {model.n_q} x {model.card} codes, codec {spec_used!r} "
                              f"gives {cod.n_q} x {cod.card}")
    return model, cod
