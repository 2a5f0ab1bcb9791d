"""The training loop shared by the codec, MAGNeT and MusicGen solvers.

A `Solver` knows its model, its loss on a batch of item indices, its validation metrics and how
to export the model in the format `generate` loads. `fit` does everything else the same way for
all of them: AdamW with a warm-up + cosine schedule, gradient clipping, optional EMA, bf16/fp16
autocast on GPU, DDP under torchrun, a rich progress bar with loss and tokens/s, a CSV log and a
loss-curve PNG, periodic checkpoints, and resumption from the last checkpoint after a kill.

Resumption is exact: the batch, crops, masks and stage of step s are drawn from generators seeded
by (seed, step, rank) (`StepRandom`), and the checkpoint holds model, optimizer, scheduler, grad
scaler, EMA, step and every rank's global RNG states, so a killed and resumed run reaches the same
weights as an uninterrupted one (on the same device and world size).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ..errors import CheckpointError, MagnetEvalError
from ..progress import info as say
from ..progress import make_progress, warn
from . import distributed as D

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.csv"
PLOT_NAME = "loss_curve.png"
CONFIG_NAME = "train_config.json"
DONE_NAME = "train_done.json"
KILL_ENV = "MAGNET_EVAL_KILL_AT_STEP"  # testing hook: SIGKILL this process right after that step

# Settings that may change between a killed run and its resumption without invalidating it.
_RESUMABLE_KEYS = ("steps", "warmup_steps", "checkpoint_every", "log_every", "valid_every", "device")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings common to every solver."""

    steps: int = 1000
    batch_size: int = 16  # global batch: split evenly over the ranks
    lr: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 100
    lr_min_ratio: float = 0.0  # the cosine ends at lr * lr_min_ratio
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    ema_decay: float = 0.0  # 0 disables; otherwise validation and exports use the EMA weights
    checkpoint_every: int = 100
    log_every: int = 10
    valid_every: int = 100
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16/fp16 on GPU, fp32 on CPU)
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise MagnetEvalError(f"--steps must be >= 1 (got {self.steps})")
        if self.batch_size < 1:
            raise MagnetEvalError(f"--batch-size must be >= 1 (got {self.batch_size})")
        if self.lr <= 0:
            raise MagnetEvalError(f"--lr must be > 0 (got {self.lr})")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise MagnetEvalError(f"precision must be auto|fp32|bf16|fp16 (got {self.precision!r})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise MagnetEvalError(f"--ema must be in [0, 1) (got {self.ema_decay})")
        for name in ("checkpoint_every", "log_every", "valid_every"):
            if getattr(self, name) < 1:
                raise MagnetEvalError(f"{name} must be >= 1")


class StepRandom:
    """Random generators of one step: `shared` is the same on every rank, `local` differs per rank."""

    def __init__(self, seed: int, step: int, rank: int):
        self.shared = torch.Generator().manual_seed(_mix(seed, step, 0x5EED))
        self.local = torch.Generator().manual_seed(_mix(seed, step, rank + 1))


def _mix(*ints: int) -> int:
    digest = hashlib.sha256(("/".join(str(i) for i in ints)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class StepOutput:
    """What a solver's loss returns: the scalar to minimise, the tokens it covered, extra scalars to log."""

    loss: torch.Tensor
    n_tokens: int
    metrics: dict[str, float] = field(default_factory=dict)


class Solver(ABC):
    """One kind of training (codec, MAGNeT, MusicGen): model, loss, validation, export."""

    name: str = "solver"
    token_unit: str = "tok"  # what `n_tokens` counts, for the tokens/s display
    find_unused_parameters: bool = False  # DDP setting (MAGNeT: only one head gets a loss)
    validate_untrained: bool = True  # validate at step 0 too (the untrained baseline in the log)
    model: torch.nn.Module

    @abstractmethod
    def n_train_items(self) -> int:
        """Number of training items the sampler shards."""

    @abstractmethod
    def train_loss(self, model: torch.nn.Module, indices: list[int], rng: StepRandom, device: torch.device) -> StepOutput:
        """Loss of one batch; `model` may be the DDP wrapper (call it, do not reach inside)."""

    @abstractmethod
    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """Validation metrics (deterministic: fixed crops, masks and seeds), keys prefixed `valid_`."""

    @abstractmethod
    def export(self, model: torch.nn.Module, folder: Path) -> Path:
        """Write the model in the format `generate` loads; returns the exported path."""

    def config(self) -> dict:
        """Everything that defines this training besides TrainConfig (hashed to recognise a run)."""
        return {"solver": self.name}


@dataclass
class TrainResult:
    """Where a finished run left its files, and its last metrics."""

    out_dir: Path
    export: Path
    checkpoint: Path
    log: Path
    plot: Optional[Path]
    step: int
    metrics: dict[str, float]


def config_hash(solver_config: dict, train_config: TrainConfig) -> str:
    """A stable hash of a run's defining settings (the ones a resumed run must share)."""
    tc = {k: v for k, v in asdict(train_config).items() if k not in _RESUMABLE_KEYS}
    blob = json.dumps({"solver": solver_config, "train": tc}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then a half cosine down to lr_min_ratio at the last step."""
    warm = min(cfg.warmup_steps, max(cfg.steps - 1, 0))
    if warm > 0 and step < warm:
        return (step + 1) / warm
    span = max(cfg.steps - warm, 1)
    progress = min(max(step - warm, 0) / span, 1.0)
    return cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of the parameters (float32 shadow copies)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].mul_(self.decay).add_(p.detach().float(), alpha=1 - self.decay)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Temporarily put the EMA weights into `model` (for validation and export)."""
        backup = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.shadow}
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self.shadow:
                    p.copy_(self.shadow[n].to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in backup:
                        p.copy_(backup[n])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        for n, t in state["shadow"].items():
            if n in self.shadow:
                self.shadow[n].copy_(t)


def _precision(cfg: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    if device.type != "cuda":
        if cfg.precision in ("bf16", "fp16"):
            warn(f"precision {cfg.precision} is for GPUs; training in fp32 on {device}")
        return None
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "fp16":
        return torch.float16
    if cfg.precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):
            warn("could not restore the CUDA RNG state (different GPU count); continuing")


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint written by `fit`, or CheckpointError saying what is wrong with it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or foreign file
        raise CheckpointError(f"cannot read training checkpoint {path}: {exc}. Delete it to restart the run.") from exc
    for key in ("model", "optimizer", "scheduler", "step", "config_hash"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is not a magnet-eval training checkpoint (no {key!r})")
    return ckpt


class _Log:
    """The CSV training log: one row per logged train step or validation, rewritten whole (it is small)."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        self.rows: list[dict] = []
        if path.exists() and resume_step > 0:
            import pandas as pd

            try:
                old = pd.read_csv(path)
                old = old[old["step"] <= resume_step]
                self.rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))} for r in old.to_dict("records")]
            except Exception:
                warn(f"could not read the old log {path}; starting a new one")

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def write(self) -> None:
        import pandas as pd

        cols: list[str] = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        df = pd.DataFrame(self.rows, columns=cols)
        tmp = self.path.with_name(self.path.name + ".tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.path)


def plot_log(log_csv: Path, out_png: Path, title: str = "") -> Optional[Path]:
    """Loss curves (train, validation), then validation accuracies, then each other validation metric."""
    import pandas as pd

    df = pd.read_csv(log_csv)
    if df.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = df[df["phase"] == "train"]
    valid = df[df["phase"] == "valid"]
    metrics = [c for c in valid.columns if c.startswith("valid_") and "loss" not in c and valid[c].notna().any()]
    accuracy = [c for c in metrics if "accuracy" in c]
    others = [c for c in metrics if c not in accuracy][:3]
    panels = 1 + bool(accuracy) + len(others)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0, 0]
    if not train.empty:
        ax.plot(train["step"], train["loss"], label="train loss", lw=1)
    if "valid_loss" in valid and valid["valid_loss"].notna().any():
        ax.plot(valid["step"], valid["valid_loss"], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "training")
    ax.grid(alpha=0.3)
    ax.legend()
    i = 1
    if accuracy:
        ax = axes[0, i]
        for c in accuracy:
            bold = c in ("valid_accuracy", "valid_unigram_accuracy")
            ax.plot(valid["step"], valid[c], "o-" if bold else "-", lw=2 if bold else 0.8, label=c[len("valid_"):])
        ax.set_xlabel("step")
        ax.set_title("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        i += 1
    for c in others:
        ax = axes[0, i]
        ax.plot(valid["step"], valid[c], "o-")
        ax.set_xlabel("step")
        ax.set_title(c[len("valid_"):].replace("_", " "))
        ax.grid(alpha=0.3)
        i += 1
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


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
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    amp_dtype = _precision(cfg, device)
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
            _set_rng_state(rng[dinfo.rank])
        if main:
            say(f"resuming {solver.name} from {ckpt_path} at step {start}")
    if main:
        (out / CONFIG_NAME).write_text(
            json.dumps({"config_hash": chash, "solver": solver.config(), "train": asdict(cfg), "world_size": dinfo.world_size}, indent=2, default=str)
        )

    ddp_model = D.wrap_model(model, dinfo, solver.find_unused_parameters)
    batches = D.ShardedBatches(solver.n_train_items(), local_bs, dinfo, seed=cfg.seed)
    log = _Log(log_path, start) if main else None
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
        rng_states = [_rng_state()]
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
            _atomic_save(state, ckpt_path)
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
    progress = make_progress(_LossColumn(), _RateColumn(solver.token_unit)) if main else None
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

    rank_checksums = _rank_checksums(model, dinfo)
    if len(set(rank_checksums)) > 1:
        raise MagnetEvalError(f"{solver.name}: the {dinfo.world_size} processes ended with different weights "
                              f"(checksums {rank_checksums}); distributed training is broken on this setup")
    if start >= cfg.steps and main:
        say(f"{solver.name}: {out} already trained to step {start} (>= {cfg.steps}); nothing to do")
        model.eval()
        with eval_model():
            exported[0] = solver.export(model, out)
    export_path = D.broadcast_object(str(exported[0]) if exported[0] else "", dinfo)
    if main:
        if not last_metrics:
            last_metrics = _last_valid(log_path)
        (out / DONE_NAME).write_text(
            json.dumps({"config_hash": chash, "step": max(start, cfg.steps), "metrics": last_metrics, "export": str(export_path),
                        "world_size": dinfo.world_size, "rank_weight_checksums": rank_checksums}, indent=2)
        )
    D.barrier(dinfo)
    return TrainResult(out, Path(export_path), ckpt_path, log_path, plot_path if plot_path.exists() else None, max(start, cfg.steps), last_metrics)


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, shapes, bytes): equal iff the weights are identical."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(k.encode() + str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _rank_checksums(model: torch.nn.Module, dinfo: D.DistInfo) -> list[str]:
    """Every rank's weights checksum (on every rank): DDP must leave them all equal."""
    mine = weights_checksum(model)
    if not dinfo.distributed:
        return [mine]
    import torch.distributed as dist

    out: list = [None] * dinfo.world_size
    dist.all_gather_object(out, mine)
    return [str(x) for x in out]


def _last_valid(log_csv: Path) -> dict[str, float]:
    import pandas as pd

    if not log_csv.exists():
        return {}
    df = pd.read_csv(log_csv)
    v = df[df["phase"] == "valid"]
    if v.empty:
        return {}
    row = v.iloc[-1]
    return {k: float(row[k]) for k in v.columns if k.startswith("valid_") and not pd.isna(row[k])}


def completed_run(out_dir: Path | str, solver_config: dict, cfg: TrainConfig) -> Optional[dict]:
    """The `train_done.json` of a finished run in out_dir with the same settings and steps, else None."""
    done = Path(out_dir) / DONE_NAME
    if not done.exists():
        return None
    try:
        meta = json.loads(done.read_text())
    except json.JSONDecodeError:
        return None
    if meta.get("config_hash") != config_hash(solver_config, cfg) or int(meta.get("step", -1)) < cfg.steps:
        return None
    if not Path(meta.get("export", "")).exists():
        return None
    return meta


from rich.progress import ProgressColumn  # noqa: E402  (kept next to its only users)
from rich.text import Text  # noqa: E402


class _LossColumn(ProgressColumn):
    def render(self, task) -> Text:
        loss = task.fields.get("loss", float("nan"))
        return Text("loss " + ("--" if loss != loss else f"{loss:.3f}"))


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        rate = task.fields.get("rate", 0.0)
        return Text(f"{rate:,.0f} {self.unit}/s")
