"""The optimisation side of a run: AdamW parameter groups, warm-up + cosine schedule, EMA, autocast dtype."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

from ..progress import warn
from .interface import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (weight decay on matrices only, not on biases and norms) and its `lr_factor` schedule."""
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
    return optimizer, scheduler


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


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of `cfg.precision` on `device` (None: fp32; reduced precision is GPU-only)."""
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
