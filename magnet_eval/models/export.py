"""What LM and codec exports share: audiocraft's package layout, its xp.cfg, the key check, hub names.

An audiocraft export is a torch file `{'best_state': state_dict, 'xp.cfg': <OmegaConf YAML string>,
'version', 'exported'}` (read with `files.load_torch`, never unpickled freely). The LM loader
(`checkpoints.py`) and the codec loader (`codec.py`) both parse the config and check the state dict
here, so both report a mismatch the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch

from ..errors import CheckpointError
from ..files import atomic_write

LM_FILE = "state_dict.bin"
CODEC_FILE = "compression_state_dict.bin"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LIST_LIMIT = 40


def xp_as_dict(xp_cfg: Any, resolve_keys: Optional[Iterable[str]] = None) -> dict:
    """xp.cfg (YAML string, DictConfig or mapping) as a plain dict.

    resolve_keys: resolve interpolations in these top-level entries only and return just them
    (released configs hold interpolations such as ${oc.env:USER} elsewhere, which cannot resolve here).
    """
    from omegaconf import OmegaConf

    try:
        if isinstance(xp_cfg, str):
            conf = OmegaConf.create(xp_cfg)
        elif isinstance(xp_cfg, Mapping):
            conf = OmegaConf.create(dict(xp_cfg))
        else:
            conf = xp_cfg
        if resolve_keys is None:
            out = OmegaConf.to_container(conf, resolve=False)
        else:
            out = {}
            for key in resolve_keys:
                if key in conf:
                    node = conf[key]
                    out[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    except Exception as exc:  # noqa: BLE001 - malformed YAML, an unknown object, an unresolvable interpolation
        raise CheckpointError(f"cannot read the checkpoint's xp.cfg ({type(xp_cfg).__name__}): {exc}") from exc
    if not isinstance(out, dict):
        raise CheckpointError(f"xp.cfg is not a mapping but {type(out).__name__}")
    return out


def write_export(path: Path, state: Mapping[str, torch.Tensor], xp_yaml: str, version: str) -> Path:
    """Write `{'best_state', 'xp.cfg', 'version', 'exported': True}` atomically (what audiocraft's exports hold)."""
    with atomic_write(path) as f:
        torch.save({"best_state": dict(state), "xp.cfg": xp_yaml, "version": version, "exported": True}, f)
    return path


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                     what: str = "model built from its config") -> None:
    """Raise CheckpointError listing missing keys, unexpected keys and shape mismatches (nothing is loaded then)."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(str(k) for k in state if k not in own)
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape))
    if not (missing or unexpected or shapes):
        return
    lines = [f"{source} does not match the {what} ({len(own)} tensors):"]
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  - {i}" for i in items[:_LIST_LIMIT]]
            if len(items) > _LIST_LIMIT:
                lines.append(f"  ... and {len(items) - _LIST_LIMIT} more")
    raise CheckpointError("\n".join(lines))


def is_hub_name(spec: str, prefixes: Iterable[str] = ()) -> bool:
    """`org/name` that is not a path on this machine (and starts with one of `prefixes`, when given)."""
    s = str(spec)
    if not _HUB_NAME.match(s) or Path(s).expanduser().exists():
        return False
    prefixes = tuple(prefixes)
    return not prefixes or s.startswith(prefixes)
