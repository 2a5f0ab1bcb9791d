"""Latency and throughput against batch size (the MAGNeT paper's Figure 2), for any generator.

Why random weights are enough: the time of a generation is set by the architecture (layers,
width, heads, number of decoding steps, sequence length, batch size) and the hardware, not by
the values of the weights; MAGNeT's decoding schedule is fixed ([20, 10, 10, 10] steps) and
MusicGen's is one step per frame, whatever the tokens. So presets (`magnet-small`,
`musicgen-small`, ...) are built at their real size with random weights; a checkpoint can be
given instead to time exactly what is shipped.

Per (model, batch size) point: `warmup` untimed runs, then `repeats` timed runs (wall clock,
`torch.cuda.synchronize` before and after on GPU); median, IQR, min, max; samples/s = batch /
median; real-time factor RTF = median / (batch x duration), seconds of compute per second of
audio produced (< 1: faster than real time); decoding steps and LM forward passes per
generation; peak memory (CUDA `max_memory_allocated`, or on CPU the peak of the resident set
size above its level before the run, sampled from /proc).

Bounded and robust: out-of-memory at a batch size is recorded (status "oom") and larger batch
sizes of that model are not tried; a per-point time budget skips batch sizes whose estimated
time (from the previous batch size) exceeds it and cuts timed repeats short; every finished
point is written to the CSV at once, and points already in the CSV are not measured again.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import resource
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MagnetEvalError
from ..progress import info, make_progress, warn

CSV_NAME = "latency.csv"
PNG_NAME = "latency.png"
CSV_COLUMNS = [
    "model", "spec", "device", "dtype", "batch_size", "duration_s", "status", "repeats", "warmup",
    "latency_median_s", "latency_iqr_s", "latency_q25_s", "latency_q75_s", "latency_min_s", "latency_max_s",
    "latency_mean_s", "samples_per_s", "rtf", "decoding_steps", "forward_passes", "peak_memory_mb",
    "memory_kind", "n_params", "times_s", "error", "time_budget_s", "threads", "torch_version", "hardware",
    "timestamp",
]
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


def is_oom(exc: BaseException) -> bool:
    """Out of memory on GPU (torch.OutOfMemoryError / 'CUDA out of memory') or CPU (allocator failure)."""
    import torch

    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError), torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                               or "cannot allocate memory" in text)


# ----------------------------------------------------------------------------- measuring


def _release_free_heap() -> None:
    """Give freed heap pages back to the OS (glibc malloc_trim) so an RSS delta sees reused memory too."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of a block: CUDA max_memory_allocated, or the CPU resident-set peak above its start.

    On CPU a thread samples /proc/self/status every 5 ms (ru_maxrss cannot be reset, so it only
    serves as a fallback when /proc is not there).
    """

    def __init__(self, device: str):
        self.device = device
        self.peak_bytes = math.nan
        self.kind = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._max = 0

    def __enter__(self) -> "PeakMemory":
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.kind = "cuda max_memory_allocated"
        else:
            _release_free_heap()
            rss = _rss_bytes()
            if rss is None:
                self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                self.kind = "cpu ru_maxrss delta"
            else:
                self._base = self._max = rss
                self.kind = "cpu peak rss delta"
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            rss = _rss_bytes()
            if rss is not None and rss > self._max:
                self._max = rss

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.peak_bytes = float(torch.cuda.max_memory_allocated(self.device))
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = _rss_bytes()
            self.peak_bytes = float(max(self._max, rss or 0) - self._base)
        else:
            self.peak_bytes = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._base)


class ForwardCounter:
    """Counts calls of the generator's language model (`generator.lm`) through a forward hook."""

    def __init__(self, generator: Any):
        self.count = 0
        self._handle = None
        lm = getattr(generator, "lm", None)
        if lm is not None and hasattr(lm, "register_forward_hook"):
            self._handle = lm.register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self.count += 1

    @property
    def active(self) -> bool:
        return self._handle is not None

    def reset(self) -> None:
        self.count = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


_STEP_KEYS = ("decoding_steps", "n_decoding_steps", "steps", "n_steps")
_PASS_KEYS = ("forward_passes", "n_forward_passes", "forward_calls", "n_forwards")


def _lookup(obj: Any, keys: Sequence[str]) -> float | None:
    if obj is None:
        return None
    for k in keys:
        v = obj.get(k) if isinstance(obj, dict) else getattr(obj, k, None)
        if isinstance(v, (list, tuple)):
            v = sum(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def generation_counts(generator: Any, hooked: ForwardCounter | None) -> tuple[float, float]:
    """(decoding steps, forward passes) of the last generation: what the generator reports, else
    the forward-hook count (one LM call per decoding step, the cond/uncond pair in one batch)."""
    steps = passes = None
    owners = [generator] + [getattr(generator, a) for a in ("lm", "model") if getattr(generator, a, None) is not None]
    for owner in owners:  # the bundle's own stats first, then its LM's (MagnetLM/MusicGenLM.last_stats)
        for holder in ("last_stats", "stats", "last_generation_stats", "generation_stats"):
            stats = getattr(owner, holder, None)
            if callable(stats):
                try:
                    stats = stats()
                except TypeError:
                    stats = None
            steps = steps if steps is not None else _lookup(stats, _STEP_KEYS)
            passes = passes if passes is not None else _lookup(stats, _PASS_KEYS)
    steps = steps if steps is not None else _lookup(generator, tuple("last_" + k for k in _STEP_KEYS))
    passes = passes if passes is not None else _lookup(generator, tuple("last_" + k for k in _PASS_KEYS))
    hook = float(hooked.count) if hooked is not None and hooked.active and hooked.count else None
    passes = passes if passes is not None else hook
    steps = steps if steps is not None else passes
    return (steps if steps is not None else math.nan), (passes if passes is not None else math.nan)


def count_parameters(generator: Any) -> float:
    """Parameters of the language model (what the paper's Table 1 counts), else of the whole generator."""
    for obj in (getattr(generator, "lm", None), generator):
        if obj is not None and hasattr(obj, "parameters"):
            try:
                return float(sum(p.numel() for p in obj.parameters()))
            except TypeError:
                continue
    n = getattr(generator, "n_params", None)
    return float(n) if isinstance(n, (int, float)) else math.nan


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def _batch_prompts(prompts: Sequence[str], batch_size: int) -> list[str]:
    return [prompts[i % len(prompts)] for i in range(batch_size)]


def time_generation(generator: Any, prompts: list[str], duration: float, seed: int, device: str,
                    params: dict) -> float:
    """Wall-clock seconds of one `generate` call, synchronised on GPU before and after."""
    import torch

    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        generator.generate(prompts, duration=duration, seed=seed, batch_size=len(prompts), **params)
    _sync(device)
    return time.perf_counter() - t0


def _hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        try:
            return torch.cuda.get_device_name(device)
        except Exception:  # noqa: BLE001
            return "cuda"
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def measure_point(
    generator: Any,
    *,
    model: str,
    spec: str,
    batch_size: int,
    duration: float,
    device: str,
    dtype: str,
    prompts: Sequence[str],
    warmup: int = 1,
    repeats: int = 3,
    time_budget_s: float | None = None,
    seed: int = 0,
    params: dict | None = None,
    n_params: float = math.nan,
) -> dict:
    """One (model, batch size) point as a CSV row; OOM gives status "oom", other failures "error"."""
    import torch

    params = params or {}
    batch = _batch_prompts(list(prompts), batch_size)
    row: dict[str, Any] = {c: math.nan for c in CSV_COLUMNS}
    row.update(model=model, spec=spec, device=device, dtype=dtype, batch_size=int(batch_size), duration_s=float(duration),
               warmup=int(warmup), repeats=0, n_params=n_params, error="", memory_kind="",
               time_budget_s=float(time_budget_s) if time_budget_s else math.nan, threads=torch.get_num_threads(),
               torch_version=torch.__version__, hardware=_hardware(device),
               timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"), times_s="[]")
    counter = ForwardCounter(generator)
    times: list[float] = []
    started = time.perf_counter()
    try:
        with PeakMemory(device) as mem:
            for w in range(warmup):
                time_generation(generator, batch, duration, seed + w, device, params)
            for r in range(max(1, repeats)):
                counter.reset()
                times.append(time_generation(generator, batch, duration, seed + warmup + r, device, params))
                if time_budget_s and time.perf_counter() - started > time_budget_s and r + 1 < repeats:
                    row["error"] = f"time budget {time_budget_s:g}s reached after {r + 1} of {repeats} repeats"
                    break
        steps, passes = generation_counts(generator, counter)
        row.update(status="ok", peak_memory_mb=mem.peak_bytes / 2**20, memory_kind=mem.kind,
                   decoding_steps=steps, forward_passes=passes)
    except Exception as exc:  # noqa: BLE001  (a point that fails is recorded, the sweep goes on)
        if is_oom(exc):
            row.update(status="oom", error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
        else:
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
        if device.startswith("cuda"):
            gc.collect()
            torch.cuda.empty_cache()
    finally:
        counter.close()
    if times:
        row.update(_summary(times, batch_size, duration))
    return row


def _summary(times: list[float], batch_size: int, duration: float) -> dict:
    import numpy as np

    arr = np.asarray(times, dtype=np.float64)
    q25, med, q75 = (float(x) for x in np.quantile(arr, [0.25, 0.5, 0.75]))
    return {
        "repeats": len(times), "latency_median_s": med, "latency_q25_s": q25, "latency_q75_s": q75,
        "latency_iqr_s": q75 - q25, "latency_min_s": float(arr.min()), "latency_max_s": float(arr.max()),
        "latency_mean_s": float(statistics.fmean(times)), "samples_per_s": batch_size / med if med > 0 else math.nan,
        "rtf": med / (batch_size * duration) if duration > 0 else math.nan, "times_s": json.dumps([round(t, 9) for t in times]),
    }


# ----------------------------------------------------------------------------- the sweep


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
    """C1's `load_generator` (presets at real size with random weights, checkpoints, hub names)."""
    try:
        from ..models.generator import load_generator
    except ImportError as exc:
        raise MagnetEvalError(f"the models are not available in this installation "
                              f"(magnet_eval.models.generator: {exc})") from exc
    return load_generator(spec, device=device, dtype=torch_dtype(dtype))


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
    OUT/latency.png (Figure 2 shape) at the end.
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
            for b in todo:
                progress.update(task, description=f"{name} batch {b}")
                if stop_reason:
                    status = "oom" if stop_reason.startswith("oom") else "skipped"
                    keep([_status_row(name, spec, device, dtype, b, duration, status, stop_reason, n_params)])
                    progress.advance(task)
                    continue
                est = estimate_latency(ok_points, b)
                if time_budget_s and est is not None:
                    est *= warmup + 1
                    if est > time_budget_s:
                        stop_reason = (f"over time budget: batch {b} estimated at {est:.1f}s "
                                       f"(warm-up + 1 repeat) > {time_budget_s:g}s")
                        warn(f"{name}: {stop_reason}; larger batch sizes skipped")
                        keep([_status_row(name, spec, device, dtype, b, duration, "skipped", stop_reason, n_params)])
                        progress.advance(task)
                        continue
                row = measure_point(generator, model=name, spec=spec, batch_size=b, duration=duration, device=device,
                                    dtype=dtype, prompts=texts, warmup=warmup, repeats=repeats,
                                    time_budget_s=time_budget_s, seed=seed, params=params, n_params=n_params)
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
    import torch

    row: dict[str, Any] = {c: math.nan for c in CSV_COLUMNS}
    row.update(model=model, spec=spec, device=device, dtype=dtype, batch_size=int(batch_size),
               duration_s=float(duration), status=status, error=error, repeats=0, n_params=n_params,
               memory_kind="", times_s="[]", torch_version=torch.__version__, hardware=_hardware(device),
               threads=torch.get_num_threads(), timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return row
