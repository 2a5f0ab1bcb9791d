"""Sharded `generate` / `evaluate` / `stats build` under torchrun: one shard of the manifest per rank.

`torchrun --nproc_per_node N --no-python magnet-eval evaluate ...` runs the same command in N processes;
`sharded_run()` (entered by those commands) joins the process group through the training helpers
(`solvers.distributed.init_distributed`: gloo on CPU, nccl on GPU) and makes the process's rank the
current shard. Without torchrun it is a no-op and everything runs in one process.

Why gather per-clip results rather than per-rank partial statistics: every per-file stage
(`embedding_cache.cached_per_file`) computes its rank's shard (every N-th item in manifest order),
writes each result to the cache atomically (so a killed rank resumes on rerun) and gathers the
others' arrays, in manifest order. The metric stage then sees exactly the inputs of a single-process
run, so FAD, KAD, KL and per-clip values are bit-identical to it, and only rank 0 writes results,
statistics files and the ledger row.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

_CURRENT: list[Any] = []  # the DistInfo of the sharded run in progress (empty: single process)


def current():
    """The DistInfo of the sharded run this process is in, or None (single process)."""
    return _CURRENT[-1] if _CURRENT else None


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a sharded run."""
    info = current()
    return (info.rank, info.world_size) if info is not None else (0, 1)


def is_main() -> bool:
    """Whether this process writes the run's outputs (rank 0, or the single process)."""
    return rank_world()[0] == 0


def shard(items: Sequence[T]) -> list[T]:
    """This rank's deterministic share: every world-th item in the given order, starting at its rank."""
    rank, world = rank_world()
    return list(items[rank::world])


@contextlib.contextmanager
def sharded_run(device: str = "auto") -> Iterator[Any]:
    """Join torchrun's process group for the body when WORLD_SIZE > 1 (leaving it afterwards)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield None
        return
    from .solvers.distributed import init_distributed, shutdown

    info = init_distributed(device)
    _CURRENT.append(info)
    try:
        yield info
    finally:
        _CURRENT.pop()
        shutdown()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    info = current()
    if info is not None and info.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, indexed by rank ([obj] in one process)."""
    info = current()
    if info is None or not info.distributed:
        return [obj]
    import torch.distributed as dist

    box: list[Any] = [None] * info.world_size
    dist.all_gather_object(box, obj)
    return box


def run_sharded(items: Sequence[T], work: Callable[[list[T]], dict]) -> dict:
    """`work(this rank's shard)` -> {key: value}, merged over ranks.

    A failure on any rank is raised on every rank (after the gather, so no rank waits forever).
    """
    info = current()
    if info is None or not info.distributed:
        return work(list(items))
    own: BaseException | None = None
    try:
        mine: tuple[dict | None, str | None] = (work(shard(items)), None)
    except Exception as exc:  # noqa: BLE001  (re-raised below, on every rank)
        own = exc
        mine = (None, str(exc) or type(exc).__name__)  # text only: not every exception type pickles
    merged: dict = {}
    errors = []
    for rank, (part, err) in enumerate(all_gather(mine)):
        if err is not None:
            errors.append(f"rank {rank}: {err}")
        else:
            merged.update(part)
    if own is not None:
        raise own
    if errors:
        from .errors import MagnetEvalError

        raise MagnetEvalError(errors[0])
    return merged
