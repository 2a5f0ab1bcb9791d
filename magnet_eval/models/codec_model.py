"""The codec architecture: EnCodec (SEANet encoder -> residual VQ -> SEANet decoder) and the tiny spectral codec.

MAGNeT and MusicGen model the discrete tokens of an EnCodec model; released checkpoints pair the
LM with audiocraft's 32 kHz MusicGen codec (SEANet ratios [8, 5, 4, 4], 4 x 2048 codebooks, hop
640 = 50 frames/s). audiocraft cannot be installed beside this stack, but its SEANet/RVQ modules
have the same structure and state-dict key names as the `encodec` package's
(`encoder.model.N...`, `decoder.model.N...`, `quantizer.vq.layers.N._codebook.embed`), so one
`Codec` class built from `encodec.modules` / `encodec.quantization` holds every EnCodec variant.

Facts the MusicGen codec depends on (audiocraft `config/model/encodec/default.yaml` +
`encodec_large_nq4_s640.yaml`): non-causal, weight norm, identity residual shortcuts
(`true_skip: true`), constant padding, 2 LSTM layers, no renormalisation. With identity shortcuts
the 32 kHz model has 56.9M parameters (+ 4 x 2048 x 128 codebook entries held as buffers); the
`encodec` package's default conv shortcuts would make it 57.6M, a different (incompatible) model.

Reading and writing codec files (audiocraft exports, Hugging Face EnCodec folders, hub names) is
`codec.py`'s job; this module knows nothing about files.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..errors import AudioError, CheckpointError, MagnetEvalError


# ---- configuration ------------------------------------------------------------------------------
@dataclass
class CodecConfig:
    """Everything that defines an EnCodec architecture (names follow audiocraft's `seanet`/`rvq` config)."""

    name: str = "encodec_32khz"
    sample_rate: int = 32000
    channels: int = 1
    dimension: int = 128
    n_filters: int = 64
    n_residual_layers: int = 1
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 4])
    activation: str = "ELU"
    activation_params: dict = field(default_factory=lambda: {"alpha": 1.0})
    final_activation: Optional[str] = None
    final_activation_params: Optional[dict] = None
    norm: str = "weight_norm"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    causal: bool = False
    pad_mode: str = "constant"
    true_skip: bool = True
    compress: int = 2
    lstm: int = 2
    trim_right_ratio: float = 1.0
    n_q: int = 4
    bins: int = 2048
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 50
    threshold_ema_dead_code: int = 2
    num_codebooks: Optional[int] = None  # codebooks used by encode (None = all n_q)
    encoder: str = "seanet"  # "seanet" (EnCodec) or "mel" (modules/spectral.py: the tiny preset's)
    decoder: str = "seanet"  # "seanet" (EnCodec) or "istft" (modules/spectral.py: the tiny preset's)

    @property
    def hop_length(self) -> int:
        return int(math.prod(self.ratios))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CodecConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def encodec_32khz_config() -> CodecConfig:
    """audiocraft's MusicGen/MAGNeT codec: `solver=compression/encodec_musicgen_32khz`."""
    return CodecConfig()


def encodec_16khz_config() -> CodecConfig:
    """audiocraft's AudioGen / audio-MAGNeT codec (`encodec_audiogen_16khz`): hop 320 at 16 kHz = 50 Hz."""
    return CodecConfig(name="encodec_16khz", sample_rate=16000, ratios=[8, 5, 4, 2])


def encodec_24khz_config() -> CodecConfig:
    """The original EnCodec 24 kHz (the `encodec` package's `encodec_model_24khz`): causal, 32 x 1024, 75 Hz.

    encode uses 8 codebooks (6 kbps) unless `set_num_codebooks` says otherwise.
    """
    return CodecConfig(name="encodec_24khz", sample_rate=24000, n_filters=32, ratios=[8, 5, 4, 2], causal=True,
                       pad_mode="reflect", true_skip=False, n_q=32, bins=1024, num_codebooks=8)


def tiny_codec_config() -> CodecConfig:
    """The offline preset's codec: log-mel encoder (64 bands), 4 x 2048 codebooks at 50 Hz, iSTFT decoder.

    Card 2048 and 50 Hz keep the LM side the same as the released models' (mask id 2048). The
    encoder and decoder are the frequency-domain parts of modules/spectral.py rather than SEANet:
    on 2 CPU cores a SEANet codec this small barely learns in minutes (after 600 steps its
    reconstructions were about as far from the real clips as random tokens; multi-scale mel
    distance 5.4), while this one trains 1,500 steps in two minutes to mel distance 3.6 and a
    FAD-musicnn three times lower than random tokens'.
    """
    return CodecConfig(name="tiny", n_filters=8, dimension=64, encoder="mel", decoder="istft")


NAMED_CONFIGS = {
    "encodec_32khz": encodec_32khz_config,
    "encodec_24khz": encodec_24khz_config,
    "encodec_16khz": encodec_16khz_config,
    "tiny": tiny_codec_config,
}
ALIASES = {"facebook/encodec_32khz": "encodec_32khz", "facebook/encodec_24khz": "encodec_24khz",
           "musicgen": "encodec_32khz", "audiogen": "encodec_16khz", "encodec": "encodec_24khz"}


# ---- the model ----------------------------------------------------------------------------------
class Codec(nn.Module):
    """EnCodec: SEANet encoder -> residual VQ -> SEANet decoder, on mono (or C-channel) waveforms.

    Attributes: sample_rate, frame_rate (frames/s), hop_length (samples per frame), n_q (codebooks
    used by encode), card (entries per codebook), channels, dimension (latent width), config.
    State-dict keys are audiocraft's: encoder.model.N..., decoder.model.N..., quantizer.vq.layers.N._codebook.*.
    """

    def __init__(self, config: CodecConfig, encoder: Optional[nn.Module] = None,
                 decoder: Optional[nn.Module] = None, quantizer: Optional[nn.Module] = None):
        super().__init__()
        from encodec.modules import SEANetDecoder, SEANetEncoder
        from encodec.quantization import ResidualVectorQuantizer

        c = config
        seanet = dict(channels=c.channels, dimension=c.dimension, n_filters=c.n_filters,
                      n_residual_layers=c.n_residual_layers, ratios=list(c.ratios), activation=c.activation,
                      activation_params=dict(c.activation_params), norm=c.norm, kernel_size=c.kernel_size,
                      last_kernel_size=c.last_kernel_size, residual_kernel_size=c.residual_kernel_size,
                      dilation_base=c.dilation_base, causal=c.causal, pad_mode=c.pad_mode,
                      true_skip=c.true_skip, compress=c.compress, lstm=c.lstm)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notice for nn.utils.weight_norm
            if encoder is not None:
                self.encoder = encoder
            elif c.encoder == "mel":
                from ..modules.spectral import MelEncoder

                self.encoder = MelEncoder(c.sample_rate, c.hop_length, c.dimension, c.channels)
            elif c.encoder == "seanet":
                self.encoder = SEANetEncoder(**seanet)
            else:
                raise CheckpointError(f"unknown codec encoder {c.encoder!r} (seanet or mel)")
            if decoder is not None:
                self.decoder = decoder
            elif c.decoder == "istft":
                from ..modules.spectral import ISTFTDecoder

                self.decoder = ISTFTDecoder(c.dimension, c.hop_length, c.channels)
            elif c.decoder == "seanet":
                self.decoder = SEANetDecoder(
                    **seanet, final_activation=c.final_activation, final_activation_params=c.final_activation_params,
                    trim_right_ratio=c.trim_right_ratio)
            else:
                raise CheckpointError(f"unknown codec decoder {c.decoder!r} (seanet or istft)")
        self.quantizer = quantizer if quantizer is not None else ResidualVectorQuantizer(
            dimension=c.dimension, n_q=c.n_q, bins=c.bins, decay=c.decay, kmeans_init=c.kmeans_init,
            kmeans_iters=c.kmeans_iters, threshold_ema_dead_code=c.threshold_ema_dead_code)
        self.config = c
        self.sample_rate = int(c.sample_rate)
        self.channels = int(c.channels)
        self.hop_length = c.hop_length
        fr = self.sample_rate / self.hop_length
        self.frame_rate: float | int = int(fr) if float(fr).is_integer() else fr
        self.card = int(c.bins)
        self.dimension = int(c.dimension)
        self.total_codebooks = int(c.n_q)
        self.n_q = int(c.num_codebooks or c.n_q)

    # -- settings --
    def set_num_codebooks(self, n: int) -> None:
        """Use the first n codebooks in encode (EnCodec 24 kHz: 2 = 1.5 kbps ... 32 = 24 kbps)."""
        if not 1 <= n <= self.total_codebooks:
            raise MagnetEvalError(f"{self.config.name}: num codebooks must be in 1..{self.total_codebooks}, got {n}")
        self.n_q = int(n)
        self.config.num_codebooks = int(n)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def weights_id(self) -> str:
        """sha1 of the state dict (names, shapes, values): identifies these weights in caches and stats.

        Computed on each access (weights change while training); about 0.3 s for the 32 kHz model.
        """
        h = hashlib.sha1()
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
        return "sha1:" + h.hexdigest()

    # -- checks --
    def _check_wav(self, wav: torch.Tensor) -> torch.Tensor:
        if not isinstance(wav, torch.Tensor):
            wav = torch.as_tensor(wav)
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise AudioError(f"{self.config.name}: expected a waveform [B, {self.channels}, T], got {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise AudioError(f"{self.config.name}: empty waveform")
        if not torch.isfinite(wav).all():
            raise AudioError(f"{self.config.name}: waveform contains NaN or inf")
        p = next(self.parameters())
        return wav.to(device=p.device, dtype=p.dtype)

    def _check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.dim() != 3:
            raise MagnetEvalError(f"{self.config.name}: expected codes [B, K, F], got {tuple(codes.shape)}")
        if codes.shape[1] > self.total_codebooks:
            raise MagnetEvalError(f"{self.config.name}: {codes.shape[1]} codebooks given, the codec has "
                                  f"{self.total_codebooks}")
        if codes.dtype.is_floating_point:
            raise MagnetEvalError(f"{self.config.name}: codes must be integers, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.card):
            raise MagnetEvalError(f"{self.config.name}: codes must be in [0, {self.card}) (a mask/special token "
                                  f"left in?); got min {int(codes.min())}, max {int(codes.max())}")
        return codes.to(next(self.parameters()).device).long()

    # -- API --
    def frames_for(self, num_samples: int) -> int:
        """Frames that encode produces for `num_samples` samples (the encoder pads the last frame)."""
        return math.ceil(num_samples / self.hop_length)

    def latents(self, wav: torch.Tensor) -> torch.Tensor:
        """Continuous encoder output [B, D, F] (before quantisation): the `encodec` FAD embedding."""
        return self.encoder(self._check_wav(wav))

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, C, T] at `sample_rate` -> codes LongTensor [B, n_q, ceil(T / hop_length)]."""
        z = self.encoder(self._check_wav(wav))
        codes = self.quantizer.vq.encode(z, n_q=self.n_q)  # [K, B, F]
        return codes.transpose(0, 1).long()

    def decode_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, F] -> the quantised latent [B, D, F] (sum of the K codebook vectors)."""
        codes = self._check_codes(codes)
        return self.quantizer.vq.decode(codes.transpose(0, 1))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, F] -> waveform [B, C, F * hop_length] (callers trim to their own length)."""
        return self.decoder(self.decode_latent(codes))

    @torch.no_grad()
    def init_codebooks(self, wav: torch.Tensor) -> None:
        """k-means-initialise the codebooks that are not initialised yet on the latents of `wav` [B, C, T].

        Training does this by itself on its first batch; calling it first with more audio than one
        batch (at least `card` frames: 41 s for 2048 codes at 50 Hz) gives every code a distinct
        start instead of duplicated frames.
        """
        self._kmeans_init_(self.encoder(self._check_wav(wav)))

    @torch.no_grad()
    def _kmeans_init_(self, z: torch.Tensor) -> None:
        """k-means initialisation of codebooks that are not initialised yet, on this batch's residuals.

        Same algorithm as the `encodec` package's lazy init (random starting vectors, `kmeans_iters`
        Lloyd steps, empty clusters keep their vector), but with [N, C] matrix distances instead of
        an [N, C, D] difference tensor: for the tiny codec on 400 frames that is milliseconds
        instead of over a minute on a loaded 2-core CPU.
        """
        layers = self.quantizer.vq.layers
        if all(bool(layer._codebook.inited) for layer in layers):
            return
        residual = z.detach().transpose(1, 2).reshape(-1, z.shape[1]).float()  # [N, D]
        for layer in layers:
            cb = layer._codebook
            if not bool(cb.inited):
                means, counts = _kmeans(residual, cb.codebook_size, cb.kmeans_iters)
                cb.embed.data.copy_(means)
                cb.embed_avg.data.copy_(means)
                cb.cluster_size.data.copy_(counts.to(cb.cluster_size.dtype))
                cb.inited.data.fill_(1)
            idx = _nearest(residual, cb.embed)
            residual = residual - cb.embed[idx]

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction [B, C, T], codes [B, K, F], commitment loss scalar).

        In train mode the codebooks follow an EMA of their assigned vectors (k-means initialised on
        the first batch when `kmeans_init`), dead codes are replaced, and the quantiser is a
        straight-through estimator, as in EnCodec/audiocraft.
        """
        wav = self._check_wav(wav)
        length = wav.shape[-1]
        z = self.encoder(wav)
        if self.training:
            self._kmeans_init_(z)
        quantized, codes, losses = self.quantizer.vq(z, n_q=self.total_codebooks)
        recon = self.decoder(quantized)[..., :length]
        commit = torch.mean(losses) if isinstance(losses, torch.Tensor) else torch.zeros((), device=wav.device)
        return recon, codes.transpose(0, 1), commit


def _nearest(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook vector (squared Euclidean) for each row of x [N, D]."""
    dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1)[None]
    return dist.argmin(dim=1)


def _kmeans(samples: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means from k random samples (with replacement when there are fewer than k)."""
    n = samples.shape[0]
    start = torch.randperm(n, device=samples.device)[:k] if n >= k else torch.randint(0, n, (k,), device=samples.device)
    means = samples[start].clone()
    counts = torch.zeros(k, device=samples.device)
    for _ in range(max(1, iters)):
        assign = _nearest(samples, means)
        counts = torch.bincount(assign, minlength=k).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assign, samples)
        new = sums / counts.clamp(min=1)[:, None]
        means = torch.where((counts == 0)[:, None], means, new)
    return means, counts


# ---- building -----------------------------------------------------------------------------------
def build_codec(config: CodecConfig | str, seed: Optional[int] = 0) -> Codec:
    """A codec with fresh (random) weights; `seed` makes them the same every time (None: torch's RNG).

    Codebooks get random vectors so a random codec still maps different codes to different audio,
    but keep `inited = not kmeans_init`, so training still starts with k-means on its first batch.
    """
    cfg = resolve_config(config) if isinstance(config, str) else config
    gen_ctx = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with gen_ctx:
        if seed is not None:
            torch.manual_seed(seed)
        codec = build_encodec_24khz() if cfg.name == "encodec_24khz" else Codec(cfg)
        for layer in codec.quantizer.vq.layers:
            cb = layer._codebook
            if not bool(cb.inited) or float(cb.embed.abs().sum()) == 0.0:
                emb = torch.empty_like(cb.embed)
                nn.init.kaiming_uniform_(emb)
                cb.embed.data.copy_(emb)
                cb.embed_avg.data.copy_(emb)
    return codec.eval()


def build_encodec_24khz() -> Codec:
    """The 24 kHz model exactly as the `encodec` package builds it (its modules, our wrapper)."""
    from encodec import EncodecModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = EncodecModel.encodec_model_24khz(pretrained=False)
    return Codec(encodec_24khz_config(), encoder=ref.encoder, decoder=ref.decoder, quantizer=ref.quantizer).eval()


def resolve_config(name: str) -> CodecConfig:
    key = ALIASES.get(name, name)
    if key not in NAMED_CONFIGS:
        raise MagnetEvalError(f"unknown codec {name!r}; known: {', '.join(NAMED_CONFIGS)}")
    return NAMED_CONFIGS[key]()


def describe(codec: Codec) -> dict[str, Any]:
    """A small summary (for logs and reports)."""
    c = codec.config
    return {"name": c.name, "sample_rate": codec.sample_rate, "frame_rate": codec.frame_rate, "n_q": codec.n_q,
            "card": codec.card, "hop_length": codec.hop_length, "dimension": codec.dimension,
            "channels": codec.channels, "params": codec.num_params(), "config": asdict(c)}
