"""`build_lm`: the model class for an `LMConfig`, apart from `lm.py` so that `lm` does not import
its subclasses (`magnet`, `musicgen` import `lm`; this module imports all three, nothing imports back).
"""

from __future__ import annotations

from .lm import LMConfig, LMModel
from .magnet import MagnetLM
from .musicgen import MusicGenLM


def build_lm(cfg: LMConfig) -> LMModel:
    """A `MagnetLM` (kind 'magnet') or `MusicGenLM` (kind 'musicgen') with fresh weights for `cfg`."""
    if cfg.kind == "magnet":
        return MagnetLM(cfg)
    return MusicGenLM(cfg)
