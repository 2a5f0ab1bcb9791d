"""Shared test settings: no progress bars, offline hubs (the toolkit cache stays where the wheels are)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["MAGNET_EVAL_NO_PROGRESS"] = "1"

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout (reference facts, fixtures and caption files)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the shared reference folder beside the checkout) is absent")
    return SHARED
