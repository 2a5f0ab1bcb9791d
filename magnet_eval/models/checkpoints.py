"""audiocraft export packages: find them, rebuild the LM from `xp.cfg`, load every key, save our own.

An export (`state_dict.bin`) is a torch pickle `{'best_state': state_dict, 'xp.cfg': <OmegaConf YAML
string>, 'version': ..., 'exported': True}`. The architecture comes from the config
(`transformer_lm.*`, `lm_model`, `codebooks_pattern.*`, `masking.span_len`,
`dataset.segment_duration`, `conditioners.description`, `fuser.cross`), and the state dict must
match our model key for key and shape for shape: anything else raises `CheckpointError` with the
lists of missing keys, unexpected keys and shape mismatches. Options of audiocraft that the models
do not implement (biases, layer scale, RoPE, prepended conditions such as MusicGen-melody's chroma,
...) are refused up front rather than loaded wrongly.

Our own models are saved in the same format (with a `magnet_eval` section in the config for what
audiocraft's config does not say: the codec spec and text encoder), so they load back through the
same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ..errors import CheckpointError
from ..files import load_torch
from ..paths import cache_dir, find_hf_file, find_weights, hf_repo_dir
from .build import build_lm
from .export import CODEC_FILE, LM_FILE, check_state_dict, is_hub_name, write_export, xp_as_dict
from .lm import TEXT_ENCODER_DIMS, LMConfig, LMModel

HUB_PREFIXES = ("facebook/magnet-", "facebook/audio-magnet-", "facebook/musicgen-")
EXPORT_VERSION = "magnet-eval-1"


# ---- config <-> LMConfig --------------------------------------------------------------------------
def _get(d: Mapping, dotted: str, default: Any = None) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _codec_from_cfg(cfg: Mapping) -> str:
    ours = _get(cfg, "magnet_eval.codec")
    if ours:
        return str(ours)
    ckpt = str(_get(cfg, "compression_model_checkpoint", "") or "")
    if ckpt.startswith("//pretrained/"):
        name = ckpt[len("//pretrained/"):]
        # the codec names load_codec knows; any other hub repo (e.g. facebook/audiogen-medium) stays a hub name
        return {"facebook/encodec_32khz": "encodec_32khz", "facebook/encodec_24khz": "encodec_24khz"}.get(name, name)
    return ckpt or "encodec_32khz"


def config_from_xp(xp_cfg: Any, state: Optional[Mapping[str, torch.Tensor]] = None) -> LMConfig:
    """Rebuild the LMConfig from an audiocraft xp.cfg; refuse options our models do not implement."""
    cfg = xp_as_dict(xp_cfg)
    lm = _get(cfg, "transformer_lm")
    if not isinstance(lm, Mapping):
        raise CheckpointError("xp.cfg has no 'transformer_lm' section: not an audiocraft LM export")
    problems = []

    def need(key: str, ok: Any, expected: str) -> None:
        val = lm.get(key, None)
        if val is not None and val != ok:
            problems.append(f"transformer_lm.{key}={val!r} (supported: {expected})")

    need("norm_first", True, "true")
    need("bias_ff", False, "false")
    need("bias_attn", False, "false")
    need("bias_proj", False, "false")
    need("positional_embedding", "sin", "'sin'")
    need("layer_scale", None, "null")
    need("qk_layer_norm", False, "false")
    need("qk_layer_norm_cross", False, "false")
    need("kv_repeat", 1, "1")
    need("norm", "layer_norm", "'layer_norm'")
    need("xpos", False, "false")
    need("activation", "gelu", "'gelu'")
    need("custom", False, "false")
    if lm.get("past_context") is not None:
        problems.append(f"transformer_lm.past_context={lm.get('past_context')!r} (supported: null)")
    for section in ("prepend", "sum", "input_interpolate"):
        if _get(cfg, f"fuser.{section}"):
            problems.append(f"fuser.{section}={_get(cfg, f'fuser.{section}')} (only cross-attention conditioning "
                            "is supported; e.g. MusicGen-melody's chroma is not)")
    if _get(cfg, "fuser.cross_attention_pos_emb"):
        problems.append("fuser.cross_attention_pos_emb=true (supported: false)")
    if _get(cfg, "interleave_stereo_codebooks.use"):
        problems.append("interleave_stereo_codebooks.use=true (stereo models are not supported)")
    if problems:
        raise CheckpointError("checkpoint uses options magnet-eval does not implement:\n  - " + "\n  - ".join(problems))

    lm_model = str(_get(cfg, "lm_model", "transformer_lm"))
    kind = "magnet" if ("magnet" in lm_model or _get(cfg, "solver") == "magnet") else "musicgen"
    modeling = str(_get(cfg, "codebooks_pattern.modeling", "parallel" if kind == "magnet" else "delay"))
    if modeling not in ("parallel", "delay"):
        raise CheckpointError(f"codebook pattern {modeling!r} is not supported (parallel, delay)")
    n_q = int(lm.get("n_q", 4))
    delays = list(_get(cfg, "codebooks_pattern.delay.delays", list(range(n_q))) or list(range(n_q)))
    cross = bool(_get(cfg, "fuser.cross")) or bool(lm.get("cross_attention", False))

    cond_model = _get(cfg, "conditioners.description.model")
    text_encoder = _get(cfg, "magnet_eval.text_encoder")
    if not text_encoder:
        if cond_model == "t5":
            text_encoder = str(_get(cfg, "conditioners.description.t5.name", "t5-base"))
        elif cond_model:
            text_encoder = str(cond_model)
        else:
            text_encoder = "t5-base"
    text_dim = _get(cfg, "magnet_eval.text_dim")
    key = "condition_provider.conditioners.description.output_proj.weight"
    if state is not None and key in state:
        text_dim = int(state[key].shape[1])
    if text_dim is None:
        text_dim = TEXT_ENCODER_DIMS.get(text_encoder, 768)

    frame_rate = _get(cfg, "magnet_eval.frame_rate") or lm.get("compression_model_framerate") or 50
    span_len = _get(cfg, "masking.span_len", lm.get("span_len", 3))
    segment = _get(cfg, "dataset.segment_duration", lm.get("segment_duration", 10)) or 10
    return LMConfig(
        kind=kind,
        dim=int(lm["dim"]),
        num_heads=int(lm["num_heads"]),
        num_layers=int(lm["num_layers"]),
        hidden_scale=int(lm.get("hidden_scale", 4)),
        n_q=n_q,
        card=int(lm.get("card", 2048)),
        causal=False if kind == "magnet" else bool(lm.get("causal", True)),
        pattern=modeling,
        delays=[int(d) for d in delays],
        subcodes_context=(int(lm.get("subcodes_context", 5)) if kind == "magnet" else None),
        span_len=int(span_len or 3),
        segment_duration=float(segment),
        frame_rate=float(frame_rate),
        sample_rate=int(_get(cfg, "sample_rate", 32000) or 32000),
        cross_attention=cross,
        text_encoder=str(text_encoder),
        text_dim=int(text_dim),
        max_period=float(lm.get("max_period", 10000.0) or 10000.0),
        codec=_codec_from_cfg(cfg),
        stage_attention=str(_get(cfg, "magnet_eval.stage_attention", "restricted") or "restricted"),
    )


def xp_from_config(cfg: LMConfig, extra: Optional[Mapping[str, Any]] = None) -> str:
    """An audiocraft-shaped xp.cfg YAML for one of our models (readable back by `config_from_xp`)."""
    from omegaconf import OmegaConf

    is_t5 = cfg.text_encoder.startswith("t5")
    tree: dict[str, Any] = {
        "solver": cfg.kind,
        "lm_model": "transformer_lm_magnet" if cfg.kind == "magnet" else "transformer_lm",
        "sample_rate": cfg.sample_rate,
        "channels": 1,
        "compression_model_checkpoint": cfg.codec,
        "dataset": {"segment_duration": cfg.segment_duration},
        "codebooks_pattern": {"modeling": cfg.pattern, "delay": {"delays": list(cfg.delays)}},
        "conditioners": {"description": {"model": "t5" if is_t5 else cfg.text_encoder,
                                         **({"t5": {"name": cfg.text_encoder}} if is_t5 else {})}},
        "fuser": {"cross": ["description"] if cfg.cross_attention else [], "prepend": [], "sum": [],
                  "cross_attention_pos_emb": False},
        "transformer_lm": {
            "dim": cfg.dim, "num_heads": cfg.num_heads, "num_layers": cfg.num_layers,
            "hidden_scale": cfg.hidden_scale, "n_q": cfg.n_q, "card": cfg.card, "activation": "gelu",
            "norm_first": True, "bias_ff": False, "bias_attn": False, "bias_proj": False,
            "causal": cfg.causal, "positional_embedding": "sin", "max_period": cfg.max_period,
            "norm": "layer_norm", "cross_attention": cfg.cross_attention,
            "segment_duration": cfg.segment_duration, "compression_model_framerate": cfg.frame_rate,
            "span_len": cfg.span_len,
            **({"subcodes_context": cfg.subcodes_context} if cfg.kind == "magnet" else {}),
        },
        "masking": {"span_len": cfg.span_len},
        "magnet_eval": {"codec": cfg.codec, "text_encoder": cfg.text_encoder, "text_dim": cfg.text_dim,
                        "frame_rate": cfg.frame_rate, "stage_attention": cfg.stage_attention,
                        **dict(extra or {})},
    }
    return OmegaConf.to_yaml(OmegaConf.create(tree))


# ---- loading ------------------------------------------------------------------------------------
def read_package(path: Path | str) -> dict:
    """Read an export package; refuse anything that is not `{'best_state', 'xp.cfg', ...}`."""
    path = Path(path)
    pkg = load_torch(path)
    if not isinstance(pkg, Mapping) or "best_state" not in pkg or "xp.cfg" not in pkg:
        keys = list(pkg.keys())[:10] if isinstance(pkg, Mapping) else type(pkg).__name__
        raise CheckpointError(
            f"{path} is not an audiocraft export package (expected a dict with 'best_state' and 'xp.cfg', "
            f"found {keys})")
    state = pkg["best_state"]
    if isinstance(state, Mapping) and "model" in state and not any(k.startswith("emb.") for k in state):
        state = state["model"]  # training checkpoints nest the model state
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'best_state' is not a state dict")
    return {**pkg, "best_state": dict(state)}


def load_lm(path: Path | str, device: str | torch.device = "cpu", dtype: Optional[torch.dtype] = None,
            stage_attention: Optional[str] = None) -> LMModel:
    """Build the LM described by an export's xp.cfg and load its weights, every key checked.

    stage_attention: override how MAGNeT's stages > 0 attend ('restricted' by default, or
    'audiocraft-sdpa' to reproduce audiocraft's torch-backend outputs; see lm.STAGE_ATTENTION_MODES).
    """
    path = Path(path)
    pkg = read_package(path)
    state = pkg["best_state"]
    cfg = config_from_xp(pkg["xp.cfg"], state)
    if stage_attention is not None:
        cfg.stage_attention = stage_attention
        cfg.__post_init__()  # validates the mode
    model = build_lm(cfg)
    check_state_dict(model, state, source=str(path))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.checkpoint_path = str(path)  # type: ignore[attr-defined]
    model.eval()
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)


def save_lm(model: LMModel, path: Path | str, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Save in audiocraft's export format (fp32 weights), so `load_lm` (and audiocraft) read it back."""
    path = Path(path)
    while not isinstance(model, LMModel) and isinstance(getattr(model, "module", getattr(model, "lm", None)),
                                                          torch.nn.Module):
        model = getattr(model, "module", None) or model.lm  # DDP / training wrappers
    if not isinstance(model, LMModel):
        raise CheckpointError(f"save_lm needs an LMModel, got {type(model).__name__}")
    if path.suffix == "" or path.is_dir():
        path = path / LM_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.lm_state_dict().items()}
    return write_export(path, state, xp_from_config(model.cfg, extra), EXPORT_VERSION)


# ---- finding files ------------------------------------------------------------------------------
def is_lm_hub_name(spec: str) -> bool:
    """A hub name of a released MAGNeT / MusicGen repository (not a local path)."""
    return is_hub_name(spec, HUB_PREFIXES)


def resolve_lm_checkpoint(spec: str | Path) -> Path:
    """A checkpoint file for a path (file or folder with state_dict.bin) or a hub name in the HF cache.

    Hub names are looked up in ~/.cache/magnet-eval/checkpoints/<name>/ and the Hugging Face cache;
    nothing is downloaded: when absent, the error names the file and where to put it.
    """
    s = str(spec)
    p = Path(s).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        if (p / LM_FILE).is_file():
            return p / LM_FILE
        raise CheckpointError(f"{p} is a folder without {LM_FILE}")
    if is_lm_hub_name(s):
        ours = cache_dir() / "checkpoints" / s.split("/", 1)[1] / LM_FILE
        return find_weights(
            f"{s} language model {LM_FILE}",
            [ours, find_hf_file(s, LM_FILE)],
            put_here=hf_repo_dir(s) / "snapshots" / "<revision>" / LM_FILE,
            source=f"https://huggingface.co/{s}/resolve/main/{LM_FILE}",
            extra=[f"  (or put it at {ours}; the codec goes beside it as {CODEC_FILE})"],
        )
    raise CheckpointError(f"no checkpoint at {s!r}: not a file, a folder with {LM_FILE}, a preset or a known hub name "
                          f"({', '.join(p + '*' for p in HUB_PREFIXES)})")


def codec_spec_for(lm_path: Path, cfg: LMConfig) -> str:
    """The codec of an LM checkpoint: its sibling compression_state_dict.bin if present, else the cfg's codec."""
    sibling = Path(lm_path).parent / CODEC_FILE
    return str(sibling) if sibling.is_file() else cfg.codec
