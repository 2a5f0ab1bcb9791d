"""Latency and throughput against batch size (the MAGNeT paper's Figure 2), for any generator.

Why random weights are enough: the time of a generation is set by the architecture (layers,
width, heads, number of decoding steps, sequence length, batch size) and the hardware, not by
the values of the weights; MAGNeT's decoding schedule is fixed ([20, 10, 10, 10] steps) and
MusicGen's is one step per frame, whatever the tokens. So presets (`magnet-small`,
`musicgen-small`, ...) are built at their real size with random weights; a checkpoint can be
given instead to time exactly what is shipped.

This module is the sweep: which (model, batch size) points to run, in what order, and what is
kept. How one point is timed (warm-up, synchronisation, statistics, peak memory, step counts)
is `bench.measure`.

Bounded and robust: out-of-memory at a batch size is recorded (status "oom") and larger batch
sizes of that model are not tried; a per-point time budget skips batch sizes whose estimated
time (from the previous batch size) exceeds it and cuts timed repeats short; every finished
point is written to the CSV at once, and points already in the CSV are not measured again.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MagnetEvalError
from ..progress import info, make_progress, warn
from .measure import CSV_COLUMNS, count_parameters, is_oom, measure_point, point_row

__all__ = ["CSV_COLUMNS", "CSV_NAME", "PNG_NAME", "count_parameters", "default_duration", "default_loader",
           "dtype_label", "estimate_latency", "is_oom", "measure_point", "parse_models", "read_csv",
           "read_prompts", "run_latency_benchmark", "torch_dtype"]

CSV_NAME = "latency.csv"
PNG_NAME = "latency.png"
KEY = ["model", "device", "dtype", "batch_size", "duration_s"]
DONE_STATUSES = ("ok", "oom")
DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16", "half": "float16"}
DEFAULT_PROMPTS = [
    "90s rock song with loud guitars and heavy drums",
    "lofi hip hop beat with mellow piano chords",
    "calm acoustic guitar melody with soft strings",
    "energetic electronic dance music with a driving bassline",
]


def default_duration(device: str) -> float:
    """10 s on GPU (the paper's setting), 1 s on CPU so small/medium models still run at batch 1."""
    return 10.0 if device.startswith("cuda") else 1.0


def torch_dtype(name: str):
    import torch

    key = DTYPES.get(str(name).lower())
    if key is None:
        raise MagnetEvalError(f"unknown dtype {name!r}; use fp32, bf16 or fp16")
    return getattr(torch, key)


def dtype_label(name: str) -> str:
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[DTYPES[str(name).lower()]]


def read_prompts(prompts: str | Path | Sequence[str] | None) -> list[str]:
    """Prompts from a manifest (.jsonl / folder with manifest.jsonl), a literal text, a list, or the defaults."""
    if prompts is None:
        return list(DEFAULT_PROMPTS)
    if isinstance(prompts, (list, tuple)):
        texts = [str(p) for p in prompts if str(p).strip()]
    else:
        p = Path(str(prompts))
        if p.exists() and (p.is_dir() or p.suffix == ".jsonl"):
            from ..manifest import read_any

            texts = [e.caption for e in read_any(p) if e.caption]
            if not texts:
                raise MagnetEvalError(f"{p}: no captions to use as prompts")
        else:
            texts = [str(prompts)]
    if not texts:
        raise MagnetEvalError("no prompts")
    return texts


def read_csv(path: Path):
    """The CSV of earlier runs (empty table when there is none)."""
    import pandas as pd

    if not path.is_file():
        return pd.DataFrame(columns=CSV_COLUMNS)
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise MagnetEvalError(f"{path}: cannot read the latency CSV to resume ({exc}); move it away to start afresh") from exc
    missing = [c for c in KEY + ["status"] if c not in frame.columns]
    if missing:
        raise MagnetEvalError(f"{path}: not a latency CSV (missing {missing}); move it away or use another --out")
    for c in CSV_COLUMNS:
        if c not in frame.columns:
            frame[c] = math.nan
    return frame[CSV_COLUMNS + [c for c in frame.columns if c not in CSV_COLUMNS]]


def _key(model: str, device: str, dtype: str, batch_size: int, duration: float) -> tuple:
    return (str(model), str(device), str(dtype), int(batch_size), round(float(duration), 6))


def _write_csv(frame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def parse_models(models: str | Sequence[str], checkpoints: Sequence[str] = ()) -> list[tuple[str, str]]:
    """[(name, spec)] from `magnet-small,musicgen-small` and `--checkpoint [NAME=]PATH` entries."""
    items = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if m and m.strip()]
    out = [(m.split("=", 1)[0], m.split("=", 1)[1]) if "=" in m else (m, m) for m in items]
    for c in checkpoints:
        name, path = c.split("=", 1) if "=" in c else (Path(c).stem if Path(c).is_file() else Path(c).name, c)
        if not Path(path).exists():
            raise MagnetEvalError(f"checkpoint {path} does not exist")
        out.append((name, path))
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise MagnetEvalError(f"model names given twice: {dup} (name checkpoints with NAME=PATH)")
    if not out:
        raise MagnetEvalError("no models to benchmark")
    return out


def default_loader(spec: str, device: str, dtype: str) -> Any:
    """What the system registry gives `bench latency` for a spec: presets at real size with random
    weights, checkpoints and hub names of every family (MAGNeT, MusicGen, VampNet, ...)."""
    from ..systems.registry import build_timed

    return build_timed(spec, device, dtype)


def run_latency_benchmark(
    models: str | Sequence[str],
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    *,
    out_dir: str | Path,
    duration: float | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    warmup: int = 1,
    repeats: int = 3,
    warmup_once: bool = False,
    time_budget_s: float | None = None,
    checkpoints: Sequence[str] = (),
    prompts: str | Path | Sequence[str] | None = None,
    seed: int = 0,
    params: dict | None = None,
    loader: Callable[[str, str, str], Any] | None = None,
    resume: bool = True,
    plot: bool = True,
) -> "Any":
    """Measure every (model, batch size) point not yet in OUT/latency.csv; returns the whole table.

    loader(spec, device, dtype) builds a generator (default: `models.generator.load_generator`).
    duration None = `default_duration(device)`. Writes OUT/latency.csv after each point and
    OUT/latency.png (Figure 2 shape) at the end. warmup_once: the `warmup` runs before a model's first
    measured point only (its row says so; later rows say 0): enough on CPU, where a new batch size's
    first timed run is no slower than its next ones (measured: within 2% on the tiny models); on GPU
    a new shape can trigger kernel selection, so the default warms up every point.
    """
    import pandas as pd
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MagnetEvalError("--device cuda asked for but no CUDA device is visible to torch")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise MagnetEvalError(f"unknown device {device!r}; use cpu or cuda[:N]")
    dtype = dtype_label(dtype) if str(dtype).lower() in DTYPES else dtype
    torch_dtype(dtype)
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise MagnetEvalError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    if warmup < 0 or repeats < 1:
        raise MagnetEvalError("--warmup must be >= 0 and --repeats >= 1")
    duration = float(duration) if duration else default_duration(device)
    if duration <= 0:
        raise MagnetEvalError("--duration must be positive")
    entries = parse_models(models, checkpoints)
    texts = read_prompts(prompts)
    loader = loader or default_loader
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / CSV_NAME
    table = read_csv(csv_path) if resume else pd.DataFrame(columns=CSV_COLUMNS)
    done = {_key(r["model"], r["device"], r["dtype"], r["batch_size"], r["duration_s"]): r
            for r in table.to_dict("records") if str(r["status"]).startswith(DONE_STATUSES)}

    def keep(rows: list[dict]) -> None:
        nonlocal table
        new = pd.DataFrame(rows, columns=CSV_COLUMNS)
        keys = {_key(r["model"], r["device"], r["dtype"], r["batch_size"], r["duration_s"]) for r in rows}
        old = table[[(_key(*t) not in keys) for t in zip(table["model"], table["device"], table["dtype"],
                                                         table["batch_size"], table["duration_s"])]] if len(table) else table
        table = pd.concat([f for f in (old, new) if len(f)], ignore_index=True) if len(old) else new
        _write_csv(table, csv_path)

    total = len(entries) * len(sizes)
    with make_progress() as progress:
        task = progress.add_task("latency benchmark", total=total)
        for name, spec in entries:
            todo = [b for b in sizes if _key(name, device, dtype, b, duration) not in done]
            progress.advance(task, len(sizes) - len(todo))
            if not todo:
                info(f"{name}: all {len(sizes)} batch sizes already in {csv_path}")
                continue
            progress.update(task, description=f"{name}: loading")
            try:
                generator = loader(spec, device, dtype)
            except MagnetEvalError:
                raise
            except Exception as exc:  # noqa: BLE001
                if is_oom(exc):
                    keep([_status_row(name, spec, device, dtype, b, duration, "oom", f"model does not fit: {exc}")
                          for b in todo])
                    progress.advance(task, len(todo))
                    continue
                raise MagnetEvalError(f"cannot build {spec!r}: {type(exc).__name__}: {exc}") from exc
            n_params = count_parameters(generator)
            previous = [r for k, r in done.items() if k[0] == name and k[1:3] == (device, dtype)
                        and k[4] == round(duration, 6) and r["status"] == "ok"]
            ok_points = sorted(((int(r["batch_size"]), float(r["latency_median_s"])) for r in previous))
            stop_reason = ""
            warmed = False
            for b in todo:
                progress.update(task, description=f"{name} batch {b}")
                if stop_reason:
                    status = "oom" if stop_reason.startswith("oom") else "skipped"
                    keep([_status_row(name, spec, device, dtype, b, duration, status, stop_reason, n_params)])
                    progress.advance(task)
                    continue
                point_warmup = 0 if (warmup_once and warmed) else warmup
                est = estimate_latency(ok_points, b)
                if time_budget_s and est is not None:
                    est *= point_warmup + 1
                    if est > time_budget_s:
                        stop_reason = (f"over time budget: batch {b} estimated at {est:.1f}s "
                                       f"(warm-up + 1 repeat) > {time_budget_s:g}s")
                        warn(f"{name}: {stop_reason}; larger batch sizes skipped")
                        keep([_status_row(name, spec, device, dtype, b, duration, "skipped", stop_reason, n_params)])
                        progress.advance(task)
                        continue
                row = measure_point(generator, model=name, spec=spec, batch_size=b, duration=duration, device=device,
                                    dtype=dtype, prompts=texts, warmup=point_warmup, repeats=repeats,
                                    time_budget_s=time_budget_s, seed=seed, params=params, n_params=n_params)
                warmed = True
                keep([row])
                progress.advance(task)
                if row["status"] == "ok":
                    ok_points = sorted(ok_points + [(b, float(row["latency_median_s"]))])
                    info(f"{name} batch {b}: {row['latency_median_s']:.3g}s median, "
                         f"{row['samples_per_s']:.3g} samples/s, {row['decoding_steps']:.0f} steps")
                elif row["status"] == "oom":
                    stop_reason = f"oom (not tried: batch {b} ran out of memory)"
                    warn(f"{name}: out of memory at batch {b}; larger batch sizes not tried")
                else:
                    warn(f"{name} batch {b}: {row['error']}")
            del generator
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    if plot:
        from ..report.plots import plot_latency

        plot_latency(table, out / PNG_NAME, title="magnet-eval bench latency")
    return table


def estimate_latency(points: Sequence[tuple[int, float]], batch_size: int) -> float | None:
    """Latency expected at `batch_size` from measured (batch, latency) points below it, or None.

    One point: linear in the batch (the safe guess for a time budget). Two or more: the
    power-law growth of the last two, exponent clipped to [0.5, 2] so a noisy pair of timings
    cannot promise a free lunch (MAGNeT's latency grows slowly with batch, MusicGen's faster).
    """
    below = [(b, t) for b, t in points if b < batch_size and t > 0]
    if not below:
        return None
    b1, t1 = below[-1]
    exponent = 1.0
    if len(below) >= 2:
        b0, t0 = below[-2]
        exponent = min(max(math.log(t1 / t0) / math.log(b1 / b0), 0.5), 2.0)
    return t1 * (batch_size / b1) ** exponent


def _status_row(model: str, spec: str, device: str, dtype: str, batch_size: int, duration: float, status: str,
                error: str, n_params: float = math.nan) -> dict:
    row = point_row(model, spec, device, dtype, batch_size, duration, n_params)
    row.update(status=status, error=error)
    return row
