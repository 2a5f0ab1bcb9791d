"""What a solver is and what defines a run: the contract every solver (codec, MAGNeT, MusicGen...) implements.

A `Solver` knows its model, its loss on a batch of item indices, its validation metrics and how
to export the model in the format `generate` loads; `TrainConfig` holds the optimisation and
bookkeeping settings; `StepRandom` gives each step its seeded generators; `config_hash` names
the settings a resumed run must share. The loop that drives a solver is `base.fit`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..errors import MagnetEvalError

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
