"""MusicGen (the autoregressive baseline) in the system registry: the same Generator and LMSystem as MAGNeT."""

from __future__ import annotations

from .magnet import _presets, build, timed
from .registry import SystemFamily, register

FAMILY = register(SystemFamily(
    name="musicgen", needs=("text",), build=build, timed=timed, presets=_presets("musicgen"),
    checkpoint_kinds=("musicgen",), hub_prefixes=("facebook/musicgen-",)))
