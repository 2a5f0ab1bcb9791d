"""torch's CPU thread count for one block of work, restored afterwards.

Why one place: presets pin two threads on the 2 shared cores, trainers one per worker process, and the
text encoder one for bit-stable conditions; each must leave the caller's setting as it found it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional


@contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """torch.set_num_threads(n) inside the block (None: leave the count alone), the previous count restored after."""
    import torch

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
