"""`magnet-eval train codec|magnet|musicgen|suite`: train on a manifest, resumably, on one process or under torchrun.

Multi-process: `torchrun --nproc_per_node N --no-python magnet-eval train magnet ...` (gloo on CPU,
nccl on GPU; --batch-size is the global batch, split over the processes).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional

import typer

app = typer.Typer(no_args_is_help=True)

_DATA = typer.Option(..., "--data", help="Training manifest (.jsonl, or a folder with manifest.jsonl); labels['split'] picks train/valid.")
_OUT = typer.Option(..., "--out", help="Run folder: checkpoint.pt, train_log.csv, loss_curve.png and the exported model. Rerun to resume.")
_PRESET = typer.Option("tiny", "--preset", help="Model size: tiny | small | medium | large.")
_STEPS = typer.Option(None, "--steps", help="Optimiser steps (default: the tiny budget).")
_LR = typer.Option(None, "--lr", help="Peak learning rate.")
_SEGMENT = typer.Option(None, "--segment-seconds", help="Length of the random training crops.")
_SEED = typer.Option(0, "--seed")
_THREADS = typer.Option(1, "--threads", help="CPU threads for torch (0 = torch's default). 1 by default: tiny models on shared cores run far faster single-threaded; raise it on a dedicated machine.")


@dataclass(frozen=True)
class RunOptions:
    """The options every single-model train command ends with (cadence, schedule, precision, device, threads)."""

    checkpoint_every: Optional[int]
    valid_every: Optional[int]
    log_every: Optional[int]
    warmup: Optional[int]
    grad_clip: Optional[float]
    precision: Optional[str]
    device: Optional[str]
    threads: int

    def numbers(self) -> dict[str, Any]:
        """The numeric options for `_check`, in the order it reports them."""
        return {k: v for k, v in asdict(self).items() if k not in ("precision", "device")}

    def train_overrides(self) -> dict[str, Any]:
        """The TrainConfig fields these options override (None = the recipe's default)."""
        return {"checkpoint_every": self.checkpoint_every, "valid_every": self.valid_every, "log_every": self.log_every,
                "precision": self.precision, "device": self.device, "warmup_steps": self.warmup,
                "grad_clip": self.grad_clip}


_RUN_OPTIONS: dict[str, tuple[Any, Any]] = {  # RunOptions field -> (type, typer option), in --help order
    "checkpoint_every": (Optional[int], typer.Option(None, "--checkpoint-every")),
    "valid_every": (Optional[int], typer.Option(None, "--valid-every")),
    "log_every": (Optional[int], typer.Option(None, "--log-every")),
    "warmup": (Optional[int], typer.Option(None, "--warmup", help="Warm-up steps.")),
    "grad_clip": (Optional[float], typer.Option(None, "--grad-clip", help="Max gradient norm (0 = off).")),
    "precision": (Optional[str], typer.Option(None, "--precision", help="auto | fp32 | bf16 | fp16 (autocast is GPU-only).")),
    "device": (Optional[str], typer.Option(None, "--device", help="auto | cpu | cuda.")),
    "threads": (int, _THREADS),
}
assert list(_RUN_OPTIONS) == [f.name for f in fields(RunOptions)]


def with_run_options(func: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared run options (one definition) as a trailing `run: RunOptions` argument.

    Typer reads a command's options from its signature, so the wrapper's signature is the
    command's own options followed by the RunOptions fields; the call gathers them back.
    """
    own = [p for name, p in inspect.signature(func).parameters.items() if name != "run"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
              for name, (kind, option) in _RUN_OPTIONS.items()]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        run = RunOptions(**{name: kwargs.pop(name) for name in _RUN_OPTIONS})
        func(**kwargs, run=run)

    wrapper.__signature__ = inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared)
    hints = {k: v for k, v in func.__annotations__.items() if k not in ("run", "return")}
    wrapper.__annotations__ = {**hints, **{name: kind for name, (kind, _) in _RUN_OPTIONS.items()}, "return": None}
    return wrapper


def _check(data: Path, out: Path, *, codec: Optional[Path] = None, **numbers) -> None:
    """Options of every train command, checked before the data are read or a model built.

    numbers: option name -> value (None = default); steps/batch sizes/iterations are integers
    (> 0, or >= 0 for iteration counts, threads and clip caps), rates and lengths positive floats,
    dropout and EMA in [0, 1).
    """
    from ..errors import InvalidOptionError
    from ..validate import (existing_path, non_negative_float, non_negative_int, positive_float, positive_int,
                            probability, writable_output)

    existing_path(data, "--data")
    writable_output(out, "--out", kind="dir")
    if codec is not None and not Path(codec).expanduser().exists():  # the hint says where a codec comes from
        raise InvalidOptionError(f"--codec {codec}: does not exist; train one with `magnet-eval train codec` first")
    for name, value in numbers.items():
        if value is None:
            continue
        opt = "--" + name.replace("_", "-")
        if name in ("steps", "batch_size", "checkpoint_every", "valid_every", "log_every", "max_train_clips",
                    "dim", "num_layers", "num_heads", "codec_steps", "lm_steps"):
            positive_int(opt, value)
        elif name in ("threads", "kmeans_iters", "warmup"):
            non_negative_int(opt, value)
        elif name in ("lr", "segment_seconds"):
            positive_float(opt, value)
        elif name == "grad_clip":
            non_negative_float(opt, value)
        elif name in ("cond_dropout", "ema"):
            probability(opt, value, low_open=False, high_open=True)


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


def _finish() -> None:
    from ..solvers.distributed import shutdown

    shutdown()


@app.command()
@with_run_options
def codec(
    data: Path = _DATA,
    out: Path = _OUT,
    preset: str = _PRESET,
    steps: Optional[int] = _STEPS,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch of audio crops."),
    lr: Optional[float] = _LR,
    segment_seconds: Optional[float] = _SEGMENT,
    adversarial: bool = typer.Option(False, "--adversarial/--no-adversarial", help="Add a multi-scale STFT discriminator (off by default)."),
    seed: int = _SEED,
    max_train_clips: Optional[int] = typer.Option(None, "--max-train-clips", help="Use only the first N training clips."),
    kmeans_iters: int = typer.Option(10, "--kmeans-iters", help="k-means iterations of the codebooks' init on the first batch (EnCodec: 50)."),
    *,
    run: RunOptions,
) -> None:
    """Train the codec (multi-scale mel + waveform L1 + commitment losses); reports SI-SNR and mel distance."""
    from ..solvers.recipes import TINY, train_codec

    _check(data, out, steps=steps, batch_size=batch_size, lr=lr, segment_seconds=segment_seconds,
           max_train_clips=max_train_clips, kmeans_iters=kmeans_iters, **run.numbers())
    _threads(run.threads)
    path = train_codec(
        data, out, preset, steps or TINY.codec_steps, batch_size or TINY.codec_batch, lr or TINY.codec_lr,
        segment_seconds or TINY.codec_segment_seconds, adversarial=adversarial, seed=seed,
        max_train_clips=max_train_clips, kmeans_iters=kmeans_iters, train_overrides=run.train_overrides(),
    )
    _finish()
    typer.echo(str(path))


def _lm_command(kind: str):
    @with_run_options
    def command(
        data: Path = _DATA,
        out: Path = _OUT,
        codec: Path = typer.Option(..., "--codec", help="Codec checkpoint (compression_state_dict.bin or its run folder)."),
        preset: str = _PRESET,
        steps: Optional[int] = _STEPS,
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch of token crops."),
        lr: Optional[float] = _LR,
        segment_seconds: Optional[float] = _SEGMENT,
        cond_dropout: Optional[float] = typer.Option(None, "--cond-dropout", help="Condition dropout for CFG (default 0.3, audiocraft's text2music setting)."),
        text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="Override the preset's text encoder (minilm, t5-base)."),
        ema: float = typer.Option(0.0, "--ema", help="EMA decay of the weights (0 = off); exports use the EMA weights."),
        dim: Optional[int] = typer.Option(None, "--dim", help="Override the preset's transformer width."),
        num_layers: Optional[int] = typer.Option(None, "--num-layers", help="Override the preset's number of layers."),
        num_heads: Optional[int] = typer.Option(None, "--num-heads", help="Override the preset's attention heads."),
        hybrid: bool = typer.Option(False, "--hybrid", help="MAGNeT: train Hybrid-MAGNeT (causal next-frame loss on a random prefix + masked loss after it), for generate --hybrid-prefix."),
        seed: int = _SEED,
        *,
        run: RunOptions,
    ) -> None:
        from ..solvers import recipes

        _check(data, out, codec=codec, steps=steps, batch_size=batch_size, lr=lr, segment_seconds=segment_seconds,
               cond_dropout=cond_dropout, ema=ema, dim=dim, num_layers=num_layers, num_heads=num_heads,
               **run.numbers())
        _threads(run.threads)
        path = recipes.train_lm(
            kind, data, out, codec, preset, steps or recipes.TINY.lm_steps, batch_size or recipes.TINY.lm_batch,
            lr or recipes.TINY.lm_lr, segment_seconds or recipes.TINY.lm_segment_seconds, cond_dropout=cond_dropout,
            seed=seed, ema=ema, text_encoder=text_encoder, train_overrides=run.train_overrides(),
            lm_overrides={k: v for k, v in {"dim": dim, "num_layers": num_layers, "num_heads": num_heads}.items() if v},
            **({"hybrid": True} if hybrid else {}),
        )
        _finish()
        typer.echo(str(path))

    return command


app.command(name="magnet", help="Train MAGNeT (span-masked, one codebook stage per step) on cached codec tokens.")(_lm_command("magnet"))
app.command(name="musicgen", help="Train the MusicGen baseline (next-token CE over delayed streams) on cached codec tokens.")(_lm_command("musicgen"))
# `train stemgen` and `train vampnet` (which use the shared options above) are added in cli/__init__.py,
# so that this module and theirs do not import each other


@app.command()
def suite(
    data: Path = _DATA,
    out: Path = _OUT,
    codec_steps: Optional[int] = typer.Option(None, "--codec-steps"),
    lm_steps: Optional[int] = typer.Option(None, "--lm-steps"),
    seed: int = _SEED,
    threads: int = _THREADS,
) -> None:
    """The tiny preset end to end: codec, then MAGNeT and MusicGen on its tokens (finished parts are reused)."""
    from dataclasses import replace

    from ..solvers.recipes import TINY, train_tiny_suite

    _check(data, out, codec_steps=codec_steps, lm_steps=lm_steps, threads=threads)
    _threads(threads)
    budget = replace(TINY, **{k: v for k, v in {"codec_steps": codec_steps, "lm_steps": lm_steps}.items() if v})
    paths = train_tiny_suite(data, out, budget, seed=seed, threads=threads or None)
    _finish()
    for name, p in paths.items():
        typer.echo(f"{name}\t{p}")
