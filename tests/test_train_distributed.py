"""Two CPU processes (gloo) through the shared loop: sharded batches, identical weights afterwards."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from magnet_eval.solvers import distributed as D


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ["MAGNET_EVAL_NO_PROGRESS"] = "1"
    torch.set_num_threads(1)
    from test_train_loop import ToySolver, _cfg  # the test folder is on sys.path under pytest

    from magnet_eval.solvers.base import fit

    seen: list[int] = []

    class Recording(ToySolver):
        def train_loss(self, model, indices, rng, device):
            seen.extend(indices)
            return super().train_loss(model, indices, rng, device)

    solver = Recording()
    info = D.init_distributed("cpu")
    assert info.world_size == world and info.rank == rank and info.backend == "gloo"
    fit(solver, _cfg(steps=6, checkpoint_every=3, valid_every=3, log_every=2), Path(out), dist_info=info)
    torch.save(solver.model.state_dict(), Path(out) / f"rank{rank}.pt")
    (Path(out) / f"seen{rank}.json").write_text(json.dumps(seen))
    D.shutdown()


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    exported = torch.load(tmp_path / "toy_export.pt")  # written by rank 0 only
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
        assert torch.equal(w0[k], exported[k]), k
    # the weights moved from their initialisation
    from test_train_loop import ToySolver

    init = ToySolver().model.state_dict()
    assert any(not torch.equal(init[k], w0[k]) for k in init)
    # each rank trained on its own shard: 6 steps x 4 items, disjoint within an epoch (64 items / 2 ranks)
    s0 = json.loads((tmp_path / "seen0.json").read_text())
    s1 = json.loads((tmp_path / "seen1.json").read_text())
    assert len(s0) == len(s1) == 24
    assert not set(s0) & set(s1)
    done = json.loads((tmp_path / "train_done.json").read_text())
    assert len(done["rank_weight_checksums"]) == 2 and len(set(done["rank_weight_checksums"])) == 1
    # rank 0 alone wrote the log and the checkpoint
    assert (tmp_path / "train_log.csv").exists() and (tmp_path / "checkpoint.pt").exists()


def test_sharded_batches_cover_an_epoch_and_are_reproducible():
    a = [D.ShardedBatches(10, 3, D.DistInfo(rank=r, world_size=2), seed=1) for r in (0, 1)]
    epoch0 = a[0](0) + a[0](1)[:2] + a[1](0) + a[1](1)[:2]
    assert sorted(epoch0) == list(range(10))
    b = D.ShardedBatches(10, 3, D.DistInfo(rank=0, world_size=2), seed=1)
    assert [b(s) for s in (5, 0, 3)] == [a[0](5), a[0](0), a[0](3)]
    c = D.ShardedBatches(10, 3, D.DistInfo(rank=0, world_size=2), seed=2)
    assert [c(s) for s in range(4)] != [a[0](s) for s in range(4)]
