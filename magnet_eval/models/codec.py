"""Loading and saving codecs: audiocraft exports, Hugging Face EnCodec files, named codecs and hub names.

The architecture lives in `codec_model.py`; this module turns files into `Codec`s and back:

- audiocraft exports (`compression_state_dict.bin` = `{'best_state', 'xp.cfg', 'version',
  'exported'}`; the architecture is rebuilt from `xp.cfg`'s `seanet`/`rvq`/`encodec` sections),
  or the pointer form `{'pretrained': 'facebook/encodec_32khz'}` that released MAGNeT/MusicGen
  repositories ship, resolved to the Hugging Face transformers `EncodecModel` files of that repo
  in the HF cache (`config.json` + `model.safetensors`; keys `encoder.layers.N.conv...`,
  `quantizer.layers.N.codebook.embed`, mapped here);
- the original 24 kHz EnCodec state dict `encodec_24khz-d7cc33bc.th` (torch hub cache).

Every torch file is read with `files.load_torch` (weights only: nothing in a file can run code).
`save_codec` writes our codecs in audiocraft's export format, so they load back here (and in
audiocraft). Missing weights raise MissingWeightsError naming the file and the cache path.
The architecture names (`Codec`, `CodecConfig`, `build_codec`, ...) are importable from here too.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ..errors import CheckpointError, MagnetEvalError, MissingWeightsError
from ..files import load_torch
from ..paths import find_hf_file, find_weights, hf_repo_dir, torch_hub_dir
from .codec_model import (ALIASES, NAMED_CONFIGS, Codec, CodecConfig, build_codec, build_encodec_24khz,  # noqa: F401
                          describe, encodec_16khz_config, encodec_24khz_config, encodec_32khz_config,
                          resolve_config, tiny_codec_config)
from .export import CODEC_FILE, check_state_dict, is_hub_name, write_export, xp_as_dict

ENCODEC_24KHZ_FILE = "encodec_24khz-d7cc33bc.th"
ENCODEC_24KHZ_URL = "https://dl.fbaipublicfiles.com/encodec/v0/" + ENCODEC_24KHZ_FILE
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# Hub repositories whose compression_state_dict.bin may hold the full codec (or point at one).
MUSIC_32KHZ_REPOS = ("facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-large",
                     "facebook/musicgen-melody", "facebook/magnet-small-10secs", "facebook/magnet-medium-10secs",
                     "facebook/magnet-small-30secs", "facebook/magnet-medium-30secs")
AUDIO_16KHZ_REPOS = ("facebook/audiogen-medium", "facebook/audio-magnet-small", "facebook/audio-magnet-medium")


# ---- audiocraft export format -------------------------------------------------------------------
def codec_config_from_xp(xp_cfg: Any) -> CodecConfig:
    """Rebuild the architecture from an audiocraft `xp.cfg` (YAML string or mapping; interpolations resolved)."""
    # resolve only what the codec needs: real configs hold interpolations like ${oc.env:USER} elsewhere
    d = xp_as_dict(xp_cfg, resolve_keys=("solver", "compression_model", "sample_rate", "channels", "encodec",
                                         "seanet", "rvq", "magnet_eval"))
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
    return write_export(p, state, OmegaConf.to_yaml(OmegaConf.create(xp)), f"magnet_eval {__version__}")


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


def load_state_checked(codec: Codec, state: Mapping[str, torch.Tensor], source: str) -> Codec:
    state = normalize_state_keys(state)
    check_state_dict(codec, state, source, what=f"codec architecture {codec.config.name}")
    codec.load_state_dict(dict(state), strict=True)
    return codec.eval()


# ---- reading files ------------------------------------------------------------------------------
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
        config = codec_config_from_xp(pkg["xp.cfg"])
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
        codec = build_encodec_24khz() if _looks_24khz(pkg) else None
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
        state = load_torch(weights)
    codec = Codec(config)
    return load_state_checked(codec, map_hf_encodec_keys(state, codec), str(weights)).to(device)


# ---- load_codec ---------------------------------------------------------------------------------
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
        codec = build_encodec_24khz()
        return load_state_checked(codec, load_torch(path), str(path)).to(device)
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
        pkg = load_torch(f)
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
        return codec_from_package(load_torch(p), str(p), device, pretrained=pretrained)
    if is_hub_name(s):
        if not pretrained and s in MUSIC_32KHZ_REPOS + AUDIO_16KHZ_REPOS:
            return build_codec("encodec_32khz" if s in MUSIC_32KHZ_REPOS else "encodec_16khz").to(device)
        return _load_hub(s, device)
    raise MissingWeightsError(f"codec {s!r}: no such file, folder or known codec. Give one of "
                              f"{', '.join(NAMED_CONFIGS)}, a compression_state_dict.bin (or its folder), or a hub "
                              "name like facebook/musicgen-small.")
