"""`magnet-eval train codec|magnet|musicgen|suite`: train on a manifest, resumably, on one process or under torchrun.

Multi-process: `torchrun --nproc_per_node N --no-python magnet-eval train magnet ...` (gloo on CPU,
nccl on GPU; --batch-size is the global batch, split over the processes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)

_DATA = typer.Option(..., "--data", help="Training manifest (.jsonl, or a folder with manifest.jsonl); labels['split'] picks train/valid.")
_OUT = typer.Option(..., "--out", help="Run folder: checkpoint.pt, train_log.csv, loss_curve.png and the exported model. Rerun to resume.")
_PRESET = typer.Option("tiny", "--preset", help="Model size: tiny | small | medium | large.")


def _overrides(checkpoint_every, valid_every, log_every, precision, device, warmup, grad_clip) -> dict:
    return {"checkpoint_every": checkpoint_every, "valid_every": valid_every, "log_every": log_every,
            "precision": precision, "device": device, "warmup_steps": warmup, "grad_clip": grad_clip}


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


def _finish() -> None:
    from ..solvers.distributed import shutdown

    shutdown()


@app.command()
def codec(
    data: Path = _DATA,
    out: Path = _OUT,
    preset: str = _PRESET,
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default: the tiny budget)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch of audio crops."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
    segment_seconds: Optional[float] = typer.Option(None, "--segment-seconds", help="Length of the random training crops."),
    adversarial: bool = typer.Option(False, "--adversarial/--no-adversarial", help="Add a multi-scale STFT discriminator (off by default)."),
    seed: int = typer.Option(0, "--seed"),
    max_train_clips: Optional[int] = typer.Option(None, "--max-train-clips", help="Use only the first N training clips."),
    kmeans_iters: int = typer.Option(10, "--kmeans-iters", help="k-means iterations of the codebooks' init on the first batch (EnCodec: 50)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every"),
    valid_every: Optional[int] = typer.Option(None, "--valid-every"),
    log_every: Optional[int] = typer.Option(None, "--log-every"),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up steps."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Max gradient norm (0 = off)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto | fp32 | bf16 | fp16 (autocast is GPU-only)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda."),
    threads: int = typer.Option(1, "--threads", help="CPU threads for torch (0 = torch's default). 1 by default: tiny models on shared cores run far faster single-threaded; raise it on a dedicated machine."),
) -> None:
    """Train the codec (multi-scale mel + waveform L1 + commitment losses); reports SI-SNR and mel distance."""
    from ..solvers.recipes import TINY, train_codec

    _threads(threads)
    path = train_codec(
        data, out, preset, steps or TINY.codec_steps, batch_size or TINY.codec_batch, lr or TINY.codec_lr,
        segment_seconds or TINY.codec_segment_seconds, adversarial=adversarial, seed=seed,
        max_train_clips=max_train_clips, kmeans_iters=kmeans_iters,
        train_overrides=_overrides(checkpoint_every, valid_every, log_every, precision, device, warmup, grad_clip),
    )
    _finish()
    typer.echo(str(path))


def _lm_command(kind: str):
    def command(
        data: Path = _DATA,
        out: Path = _OUT,
        codec: Path = typer.Option(..., "--codec", help="Codec checkpoint (compression_state_dict.bin or its run folder)."),
        preset: str = _PRESET,
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default: the tiny budget)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch of token crops."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate."),
        segment_seconds: Optional[float] = typer.Option(None, "--segment-seconds", help="Length of the random training crops."),
        cond_dropout: Optional[float] = typer.Option(None, "--cond-dropout", help="Condition dropout for CFG (default 0.3, audiocraft's text2music setting)."),
        text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="Override the preset's text encoder (minilm, t5-base)."),
        ema: float = typer.Option(0.0, "--ema", help="EMA decay of the weights (0 = off); exports use the EMA weights."),
        dim: Optional[int] = typer.Option(None, "--dim", help="Override the preset's transformer width."),
        num_layers: Optional[int] = typer.Option(None, "--num-layers", help="Override the preset's number of layers."),
        num_heads: Optional[int] = typer.Option(None, "--num-heads", help="Override the preset's attention heads."),
        seed: int = typer.Option(0, "--seed"),
        checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every"),
        valid_every: Optional[int] = typer.Option(None, "--valid-every"),
        log_every: Optional[int] = typer.Option(None, "--log-every"),
        warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up steps."),
        grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Max gradient norm (0 = off)."),
        precision: Optional[str] = typer.Option(None, "--precision", help="auto | fp32 | bf16 | fp16 (autocast is GPU-only)."),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda."),
        threads: int = typer.Option(1, "--threads", help="CPU threads for torch (0 = torch's default). 1 by default: tiny models on shared cores run far faster single-threaded; raise it on a dedicated machine."),
    ) -> None:
        from ..solvers import recipes

        _threads(threads)
        fn = recipes.train_magnet if kind == "magnet" else recipes.train_musicgen
        path = fn(
            data, out, codec, preset, steps or recipes.TINY.lm_steps, batch_size or recipes.TINY.lm_batch,
            lr or recipes.TINY.lm_lr, segment_seconds or recipes.TINY.lm_segment_seconds, cond_dropout=cond_dropout,
            seed=seed, ema=ema, text_encoder=text_encoder,
            train_overrides=_overrides(checkpoint_every, valid_every, log_every, precision, device, warmup, grad_clip),
            lm_overrides={k: v for k, v in {"dim": dim, "num_layers": num_layers, "num_heads": num_heads}.items() if v},
        )
        _finish()
        typer.echo(str(path))

    return command


app.command(name="magnet", help="Train MAGNeT (span-masked, one codebook stage per step) on cached codec tokens.")(_lm_command("magnet"))
app.command(name="musicgen", help="Train the MusicGen baseline (next-token CE over delayed streams) on cached codec tokens.")(_lm_command("musicgen"))


@app.command()
def suite(
    data: Path = _DATA,
    out: Path = _OUT,
    codec_steps: Optional[int] = typer.Option(None, "--codec-steps"),
    lm_steps: Optional[int] = typer.Option(None, "--lm-steps"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads", help="CPU threads for torch (0 = torch's default). 1 by default: tiny models on shared cores run far faster single-threaded; raise it on a dedicated machine."),
) -> None:
    """The tiny preset end to end: codec, then MAGNeT and MusicGen on its tokens (finished parts are reused)."""
    from dataclasses import replace

    from ..solvers.recipes import TINY, train_tiny_suite

    _threads(threads)
    budget = replace(TINY, **{k: v for k, v in {"codec_steps": codec_steps, "lm_steps": lm_steps}.items() if v})
    paths = train_tiny_suite(data, out, budget, seed=seed, threads=threads or None)
    _finish()
    for name, p in paths.items():
        typer.echo(f"{name}\t{p}")
