"""Metric registry: one streaming class per module (`update` / `compute`), looked up by name.

Classes are imported lazily so that importing the registry (the CLI's --help) stays fast and a
metric whose module is missing or broken does not take the others down.
"""

from __future__ import annotations

import importlib

from ..errors import MagnetEvalError

# name -> "module:Class" (relative to this package)
REGISTRY: dict[str, str] = {
    "fad": "fad:FAD",
    "kad": "kad:KAD",
    "kl": "kl:KL",
    "clap": "clap_score:CLAPScore",
    "mirdd": "mirdd:MIRDD",
    "chroma_cosine": "chroma:ChromaCosine",
}

# Metric names a user may ask for, and the result rows each one produces.
ROWS: dict[str, list[str]] = {
    "fad": ["fad", "fad_inf"],
    "kad": ["kad"],
    "kl": ["kl", "kl_rev"],
    "kl_musicnn": ["kl_musicnn", "kl_musicnn_rev"],
    "clap": ["clap"],
    "mirdd": ["mirdd"],
    "chroma_cosine": ["chroma_cosine"],
}

ALIASES = {"fad_inf": "fad", "chroma": "chroma_cosine", "kl_rev": "kl", "clap_score": "clap"}


def available() -> list[str]:
    return sorted(ROWS)


def canonical(name: str) -> str:
    """The registry name of a metric a user typed; MagnetEvalError listing the known names otherwise."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ROWS:
        raise MagnetEvalError(f"unknown metric {name!r}; known: {', '.join(available())}")
    return key


def get_metric_class(name: str):
    """The class that implements metric `name` (kl_musicnn uses the KL class)."""
    key = canonical(name)
    key = "kl" if key == "kl_musicnn" else key
    module_name, cls_name = REGISTRY[key].split(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        raise MagnetEvalError(f"metric {name!r} is not available in this installation ({exc})") from exc
    try:
        return getattr(module, cls_name)
    except AttributeError as exc:
        raise MagnetEvalError(f"metric {name!r}: {module.__name__} has no {cls_name}") from exc
