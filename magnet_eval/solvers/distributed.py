"""Multi-process training under `torchrun`: process group, DDP wrapping, sharded sampling, rank-0 duties.

The same `magnet-eval train ...` command runs on one process or under `torchrun --nproc_per_node N`:
torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and MASTER_ADDR/PORT), and `init_distributed` then
joins the process group (gloo on CPU, nccl on GPU). Each rank sees its own shard of every epoch
(DistributedSampler), gradients are averaged by DistributedDataParallel, and only rank 0 writes
logs, checkpoints and plots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands: its rank, the number of processes, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` -> cuda:<local_rank> when a GPU is visible, else cpu; otherwise the device named."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return dev


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (idempotent); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = pick_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)


def shutdown() -> None:
    """Leave the process group (so torchrun sees a clean exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of a scalar over ranks (for logging a loss every rank agrees on)."""
    if not info.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's value of a picklable object on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap_model(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> torch.nn.Module:
    """DistributedDataParallel around `model` when distributed, the model itself otherwise.

    MAGNeT's loss reaches only the output head of the chosen stage, so its solver asks for
    `find_unused_parameters=True`.
    """
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (what gets saved, validated and exported)."""
    return model.module if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


class ShardedBatches:
    """Deterministic per-rank batches for any step: epoch orders from DistributedSampler, no state.

    The batch of step s is a pure function of (seed, s, rank), so a resumed run sees exactly the
    batches the killed run would have seen, without storing sampler state.
    """

    def __init__(self, n_items: int, batch_size: int, info: DistInfo, seed: int = 0, shuffle: bool = True):
        from torch.utils.data import DistributedSampler

        if n_items < 1:
            raise ValueError("no training items")
        self.batch_size = batch_size
        self._sampler = DistributedSampler(
            range(n_items), num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self._per_epoch = len(self._sampler)
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            self._sampler.set_epoch(epoch)
            self._orders[epoch] = list(iter(self._sampler))
            if len(self._orders) > 4:  # keep memory flat on long runs
                self._orders.pop(min(self._orders))
        return self._orders[epoch]

    @property
    def per_epoch(self) -> int:
        """Items this rank sees per epoch."""
        return self._per_epoch

    def __call__(self, step: int) -> list[int]:
        """Item indices of this rank's batch at `step` (epochs chained, so any batch size works)."""
        start = step * self.batch_size
        out = []
        for p in range(start, start + self.batch_size):
            out.append(self._order(p // self._per_epoch)[p % self._per_epoch])
        return out
