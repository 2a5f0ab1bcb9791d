"""Checkpoint and resume state: what a run writes to survive a kill, and how it is read back.

The checkpoint holds model, optimizer, scheduler, grad scaler, EMA, step and every rank's global
RNG states (numpy's as plain values and a tensor, so the file loads with weights_only=True);
`train_done.json` marks a finished run; the weights checksum proves the ranks agree.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import CheckpointError
from ..files import atomic_write, load_torch
from ..progress import warn
from . import distributed as D
from .interface import TrainConfig, config_hash

CHECKPOINT_NAME = "checkpoint.pt"
DONE_NAME = "train_done.json"


def _numpy_rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _numpy_rng_from(state: Any) -> tuple:
    """np.random.set_state's tuple from `_numpy_rng_state`'s dict (or the tuple older checkpoints hold)."""
    if isinstance(state, dict):
        keys = state["keys"].numpy().astype(np.uint32)
        return (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    return tuple(state)


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        # numpy's state as plain values and a tensor, so the checkpoint loads with weights_only=True
        "numpy": _numpy_rng_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_rng_from(state["numpy"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):
            warn("could not restore the CUDA RNG state (different GPU count); continuing")


def save_checkpoint(obj: Any, path: Path) -> None:
    """Write `obj` so a kill mid-write leaves the previous checkpoint intact."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint written by `fit`, or CheckpointError saying what is wrong with it."""
    try:
        ckpt = load_torch(path)
    except CheckpointError as exc:  # truncated, foreign or unsafe file
        raise CheckpointError(f"{exc}. Delete {path} to restart the run.") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a magnet-eval training checkpoint (a {type(ckpt).__name__})")
    for key in ("model", "optimizer", "scheduler", "step", "config_hash"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is not a magnet-eval training checkpoint (no {key!r})")
    return ckpt


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, shapes, bytes): equal iff the weights are identical."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(k.encode() + str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def rank_checksums(model: torch.nn.Module, dinfo: D.DistInfo) -> list[str]:
    """Every rank's weights checksum (on every rank): DDP must leave them all equal."""
    mine = weights_checksum(model)
    if not dinfo.distributed:
        return [mine]
    import torch.distributed as dist

    out: list = [None] * dinfo.world_size
    dist.all_gather_object(out, mine)
    return [str(x) for x in out]


def read_marker(path: Path) -> Optional[dict]:
    """The JSON of a finished-run marker, or None when there is none or it was torn by a kill mid-write."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def completed_run(out_dir: Path | str, solver_config: dict, cfg: TrainConfig) -> Optional[dict]:
    """The `train_done.json` of a finished run in out_dir with the same settings and steps, else None."""
    meta = read_marker(Path(out_dir) / DONE_NAME)
    if meta is None:
        return None
    if meta.get("config_hash") != config_hash(solver_config, cfg) or int(meta.get("step", -1)) < cfg.steps:
        return None
    if not Path(meta.get("export", "")).exists():
        return None
    return meta
