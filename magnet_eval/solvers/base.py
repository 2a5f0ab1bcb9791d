"""The training loop shared by the codec, MAGNeT and MusicGen solvers.

A `Solver` (solvers/interface.py) knows its model, its loss on a batch of item indices, its
validation metrics and how to export the model in the format `generate` loads. `fit` does
everything else the same way for all of them: AdamW with a warm-up + cosine schedule, gradient
clipping, optional EMA, bf16/fp16 autocast on GPU (solvers/optim.py), DDP under torchrun, a rich
progress bar with loss and tokens/s, a CSV log and a loss-curve PNG (solvers/train_log.py),
periodic checkpoints, and resumption from the last checkpoint after a kill (solvers/checkpoint.py).

Resumption is exact: the batch, crops, masks and stage of step s are drawn from generators seeded
by (seed, step, rank) (`StepRandom`), and the checkpoint holds model, optimizer, scheduler, grad
scaler, EMA, step and every rank's global RNG states, so a killed and resumed run reaches the same
weights as an uninterrupted one (on the same device and world size).

The solver contract is re-exported here (`from .base import Solver, StepOutput, StepRandom`), so a
solver module needs one import line.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import CheckpointError, MagnetEvalError
from ..progress import info as say
from ..progress import make_progress, warn
from . import distributed as D
from .checkpoint import (CHECKPOINT_NAME, DONE_NAME, load_checkpoint, rank_checksums, rng_state, save_checkpoint,
                         set_rng_state)
from .interface import Solver, StepOutput, StepRandom, TrainConfig, TrainResult, config_hash
from .optim import EMA, autocast_dtype, make_optimizer
from .train_log import LOG_NAME, PLOT_NAME, LossColumn, RateColumn, TrainLog, last_valid_metrics, plot_log

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "KILL_ENV", "Solver", "StepOutput", "StepRandom", "TrainConfig",
           "TrainResult", "config_hash", "fit", "load_checkpoint"]

CONFIG_NAME = "train_config.json"
KILL_ENV = "MAGNET_EVAL_KILL_AT_STEP"  # testing hook: SIGKILL this process right after that step


def fit(solver: Solver, cfg: TrainConfig, out_dir: Path | str, dist_info: Optional[D.DistInfo] = None) -> TrainResult:
    """Train `solver.model` for cfg.steps steps into out_dir, resuming from out_dir/checkpoint.pt if present."""
    out = Path(out_dir)
    dinfo = dist_info or D.init_distributed(cfg.device)
    main = dinfo.is_main
    device = dinfo.device
    if cfg.batch_size % dinfo.world_size:
        raise MagnetEvalError(f"--batch-size {cfg.batch_size} does not split evenly over {dinfo.world_size} processes")
    local_bs = cfg.batch_size // dinfo.world_size
    chash = config_hash(solver.config(), cfg)
    ckpt_path = out / CHECKPOINT_NAME
    log_path = out / LOG_NAME
    plot_path = out / PLOT_NAME
    if main:
        out.mkdir(parents=True, exist_ok=True)
    D.barrier(dinfo)

    ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if ckpt is not None and ckpt["config_hash"] != chash:
        raise CheckpointError(
            f"{out} holds a run with other settings (config {ckpt['config_hash']} vs {chash}); "
            "choose another --out, or delete its checkpoint.pt to start over"
        )
    if ckpt is not None and ckpt.get("world_size", 1) != dinfo.world_size:
        warn(f"resuming a {ckpt.get('world_size', 1)}-process run on {dinfo.world_size} processes: batches will differ")

    torch.manual_seed(cfg.seed)
    model = solver.model.to(device)
    optimizer, scheduler = make_optimizer(model, cfg)
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    start = 0
    elapsed0 = 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        start = int(ckpt["step"])
        elapsed0 = float(ckpt.get("elapsed_s", 0.0))
        rng = ckpt.get("rng") or []
        if dinfo.rank < len(rng) and rng[dinfo.rank] is not None:
            set_rng_state(rng[dinfo.rank])
        if main:
            say(f"resuming {solver.name} from {ckpt_path} at step {start}")
    if main:
        (out / CONFIG_NAME).write_text(
            json.dumps({"config_hash": chash, "solver": solver.config(), "train": asdict(cfg), "world_size": dinfo.world_size}, indent=2, default=str)
        )

    ddp_model = D.wrap_model(model, dinfo, solver.find_unused_parameters)
    batches = D.ShardedBatches(solver.n_train_items(), local_bs, dinfo, seed=cfg.seed)
    log = TrainLog(log_path, start) if main else None
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)

    def eval_model() -> Any:
        return ema.applied(model) if ema is not None else nullcontext()

    def run_validation(step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if main:
            model.eval()
            with eval_model(), torch.no_grad():
                metrics = solver.validate(model, device)
            model.train()
            log.add({"step": step, "phase": "valid", **metrics})
        D.barrier(dinfo)
        return metrics

    def save(step: int, elapsed: float) -> None:
        rng_states = [rng_state()]
        if dinfo.distributed:
            import torch.distributed as dist

            gathered: list = [None] * dinfo.world_size
            dist.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        if main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "ema": ema.state_dict() if ema is not None else None,
                "step": step,
                "elapsed_s": elapsed,
                "rng": rng_states,
                "config_hash": chash,
                "world_size": dinfo.world_size,
                "solver": solver.name,
            }
            save_checkpoint(state, ckpt_path)
            model.eval()
            with eval_model():
                exported[0] = solver.export(model, out)
            model.train()
            log.write()
            try:
                plot_log(log_path, plot_path, title=f"{solver.name} ({out.name})")
            except Exception as exc:  # a plot must never lose a run
                warn(f"loss-curve plot failed: {exc}")
        D.barrier(dinfo)

    exported: list[Optional[Path]] = [None]
    last_metrics: dict[str, float] = {}
    if start == 0 and solver.validate_untrained:
        last_metrics = run_validation(0)  # the untrained model, for comparison
        if main:
            log.write()

    model.train()
    t_start = time.perf_counter()
    window_loss, window_n, window_tokens, window_t = 0.0, 0, 0, time.perf_counter()
    progress = make_progress(LossColumn(), RateColumn(solver.token_unit)) if main else None
    task = None
    if progress is not None:
        progress.start()
        task = progress.add_task(f"train {solver.name}", total=cfg.steps, completed=start, loss=float("nan"), rate=0.0)
    try:
        for step in range(start, cfg.steps):
            rng = StepRandom(cfg.seed, step, dinfo.rank)
            indices = batches(step)
            autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
            with autocast:
                res = solver.train_loss(ddp_model, indices, rng, device)
            loss = res.loss
            if not torch.isfinite(loss.detach()).all():
                raise MagnetEvalError(
                    f"{solver.name}: the loss became {loss.item()} at step {step}; "
                    f"the last good checkpoint is {ckpt_path if ckpt_path.exists() else '(none yet)'}. Try a lower --lr."
                )
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if cfg.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            else:
                grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if ema is not None:
                ema.update(model)

            done = step + 1
            window_loss += float(loss.detach())
            window_n += 1
            window_tokens += res.n_tokens * dinfo.world_size
            if done % cfg.log_every == 0 or done == cfg.steps:
                now = time.perf_counter()
                rate = window_tokens / max(now - window_t, 1e-9)
                mean_loss = D.all_reduce_mean(window_loss / window_n, dinfo)
                if main:
                    extra = res.metrics  # this rank's last batch (rank 0)
                    log.add({
                        "step": done,
                        "phase": "train",
                        "loss": mean_loss,
                        "lr": optimizer.param_groups[0]["lr"],
                        "grad_norm": grad_norm,
                        "tokens_per_s": rate,
                        "elapsed_s": elapsed0 + now - t_start,
                        **extra,
                    })
                    log.write()  # small: rewritten whole so a kill never leaves a torn file
                if progress is not None:
                    progress.update(task, loss=mean_loss, rate=rate)
                window_loss, window_n, window_tokens, window_t = 0.0, 0, 0, now
            if progress is not None:
                progress.update(task, completed=done)
            if done % cfg.valid_every == 0 or done == cfg.steps:
                last_metrics = run_validation(done) or last_metrics
                window_t = time.perf_counter()  # tokens/s counts training time only
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save(done, elapsed0 + time.perf_counter() - t_start)
                window_t = time.perf_counter()
            if kill_at and done == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        if progress is not None:
            progress.stop()

    checksums = rank_checksums(model, dinfo)
    if len(set(checksums)) > 1:
        raise MagnetEvalError(f"{solver.name}: the {dinfo.world_size} processes ended with different weights "
                              f"(checksums {checksums}); distributed training is broken on this setup")
    if start >= cfg.steps and main:
        say(f"{solver.name}: {out} already trained to step {start} (>= {cfg.steps}); nothing to do")
        model.eval()
        with eval_model():
            exported[0] = solver.export(model, out)
    export_path = D.broadcast_object(str(exported[0]) if exported[0] else "", dinfo)
    if main:
        if not last_metrics:
            last_metrics = last_valid_metrics(log_path)
        (out / DONE_NAME).write_text(
            json.dumps({"config_hash": chash, "step": max(start, cfg.steps), "metrics": last_metrics, "export": str(export_path),
                        "world_size": dinfo.world_size, "rank_weight_checksums": checksums}, indent=2)
        )
    D.barrier(dinfo)
    return TrainResult(out, Path(export_path), ckpt_path, log_path, plot_path if plot_path.exists() else None, max(start, cfg.steps), last_metrics)
