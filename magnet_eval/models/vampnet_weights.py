"""VampNet weights: the released coarse / c2f checkpoints (reference layout) and the toolkit's own checkpoints.

Our own checkpoints (`save_vampnet` / `load_vampnet`): one file holding both models' configs and
state dicts and the codec they were trained on (a `load_codec` spec), plain data only.

What the files are (facts in docs/vampnet.md): the reference publishes `coarse.pth`, `c2f.pth`,
`codec.pth` and `wavebeat.pth` in the Hugging Face repo `hugggof/vampnet` (the reference's own code
puts them in `models/vampnet/`). `coarse.pth` / `c2f.pth` are audiotools `weights.pth` exports:
`{"state_dict": ..., "metadata": {"kwargs": {constructor arguments}}}`, plain data that
`torch.load(weights_only=True)` reads. A torch.package export (`package.pth`) needs pickled classes
and is refused, as is anything else that is not plain data (`files.load_torch`).

Key mapping onto `VampNetModel` (everything else has the reference's name already):
- `classifier.layers.0.{weight_g, weight_v}` (weight norm) -> `classifier.weight` = g * v / ||v||;
  `classifier.layers.0.bias` -> `classifier.bias`;
- LoRA pairs `X.lora_A` [r, in], `X.lora_B` [out, r] are merged: `X.weight += B @ A * alpha / r`
  with loralib's defaults alpha = 1 and the reference's r = 8;
- `ctrl_encoder.*` (controls of later reference versions) is dropped: with no control given the
  reference adds nothing, which is what the model here does;
- the embedding's codec vectors (`embedding.codebooks`, not in the released files) come from the
  codec: `quantizer.quantizers.N.codebook.weight` of the DAC / LAC `codec.pth` or DAC 44.1 kHz file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ..errors import CheckpointError, MagnetEvalError
from ..files import atomic_write, load_torch
from ..paths import cache_dir, find_hf_file, find_weights
from .vampnet import VampNet, VampNetConfig, VampNetModel

HF_REPO = "hugggof/vampnet"
PARTS = {"coarse": "coarse.pth", "c2f": "c2f.pth", "codec": "codec.pth"}
LORA_SCALE = 1.0 / 8  # loralib lora_alpha=1 / the reference's LORA_R=8
DAC_44KHZ = "weights_44khz_8kbps_0.0.1.pth"  # the descript-audio-codec package's cache name


def default_dir() -> Path:
    """Where to put the released files: the toolkit cache's `vampnet/` folder."""
    return cache_dir() / "vampnet"


def find_part(part: str, path: Optional[str | Path] = None) -> Path:
    """The file of one released part ('coarse', 'c2f', 'codec'): `path` (a file or a folder holding it),
    the toolkit cache, the Hugging Face cache of hugggof/vampnet, or the reference's `models/vampnet/`."""
    if part not in PARTS:
        raise MagnetEvalError(f"unknown VampNet part {part!r}; parts: {', '.join(PARTS)}")
    name = PARTS[part]
    candidates: list[Path | None] = []
    if path is not None:
        p = Path(path).expanduser()
        candidates.append(p / name if p.is_dir() else p)
    else:
        candidates += [default_dir() / name, find_hf_file(HF_REPO, name), Path("models") / "vampnet" / name]
    return find_weights(f"VampNet {part} weights {name}", candidates, put_here=default_dir() / name,
                        source=f"https://huggingface.co/{HF_REPO} (file {name})")


def find_dac_44khz(path: Optional[str | Path] = None) -> Path:
    """DAC 44.1 kHz weights: `path`, the toolkit cache, or the descript-audio-codec package's cache."""
    candidates = [Path(path).expanduser()] if path is not None else [
        default_dir() / DAC_44KHZ, Path.home() / ".cache" / "descript" / "dac" / DAC_44KHZ]
    return find_weights(f"DAC 44.1 kHz weights {DAC_44KHZ}", candidates, put_here=candidates[-1],
                        source="https://github.com/descriptinc/descript-audio-codec/releases (weights_44khz_8kbps)")


def read_export(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, constructor kwargs) of an audiotools weights export or a bare state dict."""
    obj = load_torch(path)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        state, meta = obj["state_dict"], obj.get("metadata") or {}
        kwargs = dict(meta.get("kwargs") or {}) if isinstance(meta, Mapping) else {}
    elif isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, kwargs = obj, {}
    else:
        raise CheckpointError(f"{path}: not a VampNet/DAC weights file (expected a dict with 'state_dict' and "
                              f"'metadata', as the reference's weights.pth exports, or a bare state dict)")
    return {_strip(k): v for k, v in state.items()}, kwargs


def _strip(key: str) -> str:
    for prefix in ("_orig_mod.", "module."):  # torch.compile / DistributedDataParallel wrappers
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def codec_codebooks_from_state(state: Mapping[str, torch.Tensor], source: str) -> torch.Tensor:
    """DAC / LAC codebook vectors [K, card, dim] from `quantizer.quantizers.N.codebook.weight`."""
    found = {int(m.group(1)): v for k, v in state.items()
             if (m := re.fullmatch(r"quantizer\.quantizers\.(\d+)\.codebook\.weight", k))}
    if not found or sorted(found) != list(range(len(found))):
        raise CheckpointError(f"{source}: no DAC codebooks (quantizer.quantizers.N.codebook.weight) in this file")
    return torch.stack([found[i].float() for i in range(len(found))])


def map_reference_state(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The reference's VampNet state dict in `VampNetModel`'s names (see the module doc)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith("ctrl_encoder.") or k.endswith((".lora_A", ".lora_B")):
            continue
        if k.startswith("classifier.layers.0."):
            rest = k[len("classifier.layers.0."):]
            if rest in ("weight_g", "weight_v", "parametrizations.weight.original0",
                        "parametrizations.weight.original1"):
                continue
            k = "classifier." + rest
        out[k] = v
    pre = "classifier.layers.0."
    g = state.get(pre + "weight_g", state.get(pre + "parametrizations.weight.original0"))
    v = state.get(pre + "weight_v", state.get(pre + "parametrizations.weight.original1"))
    if g is not None and v is not None:
        norm = v.float().flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
        out["classifier.weight"] = (g.float() * v.float() / norm).to(v.dtype)
    for k in state:
        if k.endswith(".lora_A"):
            base = k[: -len(".lora_A")]
            a, b = state[k].float(), state.get(base + ".lora_B")
            if b is None or base + ".weight" not in out:
                raise CheckpointError(f"{source}: LoRA key {k} without its lora_B / base weight")
            w = out[base + ".weight"]
            out[base + ".weight"] = (w.float() + b.float() @ a * LORA_SCALE).to(w.dtype)
    return out


def config_from_reference(state: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any], source: str,
                          **overrides: Any) -> VampNetConfig:
    """A config read from the tensor shapes (checked against the export's kwargs where given)."""
    try:
        n_codebooks, latent_dim = state["embedding.special.MASK"].shape
        dim = state["embedding.out_proj.weight"].shape[0]
        n_heads = state["transformer.layers.0.self_attn.relative_attention_bias.weight"].shape[1]
        buckets = state["transformer.layers.0.self_attn.relative_attention_bias.weight"].shape[0]
        out_ch = state["classifier.bias"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{source}: not a VampNet checkpoint (missing {exc.args[0]})") from exc
    n_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"transformer\.layers\.(\d+)\.", k)))
    vocab = int(kwargs.get("vocab_size", 1024))
    if out_ch % vocab:
        raise CheckpointError(f"{source}: classifier has {out_ch} outputs, not a multiple of vocab_size {vocab}")
    n_predict = out_ch // vocab
    found = dict(n_codebooks=int(n_codebooks), latent_dim=int(latent_dim), embedding_dim=int(dim),
                 n_heads=int(n_heads), n_layers=n_layers, vocab_size=vocab,
                 n_conditioning_codebooks=int(n_codebooks) - n_predict)
    for key, val in found.items():
        if key in kwargs and int(kwargs[key]) != val:
            raise CheckpointError(f"{source}: metadata says {key}={kwargs[key]} but the weights say {val}")
    return VampNetConfig(**found, attention_num_buckets=int(buckets), dropout=float(kwargs.get("dropout", 0.1)),
                         **overrides)


def load_part(path: str | Path, codebooks: torch.Tensor, **overrides: Any) -> VampNetModel:
    """One released VampNet model from its file; `codebooks` [K, card, dim] are the codec's vectors."""
    path = Path(path)
    state, kwargs = read_export(path)
    state = map_reference_state(state, str(path))
    cfg = config_from_reference(state, kwargs, str(path), **overrides)
    model = VampNetModel(cfg)
    expected = set(model.state_dict()) - {"embedding.codebooks"}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not match the VampNet layout; missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(model.state_dict()[k].shape):
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, expected "
                                  f"{tuple(model.state_dict()[k].shape)}")
    model.load_state_dict({**state, "embedding.codebooks": model.embedding.codebooks}, strict=True)
    model.embedding.set_codebooks(codebooks)
    return model.eval()


def load_released_vampnet(folder: Optional[str | Path] = None, coarse: Optional[str | Path] = None,
                          c2f: Optional[str | Path] = None, codec: Optional[str | Path] = None,
                          frame_rate: float = 44100 / 768, sample_rate: int = 44100) -> VampNet:
    """The released coarse + c2f pair (c2f optional only when given as ''), codebooks from the codec file.

    folder: a folder holding coarse.pth / c2f.pth / codec.pth (else the usual places, see `find_part`).
    frame_rate / sample_rate: the codec's (the reference reads them from the codec object).
    """
    codec_path = find_part("codec", codec or folder)
    books = codec_codebooks_from_state(read_export(codec_path)[0], str(codec_path))
    rates = dict(frame_rate=frame_rate, sample_rate=sample_rate)
    coarse_model = load_part(find_part("coarse", coarse or folder), books, chunk_duration=10.0, **rates)
    c2f_model = None
    if c2f != "":
        c2f_model = load_part(find_part("c2f", c2f or folder), books, chunk_duration=3.0, **rates)
    return VampNet(coarse_model, c2f_model, name="vampnet")


def load_dac_codec(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """A DAC codec object (encode / decode) from a weights file, through the descript-audio-codec package.

    The file is read here with weights_only (never `DAC.load`, which unpickles freely); the package
    only supplies the architecture. It is not a dependency of the toolkit: installing it downgrades
    protobuf below 3.20 (descript-audiotools' pin), which breaks wandb and others beside our pins.
    """
    state, kwargs = read_export(Path(path))
    try:
        import dac  # noqa: F401
        from dac.model import DAC
    except ImportError as exc:
        raise MagnetEvalError(
            f"decoding with {path} needs the `descript-audio-codec` package (`pip install descript-audio-codec`; "
            "note it pins protobuf<3.20 through descript-audiotools). The VampNet token models load without it.") from exc
    model = DAC(**kwargs)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


# ---- the toolkit's own checkpoints -----------------------------------------------------------------

KIND = "vampnet"


def save_vampnet(vn: VampNet, path: str | Path, codec_spec: str) -> Path:
    """Write {'kind', 'name', 'codec', 'coarse': {config, state_dict}, 'c2f': ... | None} (weights_only-readable)."""
    def part(m: Optional[VampNetModel]) -> Optional[dict]:
        if m is None:
            return None
        return {"config": m.cfg.to_dict(), "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()}}

    path = Path(path)
    with atomic_write(path) as f:
        torch.save({"kind": KIND, "name": vn.name, "codec": str(codec_spec), "coarse": part(vn.coarse),
                    "c2f": part(vn.c2f)}, f)
    return path


def load_vampnet(path: str | Path) -> tuple[VampNet, str]:
    """(VampNet, codec spec) from a file written by `save_vampnet`; other files are refused naming the file."""
    path = Path(path)
    pkg = load_torch(path)
    if not isinstance(pkg, Mapping) or pkg.get("kind") != KIND or not isinstance(pkg.get("coarse"), Mapping):
        raise CheckpointError(f"{path}: not a magnet-eval VampNet checkpoint (expected kind 'vampnet'); for the "
                              "released reference files give their folder")

    def part(d: Optional[Mapping]) -> Optional[VampNetModel]:
        if d is None:
            return None
        model = VampNetModel(VampNetConfig.from_dict(dict(d["config"])))
        try:
            model.load_state_dict(d["state_dict"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match their config: {str(exc).splitlines()[0]}") from exc
        return model.eval()

    return VampNet(part(pkg["coarse"]), part(pkg.get("c2f")), name=str(pkg.get("name") or path.stem)), str(pkg["codec"])


PART_KIND = "vampnet-part"


def save_vampnet_part(model: VampNetModel, path: str | Path, codec_spec: str, part: str) -> Path:
    """One trained model ('coarse' or 'c2f') on its own (what `train vampnet --part` exports); `pair_vampnet`
    joins a coarse and a c2f part into the checkpoint `vamp` loads. Plain data only."""
    if part not in ("coarse", "c2f"):
        raise MagnetEvalError(f"unknown VampNet part {part!r}; parts: coarse, c2f")
    path = Path(path)
    with atomic_write(path) as f:
        torch.save({"kind": PART_KIND, "part": part, "codec": str(codec_spec), "config": model.cfg.to_dict(),
                    "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, f)
    return path


def load_vampnet_part(path: str | Path, part: Optional[str] = None) -> tuple[VampNetModel, str, str]:
    """(model, part, codec spec) from a `save_vampnet_part` file; another file or the wrong part is refused naming it."""
    path = Path(path)
    pkg = load_torch(path)
    if not isinstance(pkg, Mapping) or pkg.get("kind") != PART_KIND:
        raise CheckpointError(f"{path}: not a VampNet part exported by `magnet-eval train vampnet`")
    if part is not None and pkg.get("part") != part:
        raise CheckpointError(f"{path}: holds the VampNet {pkg.get('part')!r} model, expected {part!r}")
    model = VampNetModel(VampNetConfig.from_dict(dict(pkg["config"])))
    try:
        model.load_state_dict(pkg["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match their config: {str(exc).splitlines()[0]}") from exc
    return model.eval(), str(pkg["part"]), str(pkg["codec"])


def pair_vampnet(coarse: str | Path, c2f: str | Path, name: str = "vampnet") -> tuple[VampNet, str]:
    """(VampNet, codec spec) from a coarse and a c2f part trained on the same codec."""
    cm, _, codec_a = load_vampnet_part(coarse, "coarse")
    fm, _, codec_b = load_vampnet_part(c2f, "c2f")
    if codec_a != codec_b:
        raise CheckpointError(f"{coarse} and {c2f} were trained on different codecs ({codec_a} vs {codec_b})")
    return VampNet(cm, fm, name=name), codec_a
