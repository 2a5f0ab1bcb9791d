"""VampNet (Garcia et al. 2023): bidirectional masked token models over RVQ codes, coarse then coarse-to-fine.

The family in one module, top to bottom:
1. `VampNetConfig` and `VampNetModel`: the reference's token embedding (each codebook's token
   looked up in the *codec's own codebook vectors*, a learned MASK vector per codebook, the
   codebooks' vectors concatenated and projected by a 1x1 conv `out_proj`), the relative-position
   transformer of `modules/relative_transformer.py`, and a 1x1 conv `classifier` whose output
   channels are vocabulary-major (channel = token * n_predict + codebook, as the reference's
   `rearrange("b (p c) t -> b p (t c)")`). A model predicts its last `n_codebooks -
   n_conditioning_codebooks` codebooks; the first `n_conditioning_codebooks` are always given.
2. Presets: `vampnet-tiny` (the toolkit's tiny codec, CPU-sized) and `vampnet-paper` (the released
   sizes: coarse 4 codebooks, 20 layers; c2f 14 codebooks with 4 conditioning, 16 layers; width
   1280, 20 heads; DAC-style codec with 1024 codes of 8 dimensions).
3. `VampDecoding` and `sample_tokens`: the reference's iterative parallel decoding (cosine
   schedule, confidence + annealed Gumbel noise choosing what to re-mask, typical / top-p filtering).
4. `VampNet`: a coarse and a c2f model chained over chunks (`vamp`), the whole prompted resampling.
5. `training_mask` and `masked_token_loss`: the reference's training objective, for the solver.
Released-checkpoint loading lives in `vampnet_weights.py`; docs/vampnet.md lists every fact and choice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidOptionError, MagnetEvalError
from ..modules.relative_transformer import RelativeTransformer
from .sampling import ClipRandom, make_generators, sample_from_probs

# ---- 1. the model --------------------------------------------------------------------------------


@dataclass
class VampNetConfig:
    """One VampNet model (coarse or c2f). Field names follow the reference's constructor where one exists."""

    n_codebooks: int = 4  # codebooks the model sees (input)
    n_conditioning_codebooks: int = 0  # of those, the first ones given and never predicted (c2f: n_coarse)
    vocab_size: int = 1024  # codec cardinality; the MASK token id is vocab_size
    latent_dim: int = 8  # width of one codec codebook vector
    embedding_dim: int = 1280
    n_heads: int = 20
    n_layers: int = 20
    dropout: float = 0.1
    attention_num_buckets: int = 32
    attention_max_distance: int = 128
    frame_rate: float = 44100 / 768
    sample_rate: int = 44100
    chunk_duration: float = 10.0  # seconds per generation window (reference: coarse 10 s, c2f 3 s)
    codec: str = "dac_vampnet"
    # scale each codec codebook's vectors to unit RMS before the embedding (off for the released DAC sizes,
    # whose out_proj expects the raw vectors; on for vampnet-tiny, whose codec vectors reach norms of 1e5)
    normalize_codebooks: bool = False

    @property
    def n_predict(self) -> int:
        return self.n_codebooks - self.n_conditioning_codebooks

    @property
    def mask_token(self) -> int:
        return self.vocab_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VampNetConfig":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})


class CodebookEmbedding(nn.Module):
    """Tokens [B, K, T] -> embeddings [B, dim, T] through the codec's codebook vectors.

    `codebooks` [K, vocab, latent_dim] is a copy of the codec's vectors (a buffer: saved with our
    checkpoints, filled from the codec for the released ones, which do not hold it); `special.MASK`
    [K, latent_dim] is the learned vector of the mask token.
    """

    def __init__(self, n_codebooks: int, vocab_size: int, latent_dim: int, dim: int, normalize: bool = False):
        super().__init__()
        self.vocab_size = vocab_size
        self.normalize = normalize
        self.register_buffer("codebooks", torch.randn(n_codebooks, vocab_size, latent_dim))
        self.special = nn.ParameterDict({"MASK": nn.Parameter(torch.randn(n_codebooks, latent_dim))})
        self.out_proj = nn.Conv1d(n_codebooks * latent_dim, dim, 1)

    def set_codebooks(self, codebooks: torch.Tensor) -> None:
        """Use these codec vectors [>= K, vocab, latent_dim] (the first K codebooks are taken)."""
        K, V, D = self.codebooks.shape
        if codebooks.ndim != 3 or codebooks.shape[0] < K or tuple(codebooks.shape[1:]) != (V, D):
            raise MagnetEvalError(f"codec codebooks of shape {tuple(codebooks.shape)} do not fit a VampNet model "
                                  f"expecting [{K}+, {V}, {D}] (codebooks, codes, code width)")
        books = codebooks[:K].to(self.codebooks)
        if self.normalize:  # unit RMS per codebook: the input scale a transformer trains well from
            books = books / books.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)
        self.codebooks.copy_(books)

    def latents(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codec-space latents [B, K * latent_dim, T], codebook-major channels (as the reference's from_codes)."""
        K = self.codebooks.shape[0]
        table = torch.cat([self.codebooks, self.special["MASK"].unsqueeze(1)], dim=1)  # [K, V + 1, D]
        vecs = table[torch.arange(K, device=tokens.device).view(1, K, 1), tokens]  # [B, K, T, D]
        B, _, T, D = vecs.shape
        return vecs.permute(0, 1, 3, 2).reshape(B, K * D, T)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.latents(tokens))


class VampNetModel(nn.Module):
    """Bidirectional masked token model: tokens (with MASK ids) [B, K, T] -> logits [B, n_predict, T, vocab]."""

    def __init__(self, cfg: VampNetConfig):
        super().__init__()
        if not 0 <= cfg.n_conditioning_codebooks < cfg.n_codebooks:
            raise InvalidOptionError(f"VampNet: need 0 <= n_conditioning_codebooks < n_codebooks, got "
                                     f"{cfg.n_conditioning_codebooks} and {cfg.n_codebooks}")
        self.cfg = cfg
        self.embedding = CodebookEmbedding(cfg.n_codebooks, cfg.vocab_size, cfg.latent_dim, cfg.embedding_dim,
                                           normalize=cfg.normalize_codebooks)
        self.transformer = RelativeTransformer(cfg.embedding_dim, cfg.n_heads, cfg.n_layers, cfg.dropout,
                                               cfg.attention_num_buckets, cfg.attention_max_distance)
        self.classifier = nn.Conv1d(cfg.embedding_dim, cfg.vocab_size * cfg.n_predict, 1)

    @property
    def mask_token(self) -> int:
        return self.cfg.mask_token

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if tokens.ndim != 3 or tokens.shape[1] != cfg.n_codebooks:
            raise MagnetEvalError(f"VampNet expects tokens [batch, {cfg.n_codebooks}, frames], "
                                  f"got {tuple(tokens.shape)}")
        x = self.embedding(tokens).transpose(1, 2)  # [B, T, dim]
        x = self.transformer(x).transpose(1, 2)  # [B, dim, T]
        out = self.classifier(x)  # [B, vocab * P, T], channel = token * P + codebook
        B, _, T = out.shape
        return out.view(B, cfg.vocab_size, cfg.n_predict, T).permute(0, 2, 3, 1)


# ---- 2. presets ----------------------------------------------------------------------------------

PAPER_WIDTH = {"embedding_dim": 1280, "n_heads": 20}
TINY_WIDTH = {"embedding_dim": 256, "n_heads": 4, "n_layers": 4, "normalize_codebooks": True}
PRESETS: dict[str, dict[str, Any]] = {
    # tiny codec: 4 x 2048 codes of 64 dims at 50 Hz; 2 coarse + 2 fine (see docs/vampnet.md)
    "vampnet-tiny": {
        "codec": "tiny", "n_coarse": 2,
        "coarse": dict(TINY_WIDTH, n_codebooks=2, chunk_duration=10.0),
        "c2f": dict(TINY_WIDTH, n_codebooks=4, n_conditioning_codebooks=2, chunk_duration=3.0),
    },
    # conf/vampnet.yml (coarse) and conf/c2f.yml; codec 44.1 kHz, 14 x 1024 codes of 8 dims
    "vampnet-paper": {
        "codec": "dac_vampnet", "n_coarse": 4,
        "coarse": dict(PAPER_WIDTH, n_layers=20, n_codebooks=4, chunk_duration=10.0),
        "c2f": dict(PAPER_WIDTH, n_layers=16, n_codebooks=14, n_conditioning_codebooks=4, chunk_duration=3.0),
    },
}


def is_vampnet_preset(name: str) -> bool:
    return name in PRESETS


def preset_configs(name: str, codec: Optional[Any] = None) -> tuple[VampNetConfig, VampNetConfig]:
    """(coarse, c2f) configs of a preset; a codec (n_q/total_codebooks, card, dimension, frame_rate,
    sample_rate) overrides the codec numbers so the models match whatever codec they are paired with."""
    if name not in PRESETS:
        raise InvalidOptionError(f"unknown VampNet preset {name!r}; presets: {', '.join(PRESETS)}")
    p = PRESETS[name]
    base: dict[str, Any] = {"codec": p["codec"]}
    if p["codec"] == "dac_vampnet":
        base.update(vocab_size=1024, latent_dim=8, frame_rate=44100 / 768, sample_rate=44100)
    if codec is not None:
        base.update(vocab_size=int(codec.card), latent_dim=int(codec_codebooks(codec).shape[-1]),
                    frame_rate=float(codec.frame_rate), sample_rate=int(codec.sample_rate))
    coarse = VampNetConfig(**{**base, **p["coarse"]})
    c2f = VampNetConfig(**{**base, **p["c2f"]})
    if codec is not None:
        n_total = int(getattr(codec, "total_codebooks", codec.n_q))
        if c2f.n_codebooks > n_total:
            raise MagnetEvalError(f"VampNet preset {name} needs {c2f.n_codebooks} codebooks, the codec has {n_total}")
    return coarse, c2f


def codec_codebooks(codec: Any) -> torch.Tensor:
    """The codec's codebook vectors [K, card, dim]: ours (`quantizer.vq.layers.N._codebook.embed`) or DAC's
    (`quantizer.quantizers.N.codebook.weight`)."""
    q = getattr(codec, "quantizer", None)
    if q is not None and hasattr(q, "vq"):
        return torch.stack([layer._codebook.embed.detach() for layer in q.vq.layers])
    if q is not None and hasattr(q, "quantizers"):
        return torch.stack([layer.codebook.weight.detach() for layer in q.quantizers])
    raise MagnetEvalError(f"cannot read codebook vectors from codec {type(codec).__name__}")


# ---- 3. sampling ---------------------------------------------------------------------------------


@dataclass
class VampDecoding:
    """Iterative decoding options; defaults are the reference's `VampNet.generate` (steps: coarse 12, c2f 24)."""

    steps: int = 12
    temperature: float = 1.0  # <= 0: greedy (argmax)
    top_p: float = 0.0  # 0 = off (reference default None)
    typical_filtering: bool = True
    typical_mass: float = 0.15
    typical_min_tokens: int = 64
    mask_temperature: float = 10.5  # Gumbel noise on the re-masking confidence, annealed by (1 - r)
    sample_cutoff: float = 1.0  # steps with i / steps > cutoff take the argmax

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InvalidOptionError(f"sampling steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.top_p <= 1.0:
            raise InvalidOptionError(f"top_p must be in [0, 1], got {self.top_p}")
        if not 0.0 < self.typical_mass <= 1.0:
            raise InvalidOptionError(f"typical_mass must be in (0, 1], got {self.typical_mass}")


COARSE_DECODING = VampDecoding(steps=12)
C2F_DECODING = VampDecoding(steps=24)


def mask_schedule(r: torch.Tensor | float) -> torch.Tensor:
    """Fraction of the initially masked tokens still masked at progress r in [0, 1]: cos(r pi / 2)."""
    r = torch.as_tensor(r, dtype=torch.float32)
    return torch.cos(r * math.pi / 2).clamp(1e-10, 1.0)


def typical_filter(logits: torch.Tensor, mass: float, min_tokens: int) -> torch.Tensor:
    """Locally typical filtering: keep the tokens whose surprisal is closest to the entropy until they
    hold `mass` of the probability (at least `min_tokens`); others get -inf. logits [..., V]."""
    logp = F.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).nansum(-1, keepdim=True)
    score = (-logp - entropy).abs()
    sorted_score, order = torch.sort(score, dim=-1, stable=True)
    cum = logp.gather(-1, order).exp().cumsum(-1)
    last = (cum < mass).sum(-1, keepdim=True).clamp(max=logits.shape[-1] - 1)
    remove_sorted = sorted_score > sorted_score.gather(-1, last)
    remove_sorted[..., :min_tokens] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def _gumbel(rng: ClipRandom, stream: int, shape: Sequence[int]) -> torch.Tensor:
    u = rng.uniform(stream, shape) + 0.5 / (1 << 24)  # in (0, 1)
    return -torch.log(-torch.log(u))


@torch.no_grad()
def sample_tokens(model: VampNetModel, tokens: torch.Tensor, keep: torch.Tensor, dec: VampDecoding,
                  rng: ClipRandom, stream: int = 0) -> torch.Tensor:
    """Regenerate the tokens where `keep` is False; kept tokens (and conditioning codebooks) come back unchanged.

    tokens, keep [B, K, T] (K = model.cfg.n_codebooks). rng: one random stream per row
    (`make_generators(seeds)`), so a row's output depends only on its seed and its own input.
    Each step: predict all masked tokens, sample them, then re-mask the `floor(cos(r pi/2) * N0)`
    least confident (log-probability + Gumbel noise * mask_temperature * (1 - r)), r = (i+1)/steps.
    """
    cfg = model.cfg
    C, P = cfg.n_conditioning_codebooks, cfg.n_predict
    B, K, T = tokens.shape
    keep = keep.bool().clone()
    keep[:, :C] = True
    z = tokens.masked_fill(~keep, cfg.mask_token)
    masked = ~keep[:, C:]  # [B, P, T]
    n_start = masked.flatten(1).sum(-1)  # [B]
    if int(n_start.max()) == 0:
        return tokens.clone()
    for i in range(dec.steps):
        r = (i + 1) / dec.steps
        logits = model(z).float()  # [B, P, T, V]
        if dec.typical_filtering:
            logits = typical_filter(logits, dec.typical_mass, dec.typical_min_tokens)
        if dec.top_p > 0.0:
            logits = _top_p_logits(logits, dec.top_p)
        if dec.temperature > 0 and i / dec.steps <= dec.sample_cutoff:
            probs = torch.softmax(logits / dec.temperature, dim=-1)
            sampled = sample_from_probs(probs, generators=rng, stream=2 * (stream + i)).squeeze(-1)
        else:
            probs = torch.softmax(logits, dim=-1)
            sampled = probs.argmax(-1)
        chosen_p = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)  # [B, P, T]
        current = z[:, C:]
        sampled = torch.where(masked, sampled, current)
        # tokens given or fixed in earlier steps are never re-masked: infinite confidence
        conf = torch.where(masked, torch.log(chosen_p.clamp_min(1e-30)), torch.full_like(chosen_p, float("inf")))
        noise = _gumbel(rng, 2 * (stream + i) + 1, (P, T))
        conf = conf + dec.mask_temperature * (1.0 - r) * noise
        n_mask = torch.floor(mask_schedule(r) * n_start.float()).long()  # [B]
        if i < dec.steps - 1:
            n_mask = torch.maximum(torch.ones_like(n_mask), torch.minimum(masked.flatten(1).sum(-1) - 1, n_mask))
        n_mask = n_mask.clamp(min=0)
        # re-mask the n_mask lowest-confidence positions of each row
        flat = conf.flatten(1)
        ranks = flat.argsort(dim=-1, stable=True).argsort(dim=-1, stable=True)
        masked = (ranks < n_mask.unsqueeze(-1)).view(B, P, T) & masked
        z = torch.cat([z[:, :C], sampled.masked_fill(masked, cfg.mask_token)], dim=1)
    return torch.cat([tokens[:, :C], z[:, C:]], dim=1)


def _top_p_logits(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering on the untempered logits (the reference filters before the temperature)."""
    probs = torch.softmax(logits, dim=-1)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    drop_sorted = (sorted_p.cumsum(-1) - sorted_p) > p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


# ---- 4. the coarse + coarse-to-fine pair ---------------------------------------------------------


class VampNet(nn.Module):
    """A coarse model over the first `n_coarse` codebooks and a c2f model predicting the rest from them."""

    def __init__(self, coarse: VampNetModel, c2f: Optional[VampNetModel], name: str = "vampnet"):
        super().__init__()
        if c2f is not None and c2f.cfg.n_conditioning_codebooks != coarse.cfg.n_codebooks:
            raise MagnetEvalError(f"the c2f model conditions on {c2f.cfg.n_conditioning_codebooks} codebooks but the "
                                  f"coarse model makes {coarse.cfg.n_codebooks}")
        self.coarse = coarse
        self.c2f = c2f
        self.name = name

    @property
    def n_coarse(self) -> int:
        return self.coarse.cfg.n_codebooks

    @property
    def n_codebooks(self) -> int:
        return (self.c2f or self.coarse).cfg.n_codebooks

    @property
    def frame_rate(self) -> float:
        return self.coarse.cfg.frame_rate

    @torch.no_grad()
    def vamp(self, tokens: torch.Tensor, keep: torch.Tensor, seeds: Sequence[int],
             coarse: VampDecoding = COARSE_DECODING, c2f: VampDecoding = C2F_DECODING) -> torch.Tensor:
        """Prompted resampling: tokens, keep [B, K, T] (K = all codebooks) -> tokens [B, K, T].

        The coarse model regenerates the unkept coarse tokens in windows of its chunk duration; the
        c2f model then regenerates the unkept fine tokens window by window given the new coarse
        ones. Kept tokens come back unchanged; the same seeds give the same tokens.
        """
        if tokens.shape != keep.shape or tokens.ndim != 3:
            raise MagnetEvalError(f"tokens {tuple(tokens.shape)} and keep mask {tuple(keep.shape)} must both be [B, K, T]")
        if tokens.shape[1] < self.n_codebooks:
            raise MagnetEvalError(f"{self.name} needs {self.n_codebooks} codebooks, got {tokens.shape[1]}")
        if len(seeds) != tokens.shape[0]:
            raise MagnetEvalError(f"{len(seeds)} seeds for a batch of {tokens.shape[0]}")
        tokens, keep = tokens[:, : self.n_codebooks], keep[:, : self.n_codebooks].bool()
        rng = make_generators(seeds, tokens.device)
        nc = self.n_coarse
        out = tokens.clone()
        out[:, :nc] = self._chunked(self.coarse, tokens[:, :nc], keep[:, :nc], coarse, rng, stage=0)
        if self.c2f is not None:
            out = self._chunked(self.c2f, out, keep, c2f, rng, stage=1)
        return out

    def _chunked(self, model: VampNetModel, tokens: torch.Tensor, keep: torch.Tensor, dec: VampDecoding,
                 rng: ClipRandom, stage: int) -> torch.Tensor:
        size = max(1, round(model.cfg.chunk_duration * model.cfg.frame_rate))
        out = []
        for c, start in enumerate(range(0, tokens.shape[-1], size)):
            sl = slice(start, start + size)
            stream = (stage * 100_000 + c) * 1_000  # distinct random streams per stage, window and step
            out.append(sample_tokens(model, tokens[..., sl], keep[..., sl], dec, rng, stream))
        return torch.cat(out, dim=-1)


def build_vampnet(name: str, codec: Optional[Any] = None, seed: int = 0) -> VampNet:
    """A preset with random weights (seeded: the same weights every time), its embedding reading `codec`'s vectors."""
    coarse_cfg, c2f_cfg = preset_configs(name, codec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        coarse, c2f = VampNetModel(coarse_cfg), VampNetModel(c2f_cfg)
    if codec is not None:
        books = codec_codebooks(codec)
        coarse.embedding.set_codebooks(books)
        c2f.embedding.set_codebooks(books)
    return VampNet(coarse.eval(), c2f.eval(), name=name)


# ---- 5. training objective (for the solver) ------------------------------------------------------


def training_mask(tokens: torch.Tensor, r: torch.Tensor, n_conditioning: int,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Which tokens to hide in training [B, K, T] (True = masked): each with probability cos(r pi / 2),
    r [B] one draw per example from the schedule (reference: a Sobol sequence); conditioning codebooks never."""
    p = mask_schedule(r.float()).view(-1, 1, 1).to(tokens.device)
    u = torch.rand(tokens.shape, generator=generator, device="cpu" if generator is not None else tokens.device)
    masked = u.to(tokens.device) < p
    masked[:, :n_conditioning] = False
    return masked


def masked_token_loss(model: VampNetModel, tokens: torch.Tensor, masked: torch.Tensor,
                      label_smoothing: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy over the masked tokens of the predicted codebooks, their accuracy), as the reference
    trains (label smoothing 0.1, conf/vampnet.yml). masked [B, K, T] from `training_mask`."""
    logits = model(tokens.masked_fill(masked, model.mask_token))  # [B, P, T, V]
    loss, correct = masked_logits_loss(logits, tokens, masked, model.cfg.n_conditioning_codebooks, label_smoothing)
    return loss, (correct.float().mean() if correct.numel() else loss.detach() * 0.0)


def masked_logits_loss(logits: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor, n_conditioning: int,
                       label_smoothing: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of `masked_token_loss` from logits already computed (the solver calls the possibly
    DDP-wrapped model itself): (mean cross-entropy over masked predicted tokens, per-token correctness [N]).
    With nothing masked the loss is a zero that still reaches every logit (so DDP sees all parameters)."""
    target, sel = tokens[:, n_conditioning:], masked[:, n_conditioning:]
    if not bool(sel.any()):
        return logits.sum() * 0.0, torch.zeros(0, dtype=torch.bool, device=logits.device)
    picked = logits[sel].float()
    loss = F.cross_entropy(picked, target[sel], label_smoothing=label_smoothing)
    return loss, (picked.argmax(-1) == target[sel]).detach()


__all__ = ["VampNetConfig", "VampNetModel", "VampNet", "VampDecoding", "COARSE_DECODING", "C2F_DECODING",
           "PRESETS", "build_vampnet", "preset_configs", "is_vampnet_preset", "sample_tokens", "typical_filter",
           "mask_schedule", "codec_codebooks", "training_mask", "masked_token_loss", "masked_logits_loss"]
