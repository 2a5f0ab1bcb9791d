"""Generator families behind one interface (see `registry.py`): look a model spec up, build it, generate."""

from __future__ import annotations

from .registry import Request, SystemFamily, build_system, families, family_for, get_family, register

__all__ = ["Request", "SystemFamily", "build_system", "families", "family_for", "get_family", "load_families",
           "register"]

# one line per family: its module registers it on import
FAMILY_MODULES = ("magnet", "musicgen", "vampnet", "stemgen")


def load_families() -> None:
    """Import every family module (each registers itself); cheap after the first call."""
    import importlib

    for name in FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{name}")
