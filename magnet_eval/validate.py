"""The one validation layer: small typed checks of user input, run before any long work starts.

Why one module: every command and library entry point checks its options and paths the same way,
so a bad value always fails fast (before hours of generation or embedding), always with an error
class of `magnet_eval.errors`, and always with a message naming the option or the file. The CLI
prints these without a traceback and exits with status 2.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from .errors import AudioError, InvalidOptionError, ManifestError, OutputPathError

#: Sinusoidal positions repeat after 2*pi*max_period frames, so a sequence longer than that
#: gives two frames the same position; audiocraft's LMs (and ours) use max_period 10000 at the
#: codec's 50 Hz, hence the released models cannot address more than 2*pi*10000/50 = 1256.6 s.
DEFAULT_MAX_PERIOD = 10000.0
DEFAULT_FRAME_RATE = 50.0


def max_generation_seconds(frame_rate: float = DEFAULT_FRAME_RATE, max_period: float = DEFAULT_MAX_PERIOD) -> float:
    """Longest clip a sinusoidal-position LM can generate: 2*pi*max_period frames (positions alias beyond)."""
    return 2.0 * math.pi * float(max_period) / float(frame_rate)


# ----------------------------------------------------------------------------- numbers


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidOptionError(f"{name} must be a number, got {value!r}") from None
    f = float(value)
    if not math.isfinite(f):
        raise InvalidOptionError(f"{name} must be a finite number, got {value!r}")
    return f


def finite_float(name: str, value: Any) -> float:
    """A finite float (NaN and +-inf refused)."""
    return _number(name, value)


def positive_float(name: str, value: Any, maximum: Optional[float] = None, why_max: str = "") -> float:
    """A finite float > 0 (and <= maximum when given; `why_max` says where the bound comes from)."""
    f = _at_least(name, value, _number, 0, strict=True)
    if maximum is not None and f > maximum:
        raise InvalidOptionError(f"{name} must be <= {maximum:g}{' (' + why_max + ')' if why_max else ''}, got {value!r}")
    return f


def non_negative_float(name: str, value: Any) -> float:
    """A finite float >= 0."""
    return _at_least(name, value, _number, 0)


def probability(name: str, value: Any, *, low_open: bool = True, high_open: bool = False) -> float:
    """A finite float in the unit interval; `low_open`/`high_open` exclude 0/1 (e.g. --ci is in (0, 1))."""
    f = _number(name, value)
    lo_ok = f > 0 if low_open else f >= 0
    hi_ok = f < 1 if high_open else f <= 1
    if not (lo_ok and hi_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise InvalidOptionError(f"{name} must be in {interval}, got {value!r}")
    return f


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidOptionError(f"{name} must be an integer, got {value!r}")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"{name} must be an integer, got {value!r}") from None


def non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0 (e.g. --bootstrap, --top-k)."""
    return _at_least(name, value, _integer, 0)


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (e.g. --batch-size, --n)."""
    return _at_least(name, value, _integer, 1)


def _at_least(name: str, value: Any, parse: Callable[[str, Any], Any], low: int, strict: bool = False) -> Any:
    """`value` parsed by `parse` and checked against a lower bound (> low when `strict`), one message for all."""
    x = parse(name, value)
    if x < low or (strict and x == low):
        raise InvalidOptionError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
    return x


def non_empty_text(name: str, value: Any) -> str:
    """A string with something besides white space (e.g. --prompts "")."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidOptionError(f"{name} is empty: give a value")
    return value


def one_of(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise InvalidOptionError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def generation_duration(name: str, value: Any, frame_rate: float = DEFAULT_FRAME_RATE,
                        max_period: float = DEFAULT_MAX_PERIOD) -> float:
    """Seconds of audio to generate: finite, > 0, and within the positions the LM can address."""
    limit = max_generation_seconds(frame_rate, max_period)
    return positive_float(name, value, maximum=round(limit, 1),
                          why_max=f"seconds; sinusoidal positions repeat after 2*pi*{max_period:g} frames at {frame_rate:g} Hz")


def available_memory_bytes(device: Any = "cpu") -> Optional[int]:
    """Free memory of a device: CUDA's free bytes, or the kernel's MemAvailable on CPU; None when unknown."""
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(dev))[0]) if torch.cuda.is_available() else None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def generation_memory(duration: float, batch: int, need_bytes: int, device: Any = "cpu",
                      what: str = "generation") -> None:
    """Refuse a generation whose estimated peak memory exceeds what the device has free, before it starts.

    need_bytes is the model's own estimate (e.g. MAGNeT materialises one layer's attention weights,
    CFG-doubled batch x heads x frames^2); the message says which knob to lower.
    """
    free = available_memory_bytes(device)
    if free is not None and need_bytes > free:
        gib = 1024 ** 3
        raise InvalidOptionError(
            f"--duration {duration:g} s at --batch-size {batch} needs about {need_bytes / gib:.1f} GiB for {what} "
            f"on {device}, more than the {free / gib:.1f} GiB free there; lower --duration or --batch-size")


def decoding_options(options: Mapping[str, Any], prefix: str = "--") -> None:
    """Check generation knobs before a model is loaded: temperature > 0, top-p in [0, 1] (0 = off, as
    MusicGen's documented default), top-k >= 0, finite CFG coefficients, decoding steps >= 1."""
    def opt(key: str) -> str:
        return prefix + (key.replace("_", "-") if prefix == "--" else key)

    for key, value in options.items():
        if value is None:
            continue
        key = {"temp": "temperature", "steps": "decoding_steps"}.get(key, key)
        # by suffix, so variants (prefix_temperature, prefix_top_k, prefix_cfg_coef, ...) get the same rule
        if key.endswith("temperature"):
            positive_float(opt(key), value)
        elif key.endswith("top_p"):
            probability(opt(key), value, low_open=False)
        elif key.endswith("top_k"):
            non_negative_int(opt(key), value)
        elif key.endswith("cfg_coef") or key.endswith("_weight"):
            finite_float(opt(key), value)
        elif key == "decoding_steps":
            steps = value
            if isinstance(value, str):
                parts = [p.strip() for p in value.split(",") if p.strip()]
                if not parts:
                    raise InvalidOptionError(f"{opt(key)} is empty: give steps per stage, e.g. 20,10,10,10")
                steps = parts
            for s in (steps if isinstance(steps, (list, tuple)) else [steps]):
                positive_int(opt(key), s)


# ----------------------------------------------------------------------------- paths


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            return p
        p = p.parent
    return p


def writable_output(path: str | Path, option: str = "--out", *, kind: str = "file") -> Path:
    """An output path that can be written: check it before hours of work.

    kind='file': not an existing folder, and (if it exists) writable; kind='dir': not an existing
    file. Either way the nearest existing ancestor must be a folder we can create entries in.
    Nothing is created here.
    """
    p = Path(path).expanduser()
    if not str(path).strip():
        raise OutputPathError(f"{option} is empty: give an output path")
    if kind == "file" and p.is_dir():
        raise OutputPathError(f"{option} {p}: is an existing folder, expected a file path")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise OutputPathError(f"{option} {p}: is an existing file, expected a folder")
    if p.exists():
        if not os.access(p, os.W_OK) or (p.is_dir() and not os.access(p, os.X_OK)):
            raise OutputPathError(f"{option} {p}: is not writable (permission denied)")
        return p
    anchor = _nearest_existing(p.parent if kind == "file" else p)
    if not anchor.is_dir():
        raise OutputPathError(f"{option} {p}: cannot be created, {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {p}: cannot be created, folder {anchor} is not writable (permission denied)")
    return p


def readable_file(path: str | Path, what: str = "file", error: type = ManifestError) -> Path:
    """An existing, readable, non-empty regular file (a folder where a file is expected is refused)."""
    p = Path(path).expanduser()
    article = "an" if what[:1].lower() in "aeiou" else "a"
    if not p.exists():
        raise error(f"{p}: {what} does not exist")
    if p.is_dir():
        raise error(f"{p}: is a folder, where {article} {what} was expected")
    if not p.is_file():
        raise error(f"{p}: is not a regular file, where {article} {what} was expected")
    if not os.access(p, os.R_OK):
        raise error(f"{p}: {what} is not readable (permission denied)")
    if p.stat().st_size == 0:
        raise error(f"{p}: {what} is empty (0 bytes)")
    return p


def readable_audio_file(path: str | Path) -> Path:
    """`readable_file` for audio, raising AudioError (the file is decoded by `audio.load_audio`)."""
    return readable_file(path, "audio file", AudioError)


def read_text(path: str | Path, what: str = "file", error: type = ManifestError) -> str:
    """A text file's content as UTF-8 (a BOM is dropped); another encoding is refused with the byte offset."""
    p = readable_file(path, what, error)
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: {what} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                    "re-save it as UTF-8") from None


def existing_path(path: str | Path, option: str, error: type = InvalidOptionError) -> Path:
    """A path given to an option that must exist (file or folder)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise error(f"{option} {p}: does not exist")
    return p


__all__ = [
    "finite_float", "positive_float", "non_negative_float", "probability", "non_negative_int", "positive_int",
    "non_empty_text", "one_of", "generation_duration", "max_generation_seconds", "decoding_options",
    "available_memory_bytes", "generation_memory",
    "writable_output", "readable_file", "readable_audio_file", "read_text", "existing_path",
]
