"""Shared test settings: no progress bars, offline hubs (the toolkit cache stays where the wheels are)."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["MAGNET_EVAL_NO_PROGRESS"] = "1"
# numba (under librosa's onset and beat trackers) caches what it compiles; two pytest-xdist workers
# compiling the same function into one cache on a fresh install can segfault (reproduced: 1 run in 6),
# so each worker process gets a cache folder of its own.
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="magnet-eval-numba-")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout (reference facts, fixtures and caption files)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the shared reference folder beside the checkout) is absent")
    return SHARED


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: tiny models on the shared 2-core machine stall when oversubscribed.

    Opt in per module with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
