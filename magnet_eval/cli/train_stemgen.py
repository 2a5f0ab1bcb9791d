"""`magnet-eval train stemgen`: StemGen on a stem corpus (the rendered corpus's manifest, Slakh2100 or MUSDB18-HQ)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .train import _OUT, _SEED, RunOptions, _check, _finish, _threads, with_run_options


@with_run_options
def command(
    data: Path = typer.Option(..., "--data", help="Stem corpus: a manifest with stems (.jsonl / folder), a Slakh2100 folder or a MUSDB18-HQ folder."),
    out: Path = _OUT,
    codec: Path = typer.Option(..., "--codec", help="Codec checkpoint (compression_state_dict.bin or its run folder)."),
    preset: str = typer.Option("stemgen-tiny", "--preset", help="stemgen-tiny | stemgen-paper."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default 300, the tiny budget)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch of (context, stem) token crops."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    segment_seconds: Optional[float] = typer.Option(None, "--segment-seconds", help="Length of the random training crops."),
    silent_context: float = typer.Option(0.1, "--silent-context", help="Probability that an example's context is silence (generation from nothing)."),
    drop_context: float = typer.Option(0.2, "--drop-context", help="Dropout of the audio context for guidance."),
    drop_instrument: float = typer.Option(0.2, "--drop-instrument", help="Dropout of the instrument for guidance."),
    seed: int = _SEED,
    *,
    run: RunOptions,
) -> None:
    """Train StemGen (one codebook level per step, context and instrument dropped for multi-source guidance)."""
    from ..solvers.recipes import TINY
    from ..solvers.stemgen import train_stemgen
    from ..validate import probability

    _check(data, out, codec=codec, steps=steps, batch_size=batch_size, lr=lr, segment_seconds=segment_seconds,
           **run.numbers())
    for opt, v in (("--silent-context", silent_context), ("--drop-context", drop_context),
                   ("--drop-instrument", drop_instrument)):
        probability(opt, v, low_open=False, high_open=True)
    _threads(run.threads)
    path = train_stemgen(data, out, codec, preset, steps or TINY.lm_steps, batch_size or TINY.lm_batch,
                         lr or TINY.lm_lr, segment_seconds or TINY.lm_segment_seconds, seed=seed,
                         p_drop_context=drop_context, p_drop_instrument=drop_instrument,
                         silent_context_prob=silent_context, train_overrides=run.train_overrides())
    _finish()
    typer.echo(str(path))
