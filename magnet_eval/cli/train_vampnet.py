"""`magnet-eval train vampnet`: a VampNet coarse or coarse-to-fine model on cached codec tokens (no text)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .train import _DATA, _OUT, _SEED, RunOptions, _check, _finish, _threads, with_run_options


@with_run_options
def command(
    part: str = typer.Option(..., "--part", help="coarse (the first n_coarse codebooks) | c2f (the rest, given the coarse ones)."),
    data: Path = _DATA,
    out: Path = _OUT,
    codec: Path = typer.Option(..., "--codec", help="Codec checkpoint (compression_state_dict.bin or its run folder)."),
    preset: str = typer.Option("vampnet-tiny", "--preset", help="vampnet-tiny | vampnet-paper."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default 200, the tiny budget)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch of token crops (default 8)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 2e-3)."),
    segment_seconds: Optional[float] = typer.Option(None, "--segment-seconds", help="Training crops (default: the part's chunk, coarse 10 s / c2f 3 s)."),
    seed: int = _SEED,
    *,
    run: RunOptions,
) -> None:
    """Train VampNet (coarse or c2f): a mask ratio per example from the cosine schedule, loss on masked tokens only."""
    from ..models.vampnet import PRESETS
    from ..solvers.vampnet import PARTS, TINY_VAMPNET as B, train_vampnet
    from ..validate import one_of

    one_of("--part", part, list(PARTS))
    one_of("--preset", preset, list(PRESETS))
    _check(data, out, codec=codec, steps=steps, batch_size=batch_size, lr=lr, segment_seconds=segment_seconds,
           **run.numbers())
    _threads(run.threads)
    path = train_vampnet(part, data, out, codec, preset, steps or B.steps, batch_size or B.batch_size, lr or B.lr,
                         segment_seconds, seed=seed, train_overrides=run.train_overrides())
    _finish()
    typer.echo(str(path))
