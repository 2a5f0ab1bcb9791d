"""`magnet-eval bench`: performance benchmarks (latency and throughput vs batch size)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Performance benchmarks (latency vs batch size)."""


def _parse_value(text: str):
    """'20,10,10,10' -> [20, 10, 10, 10]; '0.9' -> 0.9; 'true' -> True; else the string."""
    if "," in text:
        return [_parse_value(t) for t in text.split(",") if t.strip()]
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@app.command("latency")
def latency(
    models: str = typer.Option("magnet-small,musicgen-small", "--models", "-m", help="Comma list of presets (magnet-tiny|small|medium|large, musicgen-*; random weights at the real architecture), checkpoint paths or hub names; NAME=SPEC to rename."),
    batch_sizes: str = typer.Option("1,2,4,8,16,32,64", "--batch-sizes", "-b", help="Comma list of batch sizes."),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Seconds of audio per sample (default: 10 on cuda, 1 on cpu: reduced so small/medium models run on CPU)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed runs before timing each point."),
    repeats: int = typer.Option(3, "--repeats", help="Timed runs per point (median, IQR, min, max)."),
    warmup_once: bool = typer.Option(False, "--warmup-once", help="Warm up before each model's first point only (enough on CPU; GPU kernels are picked per shape)."),
    out: Path = typer.Option(Path("bench-latency"), "--out", "-o", help="Output folder: latency.csv and latency.png (resumed: points already there are skipped)."),
    checkpoint: List[str] = typer.Option([], "--checkpoint", help="[NAME=]PATH of a checkpoint to time as well; repeatable."),
    prompts: Optional[str] = typer.Option(None, "--prompts", help="Prompts: a manifest (.jsonl / folder) or a literal text (default: four fixed music prompts)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Seconds per point: larger batch sizes estimated over it are skipped and repeats cut short."),
    seed: int = typer.Option(0, "--seed"),
    param: List[str] = typer.Option([], "--param", help="Decoding parameter KEY=VALUE passed to generate (e.g. decoding_steps=20,10,10,10); repeatable."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore points already in the CSV and measure everything again."),
) -> None:
    """Latency and throughput vs batch size per model (CSV + Figure-2-style PNG); OOM is recorded, not fatal."""
    from ..bench.latency import CSV_NAME, DTYPES, PNG_NAME, run_latency_benchmark
    from ..errors import MagnetEvalError
    from ..progress import info
    from ..validate import (decoding_options, generation_duration, non_empty_text, non_negative_int, one_of,
                            positive_float, positive_int, writable_output)

    try:
        sizes = [int(b) for b in batch_sizes.split(",") if b.strip()]
    except ValueError as exc:
        raise MagnetEvalError(f"--batch-sizes must be a comma list of integers, got {batch_sizes!r}") from exc
    if not sizes:
        raise MagnetEvalError(f"--batch-sizes is empty ({batch_sizes!r}): give e.g. 1,2,4")
    for b in sizes:
        positive_int("--batch-sizes", b)
    if duration is not None:
        generation_duration("--duration", duration)
    one_of("--dtype", str(dtype).lower(), DTYPES)
    non_negative_int("--warmup", warmup)
    positive_int("--repeats", repeats)
    if time_budget is not None:
        positive_float("--time-budget", time_budget)
    if prompts is not None:
        non_empty_text("--prompts", prompts)
    if not checkpoint:
        non_empty_text("--models", models)
    writable_output(out, "--out", kind="dir")
    params = {}
    for p in param:
        if "=" not in p:
            raise MagnetEvalError(f"--param expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        params[k.strip()] = _parse_value(v.strip())
    decoding_options(params, prefix="--param ")
    table = run_latency_benchmark(models, sizes, out_dir=out, duration=duration, device=device, dtype=dtype,
                                  warmup=warmup, repeats=repeats, warmup_once=warmup_once, time_budget_s=time_budget,
                                  checkpoints=checkpoint, prompts=prompts, seed=seed, params=params, resume=not fresh)
    _print(table)
    info(f"wrote {out / CSV_NAME} and {out / PNG_NAME}")


def _print(table) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..report.tables import fmt_number

    t = Table(title="latency vs batch size")
    for col in ("model", "batch", "duration (s)", "status", "median (s)", "IQR (s)", "samples/s", "RTF", "steps",
                "forwards", "peak MB"):
        t.add_column(col, justify="left" if col in ("model", "status") else "right")
    for r in table.itertuples():
        t.add_row(str(r.model), str(r.batch_size), fmt_number(float(r.duration_s)), str(r.status),
                  fmt_number(float(r.latency_median_s)), fmt_number(float(r.latency_iqr_s)),
                  fmt_number(float(r.samples_per_s)), fmt_number(float(r.rtf)), fmt_number(float(r.decoding_steps)),
                  fmt_number(float(r.forward_passes)), fmt_number(float(r.peak_memory_mb)))
    Console(width=160).print(t)
