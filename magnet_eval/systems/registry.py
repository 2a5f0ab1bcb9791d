"""The system registry: one entry per generator family (MAGNeT, MusicGen, VampNet, StemGen).

Why: `generate`, `bench latency`, `compare` and `reproduce` all turn a model spec (a preset name, a
checkpoint, a hub name) into something that makes audio. Each family says here which specs it
claims, what a request must hold and how to build itself; callers ask `build_system(spec)` and
never branch on the family. A new family is one module in this package that calls `register`,
plus its name in `systems/__init__.py`.

A built system has `name`, `family`, `sample_rate`, `settings(**decoding) -> dict` (what a resumed
run must share) and `generate(requests, seeds, duration, **decoding) -> (audio list, sample rate,
stats)`: one mono float32 array per request, the i-th made with `seeds[i]` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from ..errors import InvalidOptionError, MagnetEvalError


@dataclass(frozen=True)
class Request:
    """One clip to generate; each family declares which of the optional fields it needs."""

    id: str
    text: Optional[str] = None  # a text prompt (MAGNeT, MusicGen)
    audio: Optional[str] = None  # an audio file: the context to answer or vary (StemGen, VampNet)
    prompt_mask: Optional[str] = None  # which tokens of `audio` to keep, e.g. "periodic:7" (VampNet)
    instrument: Optional[str] = None  # the stem to generate (StemGen)


REQUEST_FIELDS = tuple(f.name for f in fields(Request) if f.name != "id")


class System(Protocol):
    """What `build` returns (see the module docstring)."""

    name: str
    family: str
    sample_rate: int

    def settings(self, **decoding: Any) -> dict[str, Any]: ...

    def generate(self, requests: Sequence[Request], seeds: Sequence[int], duration: float,
                 **decoding: Any) -> tuple[list[np.ndarray], int, dict[str, Any]]: ...


@dataclass(frozen=True)
class SystemFamily:
    """A generator family: the specs it claims, what its requests need, how to build one."""

    name: str
    needs: tuple[str, ...]  # Request fields every request must have
    build: Callable[..., System]  # build(spec, device, dtype, **options)
    presets: tuple[str, ...] = ()  # preset names it claims (magnet-tiny, ...)
    checkpoint_kinds: tuple[str, ...] = ()  # the kind a checkpoint file records (see `recorded_kind`)
    hub_prefixes: tuple[str, ...] = ()  # hub names it claims (facebook/magnet-, ...)
    # what `bench latency` times (generate(prompts, duration, seed, batch_size, **knobs), last_stats):
    # timed(spec, device, dtype); None = this family cannot be timed yet
    timed: Optional[Callable[[str, str, Optional[str]], Any]] = None

    def claims(self, spec: str, kind: Optional[str]) -> bool:
        if spec in self.presets:
            return True
        if kind is not None:
            return kind in self.checkpoint_kinds
        return not Path(spec).expanduser().exists() and spec.startswith(self.hub_prefixes)

    def validate(self, requests: Sequence[Request]) -> None:
        """Every request holds what this family needs (InvalidOptionError naming the first that does not)."""
        for r in requests:
            missing = [f for f in self.needs if getattr(r, f) in (None, "")]
            if missing:
                raise InvalidOptionError(f"request {r.id!r}: {self.name} needs {', '.join(missing)} "
                                         f"(a request holds {', '.join(REQUEST_FIELDS)})")


_FAMILIES: dict[str, SystemFamily] = {}
# the family that builds a local path whose kind cannot be read: its loader gives the precise error
FALLBACK_FAMILY = "magnet"


def register(family: SystemFamily) -> SystemFamily:
    """Add a family (each family module calls this once, at import)."""
    _FAMILIES[family.name] = family
    return family


def families() -> list[SystemFamily]:
    from . import load_families

    load_families()
    return list(_FAMILIES.values())


def get_family(name: str) -> SystemFamily:
    by_name = {f.name: f for f in families()}
    if name not in by_name:
        raise InvalidOptionError(f"unknown system family {name!r}; known: {', '.join(by_name)}")
    return by_name[name]


def recorded_kind(spec: str) -> Optional[str]:
    """The family a local checkpoint records: its 'kind' key, or an audiocraft export's `xp.cfg` model kind.

    None for a spec that is not a local path or a file that does not say. Read with weights_only and
    memory-mapped, so a large checkpoint is not read twice.
    """
    p = Path(spec).expanduser()
    if p.is_dir():
        from ..models.checkpoints import LM_FILE

        if not (p / LM_FILE).is_file():
            return "vampnet" if (p / "coarse.pth").is_file() else None
        p = p / LM_FILE
    if not p.is_file():
        return None
    import torch

    try:
        pkg = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  (not a zip torch file, refused type: the family's loader names the problem)
        return None
    if not isinstance(pkg, dict):
        return None
    if isinstance(pkg.get("kind"), str):
        return {"magnet_eval.stemgen": "stemgen", "vampnet-part": "vampnet"}.get(pkg["kind"], pkg["kind"])
    if "xp.cfg" in pkg:
        from ..models.checkpoints import config_from_xp

        try:
            return config_from_xp(pkg["xp.cfg"]).kind
        except Exception:  # noqa: BLE001  (an unsupported config: load_lm says which option)
            return None
    return None


def family_for(spec: str) -> SystemFamily:
    """The family that claims `spec` (a preset, a checkpoint by its recorded kind, or a hub name)."""
    spec = str(spec)
    kind = recorded_kind(spec)
    for fam in families():
        if fam.claims(spec, kind):
            return fam
    if Path(spec).expanduser().exists() and kind is None:
        return get_family(FALLBACK_FAMILY)
    presets = ", ".join(p for f in families() for p in f.presets)
    raise MagnetEvalError(f"unknown model {spec!r}: give a preset ({presets}), a checkpoint path "
                          "(state_dict.bin or its folder, a VampNet or StemGen checkpoint) or a hub name like "
                          "facebook/magnet-small-10secs")


def build_timed(spec: str, device: str = "cpu", dtype: Optional[str] = None) -> Any:
    """The object `bench latency` times for `spec`, built by its family's `timed`."""
    fam = family_for(spec)
    if fam.timed is None:
        raise InvalidOptionError(f"{spec}: bench latency cannot time the {fam.name} family yet (it registers no "
                                 "`timed` builder in magnet_eval/systems/)")
    return fam.timed(str(spec), device, dtype)


def build_system(spec: str, device: str = "cpu", dtype: Optional[str] = None, **options: Any) -> System:
    """The system for `spec`, built by the family that claims it. options: family-specific (text_encoder, ...)."""
    return family_for(spec).build(str(spec), device, dtype, **options)
