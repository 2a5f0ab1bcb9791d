"""The audio codec: EnCodec built from the `encodec` package, loadable from audiocraft and HF files.

MAGNeT and MusicGen model the discrete tokens of an EnCodec model; released checkpoints pair the
LM with audiocraft's 32 kHz MusicGen codec (SEANet ratios [8, 5, 4, 4], 4 x 2048 codebooks, hop
640 = 50 frames/s). audiocraft cannot be installed beside this stack, but its SEANet/RVQ modules
have the same structure and state-dict key names as the `encodec` package's
(`encoder.model.N...`, `decoder.model.N...`, `quantizer.vq.layers.N._codebook.embed`), so one
`Codec` class built from `encodec.modules` / `encodec.quantization` loads:

- audiocraft exports (`compression_state_dict.bin` = `{'best_state', 'xp.cfg', 'version',
  'exported'}`; the architecture is rebuilt from `xp.cfg`'s `seanet`/`rvq`/`encodec` sections),
  or the pointer form `{'pretrained': 'facebook/encodec_32khz'}` that released MAGNeT/MusicGen
  repositories ship, resolved to the Hugging Face transformers `EncodecModel` files of that repo
  in the HF cache (`config.json` + `model.safetensors`; keys `encoder.layers.N.conv...`,
  `quantizer.layers.N.codebook.embed`, mapped here);
- the original 24 kHz EnCodec state dict `encodec_24khz-d7cc33bc.th` (torch hub cache).

Facts the MusicGen codec depends on (audiocraft `config/model/encodec/default.yaml` +
`encodec_large_nq4_s640.yaml`): non-causal, weight norm, identity residual shortcuts
(`true_skip: true`), constant padding, 2 LSTM layers, no renormalisation. With identity shortcuts
the 32 kHz model has 56.9M parameters (+ 4 x 2048 x 128 codebook entries held as buffers); the
`encodec` package's default conv shortcuts would make it 57.6M, a different (incompatible) model.

`save_codec` writes our codecs in audiocraft's export format, so they load back here (and in
audiocraft). Missing weights raise MissingWeightsError naming the file and the cache path.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..errors import AudioError, CheckpointError, MagnetEvalError, MissingWeightsError
from ..paths import find_hf_file, find_weights, hf_repo_dir, torch_hub_dir

CODEC_FILE = "compression_state_dict.bin"
ENCODEC_24KHZ_FILE = "encodec_24khz-d7cc33bc.th"
ENCODEC_24KHZ_URL = "https://dl.fbaipublicfiles.com/encodec/v0/" + ENCODEC_24KHZ_FILE
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# Hub repositories whose compression_state_dict.bin may hold the full codec (or point at one).
MUSIC_32KHZ_REPOS = ("facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-large",
                     "facebook/musicgen-melody", "facebook/magnet-small-10secs", "facebook/magnet-medium-10secs",
                     "facebook/magnet-small-30secs", "facebook/magnet-medium-30secs")
AUDIO_16KHZ_REPOS = ("facebook/audiogen-medium", "facebook/audio-magnet-small", "facebook/audio-magnet-medium")


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
        codec = _build_encodec_24khz() if cfg.name == "encodec_24khz" else Codec(cfg)
        for layer in codec.quantizer.vq.layers:
            cb = layer._codebook
            if not bool(cb.inited) or float(cb.embed.abs().sum()) == 0.0:
                emb = torch.empty_like(cb.embed)
                nn.init.kaiming_uniform_(emb)
                cb.embed.data.copy_(emb)
                cb.embed_avg.data.copy_(emb)
    return codec.eval()


def _build_encodec_24khz() -> Codec:
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


# ---- audiocraft export format -------------------------------------------------------------------
def config_from_xp(xp_cfg: Any) -> CodecConfig:
    """Rebuild the architecture from an audiocraft `xp.cfg` (YAML string or mapping; interpolations resolved)."""
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.create(xp_cfg) if isinstance(xp_cfg, str) else OmegaConf.create(dict(xp_cfg))
    except Exception as exc:  # malformed YAML
        raise CheckpointError(f"cannot read the codec's xp.cfg: {exc}") from exc
    # resolve only what the codec needs: real configs hold interpolations like ${oc.env:USER} elsewhere
    d: dict[str, Any] = {}
    for key in ("solver", "compression_model", "sample_rate", "channels", "encodec", "seanet", "rvq", "magnet_eval"):
        if key not in cfg:
            continue
        try:
            node = cfg[key]
            d[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        except Exception as exc:  # noqa: BLE001 - unresolvable interpolation
            raise CheckpointError(f"cannot resolve xp.cfg entry {key!r}: {exc}") from exc
    if "seanet" not in d or "rvq" not in d:
        solver = d.get("solver")
        raise CheckpointError(f"this xp.cfg does not describe an EnCodec codec (no seanet/rvq sections; solver="
                              f"{solver!r}): an LM state_dict.bin rather than a compression_state_dict.bin?")
    model = d.get("compression_model", "encodec")
    if model != "encodec":
        raise CheckpointError(f"compression_model={model!r} is not supported (only 'encodec')")
    enc = d.get("encodec") or {}
    seanet = dict(d.get("seanet") or {})
    rvq = d.get("rvq") or {}
    if enc.get("autoencoder", "seanet") != "seanet" or enc.get("quantizer", "rvq") != "rvq":
        raise CheckpointError(f"only seanet + rvq EnCodec models are supported, got {enc.get('autoencoder')} + "
                              f"{enc.get('quantizer')}")
    if enc.get("renormalize") or enc.get("renorm"):
        raise CheckpointError("EnCodec with renormalize=true is not supported (the MusicGen/AudioGen codecs use false)")
    enc_over = seanet.pop("encoder", {}) or {}
    dec_over = seanet.pop("decoder", {}) or {}
    if enc_over:
        raise CheckpointError(f"encoder-only SEANet overrides are not supported: {enc_over}")
    if seanet.get("disable_norm_outer_blocks", 0):
        raise CheckpointError("SEANet disable_norm_outer_blocks > 0 is not supported by the encodec package")
    if seanet.get("norm", "weight_norm") not in ("weight_norm", "none"):
        raise CheckpointError(f"SEANet norm {seanet.get('norm')!r} is not supported (weight_norm or none)")
    sr = d.get("sample_rate", enc.get("sample_rate"))
    ch = d.get("channels", enc.get("channels", 1))
    if sr is None:
        raise CheckpointError("the codec's xp.cfg has no sample_rate")
    out = CodecConfig(
        name=str((d.get("magnet_eval") or {}).get("codec_name", "audiocraft_encodec")),
        sample_rate=int(sr), channels=int(ch),
        dimension=int(seanet.get("dimension", 128)), n_filters=int(seanet.get("n_filters", 32)),
        n_residual_layers=int(seanet.get("n_residual_layers", 1)), ratios=[int(r) for r in seanet.get("ratios", [8, 5, 4, 2])],
        activation=str(seanet.get("activation", "ELU")),
        activation_params=dict(seanet.get("activation_params") or {"alpha": 1.0}),
        final_activation=dec_over.get("final_activation"), final_activation_params=dec_over.get("final_activation_params"),
        norm=str(seanet.get("norm", "weight_norm")), kernel_size=int(seanet.get("kernel_size", 7)),
        last_kernel_size=int(seanet.get("last_kernel_size", 7)),
        residual_kernel_size=int(seanet.get("residual_kernel_size", 3)),
        dilation_base=int(seanet.get("dilation_base", 2)), causal=bool(seanet.get("causal", enc.get("causal", False))),
        pad_mode=str(seanet.get("pad_mode", "reflect")), true_skip=bool(seanet.get("true_skip", True)),
        compress=int(seanet.get("compress", 2)), lstm=int(seanet.get("lstm", 0)),
        trim_right_ratio=float(dec_over.get("trim_right_ratio", 1.0)),
        n_q=int(rvq.get("n_q", 8)), bins=int(rvq.get("bins", 1024)), decay=float(rvq.get("decay", 0.99)),
        kmeans_init=bool(rvq.get("kmeans_init", True)), kmeans_iters=int(rvq.get("kmeans_iters", 50)),
        threshold_ema_dead_code=int(rvq.get("threshold_ema_dead_code", 2)),
        encoder=str((d.get("magnet_eval") or {}).get("encoder") or "seanet"),
        decoder=str((d.get("magnet_eval") or {}).get("decoder") or "seanet"),
    )
    return out


def config_to_xp(config: CodecConfig, extra: Optional[Mapping[str, Any]] = None) -> dict:
    """The audiocraft `xp.cfg` (as a dict) that rebuilds this codec: what `save_codec` writes."""
    c = config
    xp: dict[str, Any] = {
        "solver": "compression",
        "compression_model": "encodec",
        "sample_rate": c.sample_rate,
        "channels": c.channels,
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": c.sample_rate,
                    "channels": c.channels, "causal": c.causal, "renormalize": False},
        "seanet": {"dimension": c.dimension, "channels": c.channels, "causal": c.causal, "n_filters": c.n_filters,
                   "n_residual_layers": c.n_residual_layers, "ratios": list(c.ratios), "activation": c.activation,
                   "activation_params": dict(c.activation_params), "norm": c.norm, "norm_params": {},
                   "kernel_size": c.kernel_size, "residual_kernel_size": c.residual_kernel_size,
                   "last_kernel_size": c.last_kernel_size, "dilation_base": c.dilation_base, "pad_mode": c.pad_mode,
                   "true_skip": c.true_skip, "compress": c.compress, "lstm": c.lstm, "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": c.trim_right_ratio, "final_activation": c.final_activation,
                               "final_activation_params": c.final_activation_params},
                   "encoder": {}},
        "rvq": {"n_q": c.n_q, "q_dropout": False, "bins": c.bins, "decay": c.decay, "kmeans_init": c.kmeans_init,
                "kmeans_iters": c.kmeans_iters, "threshold_ema_dead_code": c.threshold_ema_dead_code,
                "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
        "magnet_eval": {"codec_name": c.name, "num_codebooks": c.num_codebooks, "encoder": c.encoder,
                        "decoder": c.decoder},
    }
    if extra:
        xp["magnet_eval"].update({k: v for k, v in extra.items()})
    return xp


def save_codec(codec: Codec, path: str | Path, cfg: Optional[Mapping[str, Any]] = None) -> Path:
    """Write `codec` as an audiocraft export: {'best_state', 'xp.cfg' (YAML), 'version', 'exported'}.

    cfg: extra facts (training recipe, data hash...) stored under `magnet_eval:` in xp.cfg.
    A folder path gets `compression_state_dict.bin` inside it. The write is atomic.
    """
    from omegaconf import OmegaConf

    from .. import __version__

    if not isinstance(codec, Codec):
        raise MagnetEvalError(f"save_codec needs a Codec, got {type(codec).__name__}")
    p = Path(path)
    if p.is_dir() or p.suffix == "":
        p = p / CODEC_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    xp = config_to_xp(codec.config, _plain(cfg) if cfg else None)
    state = {k: v.detach().cpu().clone() for k, v in codec.state_dict().items()}
    pkg = {"best_state": state, "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(xp)),
           "version": f"magnet_eval {__version__}", "exported": True}
    tmp = p.with_name(p.name + ".tmp")
    torch.save(pkg, tmp)
    tmp.replace(p)
    return p


def _plain(obj: Any) -> Any:
    """Make a config mapping YAML-safe (paths -> str, tuples -> lists)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


# ---- state-dict mapping and checking ------------------------------------------------------------
_WN_PARAM = re.compile(r"\.parametrizations\.weight\.original([01])$")


def normalize_state_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight norm stored the new way (`parametrizations.weight.original0/1`) -> `weight_g` / `weight_v`."""
    out = {}
    for k, v in state.items():
        m = _WN_PARAM.search(k)
        if m:
            k = k[: m.start()] + (".weight_g" if m.group(1) == "0" else ".weight_v")
        out[k] = v
    return out


def map_hf_encodec_keys(state: Mapping[str, torch.Tensor], codec: Codec) -> dict[str, torch.Tensor]:
    """HF transformers EncodecModel keys -> ours.

    encoder.layers.N.conv.X -> encoder.model.N.conv.conv.X (decoder transposed convs: convtr.convtr.X);
    ...layers.N.block.J.conv.X -> ...model.N.block.J.conv.conv.X; ...layers.N.shortcut.conv.X ->
    ...model.N.shortcut.conv.conv.X; ...layers.N.lstm.X -> ...model.N.lstm.X;
    quantizer.layers.N.codebook.X -> quantizer.vq.layers.N._codebook.X. Unknown keys are kept as they
    are, so the shape/key check reports them.
    """
    from encodec.modules import SConvTranspose1d

    state = normalize_state_keys(state)
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        m = re.match(r"^(encoder|decoder)\.layers\.(\d+)\.(.*)$", k)
        if m:
            part, idx, rest = m.group(1), int(m.group(2)), m.group(3)
            seq = getattr(codec, part).model
            layer = seq[idx] if idx < len(seq) else None
            if rest.startswith("conv."):
                inner = "convtr.convtr." if isinstance(layer, SConvTranspose1d) else "conv.conv."
                out[f"{part}.model.{idx}.{inner}{rest[len('conv.'):]}"] = v
                continue
            rb = re.match(r"^(block\.\d+|shortcut)\.conv\.(.*)$", rest)
            if rb:
                out[f"{part}.model.{idx}.{rb.group(1)}.conv.conv.{rb.group(2)}"] = v
                continue
            if rest.startswith("lstm."):
                out[f"{part}.model.{idx}.{rest}"] = v
                continue
            out[k] = v
            continue
        m = re.match(r"^quantizer\.layers\.(\d+)\.codebook\.(.*)$", k)
        if m:
            out[f"quantizer.vq.layers.{m.group(1)}._codebook.{m.group(2)}"] = v
            continue
        out[k] = v
    return out


def check_state_dict(codec: Codec, state: Mapping[str, torch.Tensor], source: str) -> None:
    """CheckpointError listing missing keys, unexpected keys and shape mismatches (nothing is loaded then)."""
    own = codec.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        lines = [f"{source}: the checkpoint does not match the codec architecture "
                 f"({codec.config.name}, {len(own)} tensors)."]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  - {i}" for i in items[:40]]
                if len(items) > 40:
                    lines.append(f"  ... and {len(items) - 40} more")
        raise CheckpointError("\n".join(lines))


def load_state_checked(codec: Codec, state: Mapping[str, torch.Tensor], source: str) -> Codec:
    state = normalize_state_keys(state)
    check_state_dict(codec, state, source)
    codec.load_state_dict(dict(state), strict=True)
    return codec.eval()


# ---- reading files ------------------------------------------------------------------------------
def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - retry pickles that carry non-tensor objects
        first = exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable torch file ({first}; {exc})") from exc


def codec_from_package(pkg: Any, source: str, device: str | torch.device = "cpu", pretrained: bool = True) -> Codec:
    """A codec from an audiocraft export dict (full weights, or {'pretrained': name}).

    pretrained=False: only the architecture is taken from the file (random weights).
    """
    if not isinstance(pkg, Mapping):
        raise CheckpointError(f"{source}: expected a dict (audiocraft export), got {type(pkg).__name__}")
    if "pretrained" in pkg and "best_state" not in pkg:
        name = str(pkg["pretrained"])
        return load_codec(name, device=device, pretrained=pretrained)
    if "best_state" in pkg:
        if "xp.cfg" not in pkg:
            raise CheckpointError(f"{source}: audiocraft export without 'xp.cfg'; cannot rebuild the codec")
        config = config_from_xp(pkg["xp.cfg"])
        if not pretrained:
            return build_codec(config).to(device)
        state = pkg["best_state"]
        if isinstance(state, Mapping) and "model" in state and not any(k.startswith("encoder.") for k in state):
            state = state["model"]  # a training checkpoint's best_state
        codec = Codec(config)
        load_state_checked(codec, state, source)
        if config.num_codebooks:
            codec.set_num_codebooks(config.num_codebooks)
        return codec.to(device)
    if any(str(k).startswith("encoder.model.") for k in pkg):  # a bare state dict (EnCodec 24 kHz file)
        codec = _build_encodec_24khz() if _looks_24khz(pkg) else None
        if codec is None:
            raise CheckpointError(f"{source}: a bare state dict without xp.cfg; only the EnCodec 24 kHz layout is "
                                  "recognised without a config")
        return load_state_checked(codec, pkg, source).to(device)
    raise CheckpointError(f"{source}: unknown codec file layout (keys: {', '.join(list(map(str, pkg))[:8])})")


def _looks_24khz(state: Mapping[str, Any]) -> bool:
    emb = state.get("quantizer.vq.layers.0._codebook.embed")
    return emb is not None and tuple(emb.shape) == (1024, 128) and "quantizer.vq.layers.31._codebook.embed" in state


def config_from_hf(hf: Mapping[str, Any]) -> CodecConfig:
    """A CodecConfig from a transformers EncodecConfig (`config.json`)."""
    if hf.get("model_type", "encodec") != "encodec":
        raise CheckpointError(f"config.json is a {hf.get('model_type')!r} model, not encodec")
    if hf.get("normalize"):
        raise CheckpointError("HF EnCodec with normalize=true (the 48 kHz model) is not supported")
    norm = hf.get("norm_type", "weight_norm")
    if norm != "weight_norm":
        raise CheckpointError(f"HF EnCodec norm_type {norm!r} is not supported (weight_norm only)")
    hidden = int(hf.get("hidden_size", 128))
    if int(hf.get("codebook_dim") or hidden) != hidden:
        raise CheckpointError("HF EnCodec with codebook_dim != hidden_size is not supported")
    ratios = [int(r) for r in hf.get("upsampling_ratios", [8, 5, 4, 2])]
    sr = int(hf.get("sampling_rate", 24000))
    bins = int(hf.get("codebook_size", 1024))
    frame_rate = sr / math.prod(ratios)
    bws = hf.get("target_bandwidths") or [1.5, 3.0, 6.0, 12.0, 24.0]
    n_q = int(round(max(bws) * 1000 / (frame_rate * math.log2(bins))))
    return CodecConfig(
        name="hf_encodec", sample_rate=sr, channels=int(hf.get("audio_channels", 1)), dimension=hidden,
        n_filters=int(hf.get("num_filters", 32)), n_residual_layers=int(hf.get("num_residual_layers", 1)),
        ratios=ratios, norm="weight_norm", kernel_size=int(hf.get("kernel_size", 7)),
        last_kernel_size=int(hf.get("last_kernel_size", 7)), residual_kernel_size=int(hf.get("residual_kernel_size", 3)),
        dilation_base=int(hf.get("dilation_growth_rate", 2)), causal=bool(hf.get("use_causal_conv", True)),
        pad_mode=str(hf.get("pad_mode", "reflect")), true_skip=not bool(hf.get("use_conv_shortcut", True)),
        compress=int(hf.get("compress", 2)), lstm=int(hf.get("num_lstm_layers", 2)),
        trim_right_ratio=float(hf.get("trim_right_ratio", 1.0)), n_q=n_q, bins=bins, kmeans_init=False)


def load_hf_encodec(folder: str | Path, device: str | torch.device = "cpu") -> Codec:
    """A codec from a transformers EncodecModel folder (config.json + model.safetensors / pytorch_model.bin)."""
    import json

    folder = Path(folder)
    cfg_file = folder / "config.json"
    weights = next((folder / f for f in HF_WEIGHT_FILES if (folder / f).is_file()), None)
    if not cfg_file.is_file() or weights is None:
        raise MissingWeightsError(f"{folder}: a Hugging Face EnCodec folder needs config.json and one of "
                                  f"{', '.join(HF_WEIGHT_FILES)}")
    try:
        hf = json.loads(cfg_file.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{cfg_file}: not valid JSON ({exc})") from exc
    config = config_from_hf(hf)
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = _torch_load(weights)
    codec = Codec(config)
    return load_state_checked(codec, map_hf_encodec_keys(state, codec), str(weights)).to(device)


# ---- load_codec ---------------------------------------------------------------------------------
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_name(spec: str) -> bool:
    return bool(_HUB_NAME.match(spec)) and not Path(spec).expanduser().exists()


def _hf_encodec_folder(repo: str) -> Optional[Path]:
    cfg = find_hf_file(repo, "config.json")
    if cfg is None:
        return None
    if any((cfg.parent / f).is_file() for f in HF_WEIGHT_FILES):
        return cfg.parent
    return None


def _load_hub(repo: str, device: str | torch.device) -> Codec:
    """compression_state_dict.bin of a hub repo, else its transformers EnCodec files, else a clear error."""
    bin_file = find_hf_file(repo, CODEC_FILE)
    if bin_file is not None:
        return load_codec(bin_file, device=device)
    folder = _hf_encodec_folder(repo)
    if folder is not None:
        return load_hf_encodec(folder, device=device)
    snap = hf_repo_dir(repo) / "snapshots" / "<revision>"
    raise MissingWeightsError(
        f"Codec of {repo} not found in the Hugging Face cache (no download is attempted: runs are offline).\n"
        f"Put the file at: {snap / CODEC_FILE}\n"
        f"  (or, for a transformers EnCodec repo, {snap / 'config.json'} and {snap / 'model.safetensors'})\n"
        f"Official source: https://huggingface.co/{repo}\n"
        f"e.g. on a machine with network: huggingface-cli download {repo} {CODEC_FILE}")


def _load_named(key: str, device: str | torch.device) -> Codec:
    if key == "encodec_24khz":
        th = torch_hub_dir() / "checkpoints" / ENCODEC_24KHZ_FILE
        folder = None if th.is_file() else _hf_encodec_folder("facebook/encodec_24khz")
        if folder is not None:  # the transformers conversion of the same model
            codec = load_hf_encodec(folder, device=device)
            codec.config.name = "encodec_24khz"
            codec.set_num_codebooks(8)
            return codec
        path = find_weights(
            f"EnCodec 24 kHz weights {ENCODEC_24KHZ_FILE}",
            [torch_hub_dir() / "checkpoints" / ENCODEC_24KHZ_FILE],
            put_here=torch_hub_dir() / "checkpoints" / ENCODEC_24KHZ_FILE, source=ENCODEC_24KHZ_URL,
            extra=[f"  (or the transformers files of facebook/encodec_24khz in {hf_repo_dir('facebook/encodec_24khz')})"])
        codec = _build_encodec_24khz()
        return load_state_checked(codec, _torch_load(path), str(path)).to(device)
    repo = {"encodec_32khz": "facebook/encodec_32khz", "encodec_16khz": None}[key]
    if repo is not None:
        folder = _hf_encodec_folder(repo)
        if folder is not None:
            return load_hf_encodec(folder, device=device)
    searched: list[Path] = []
    for r in (MUSIC_32KHZ_REPOS if key == "encodec_32khz" else AUDIO_16KHZ_REPOS):
        f = find_hf_file(r, CODEC_FILE)
        searched.append(hf_repo_dir(r) / "snapshots" / "*" / CODEC_FILE)
        if f is None:
            continue
        pkg = _torch_load(f)
        if isinstance(pkg, Mapping) and "best_state" in pkg:
            return codec_from_package(pkg, str(f), device)
        if isinstance(pkg, Mapping) and pkg.get("pretrained") and pkg["pretrained"] != repo and is_hub_name(str(pkg["pretrained"])):
            try:
                return _load_hub(str(pkg["pretrained"]), device)
            except MissingWeightsError:
                continue
    if key == "encodec_32khz":
        snap = hf_repo_dir("facebook/encodec_32khz") / "snapshots" / "<revision>"
        raise MissingWeightsError(
            "EnCodec 32 kHz (MusicGen/MAGNeT codec) weights not found (no download is attempted: runs are offline).\n"
            f"Searched: {snap.parent} (config.json + model.safetensors) and\n"
            + "\n".join(f"  - {s}" for s in searched) + "\n"
            f"Put the files at: {snap / 'config.json'} and {snap / 'model.safetensors'}\n"
            f"  (or a full audiocraft export at {hf_repo_dir('facebook/musicgen-small') / 'snapshots' / '<revision>' / CODEC_FILE})\n"
            "Official source: https://huggingface.co/facebook/encodec_32khz\n"
            "e.g. on a machine with network: huggingface-cli download facebook/encodec_32khz config.json model.safetensors")
    snap = hf_repo_dir("facebook/audiogen-medium") / "snapshots" / "<revision>"
    raise MissingWeightsError(
        "EnCodec 16 kHz (AudioGen / audio-MAGNeT codec) weights not found (no download is attempted: runs are offline).\n"
        "Searched:\n" + "\n".join(f"  - {s}" for s in searched) + "\n"
        f"Put the file at: {snap / CODEC_FILE}\n"
        "Official source: https://huggingface.co/facebook/audiogen-medium\n"
        f"e.g. on a machine with network: huggingface-cli download facebook/audiogen-medium {CODEC_FILE}")


def load_codec(spec: str | Path, device: str | torch.device = "cpu", pretrained: bool = True) -> Codec:
    """The codec named by `spec`, in eval mode on `device`.

    spec: 'tiny' (random weights, seeded: the offline preset before training), 'encodec_32khz'
    (MusicGen/MAGNeT codec from the HF cache: facebook/encodec_32khz's transformers files, or a
    full compression_state_dict.bin of a musicgen/magnet repo), 'encodec_16khz' (AudioGen codec),
    'encodec_24khz' (torch hub cache `encodec_24khz-d7cc33bc.th`), a file (audiocraft export,
    `{'pretrained': ...}` pointer, the bare 24 kHz state dict, or a transformers model file), a
    folder (its compression_state_dict.bin, or config.json + model.safetensors), or a hub name
    ('facebook/musicgen-small', 'facebook/encodec_32khz').
    pretrained=False: the same architecture with random weights (benchmarks; training from scratch).
    """
    s = str(spec)
    key = ALIASES.get(s, s)
    if key in NAMED_CONFIGS:
        if key == "tiny" or not pretrained:
            return build_codec(key).to(device)
        return _load_named(key, device)
    p = Path(s).expanduser()
    if p.is_dir():
        if (p / CODEC_FILE).is_file():
            return load_codec(p / CODEC_FILE, device=device)
        if (p / "config.json").is_file():
            return load_hf_encodec(p, device=device)
        raise MissingWeightsError(f"{p}: no {CODEC_FILE} (audiocraft export) nor config.json + model.safetensors "
                                  "(transformers EnCodec) in this folder")
    if p.is_file():
        if p.suffix == ".safetensors" or (p.name == "pytorch_model.bin" and (p.parent / "config.json").is_file()):
            return load_hf_encodec(p.parent, device=device)
        return codec_from_package(_torch_load(p), str(p), device, pretrained=pretrained)
    if is_hub_name(s):
        if not pretrained and s in MUSIC_32KHZ_REPOS + AUDIO_16KHZ_REPOS:
            return build_codec("encodec_32khz" if s in MUSIC_32KHZ_REPOS else "encodec_16khz").to(device)
        return _load_hub(s, device)
    raise MissingWeightsError(f"codec {s!r}: no such file, folder or known codec. Give one of "
                              f"{', '.join(NAMED_CONFIGS)}, a compression_state_dict.bin (or its folder), or a hub "
                              "name like facebook/musicgen-small.")


def describe(codec: Codec) -> dict[str, Any]:
    """A small summary (for logs and reports)."""
    c = codec.config
    return {"name": c.name, "sample_rate": codec.sample_rate, "frame_rate": codec.frame_rate, "n_q": codec.n_q,
            "card": codec.card, "hop_length": codec.hop_length, "dimension": codec.dimension,
            "channels": codec.channels, "params": codec.num_params(), "config": asdict(c)}
