"""Measuring one latency point: a timed `generate` call and what it costs.

One (model, batch size) point = `warmup` untimed runs, then `repeats` timed runs (wall clock,
`torch.cuda.synchronize` before and after on GPU); median, IQR, min, max; samples/s = batch /
median; real-time factor RTF = median / (batch x duration), seconds of compute per second of
audio produced (< 1: faster than real time); decoding steps and LM forward passes per
generation; peak memory (CUDA `max_memory_allocated`, or on CPU the peak of the resident set
size above its level before the run, sampled from /proc). The sweep over models and batch
sizes (resume, OOM bookkeeping, CSV, plot) is `bench.latency`; this module knows one point.
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
from typing import Any, Sequence

CSV_COLUMNS = [
    "model", "spec", "device", "dtype", "batch_size", "duration_s", "status", "repeats", "warmup",
    "latency_median_s", "latency_iqr_s", "latency_q25_s", "latency_q75_s", "latency_min_s", "latency_max_s",
    "latency_mean_s", "samples_per_s", "rtf", "decoding_steps", "forward_passes", "peak_memory_mb",
    "memory_kind", "n_params", "times_s", "error", "time_budget_s", "threads", "torch_version", "hardware",
    "timestamp",
]


def is_oom(exc: BaseException) -> bool:
    """Out of memory on GPU (torch.OutOfMemoryError / 'CUDA out of memory') or CPU (allocator failure)."""
    import torch

    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError), torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                               or "cannot allocate memory" in text)



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


def point_row(model: str, spec: str, device: str, dtype: str, batch_size: int, duration: float,
              n_params: float = math.nan) -> dict:
    """A CSV row for one point with what is known before measuring (the rest NaN), shared by
    measured points and the sweep's oom/skipped rows so both carry the same provenance."""
    import torch

    row: dict[str, Any] = {c: math.nan for c in CSV_COLUMNS}
    row.update(model=model, spec=spec, device=device, dtype=dtype, batch_size=int(batch_size),
               duration_s=float(duration), repeats=0, n_params=n_params, error="", memory_kind="",
               times_s="[]", torch_version=torch.__version__, hardware=_hardware(device),
               threads=torch.get_num_threads(), timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return row


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
    row = point_row(model, spec, device, dtype, batch_size, duration, n_params)
    row.update(warmup=int(warmup), time_budget_s=float(time_budget_s) if time_budget_s else math.nan)
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
