"""On-disk cache of per-file embeddings (and classifier outputs), keyed so that it can never go stale.

Key = sha1 of the audio file's bytes + embedder name + weights id + sample rate + a variant tag
(the preprocessing: loudness normalisation, crop rule, code version). A changed file, other
weights or other preprocessing gives another key; nothing is keyed by path or mtime. Layout:

    cache_dir()/embeddings/<embedder>/<sha1(weights_id)[:16]>/sr<rate>-<variant>/<h[:2]>/<h>.npy

Each array is written to a temporary file in the same folder and renamed into place, so a run
killed mid-write leaves no partial file, and a re-run resumes from what was written. A file
that fails to load (corrupt, wrong shape, non-finite) is deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .files import atomic_write, file_sha1
from .paths import cache_dir

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def _safe(text: str) -> str:
    return _SAFE.sub("_", str(text)).strip("_") or "x"


class EmbeddingCache:
    """Per-file arrays under `root` (default cache_dir()/embeddings)."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path(self, content_hash: str, embedder: str, weights_id: str, sample_rate: int, variant: str = "") -> Path:
        wid = hashlib.sha1(str(weights_id).encode()).hexdigest()[:16]
        tag = f"sr{int(sample_rate)}" + (f"-{_safe(variant)}" if variant else "")
        return self.root / _safe(embedder) / wid / tag / content_hash[:2] / f"{content_hash}.npy"

    def path_for_file(self, audio_path: str | Path, embedder: str, weights_id: str, sample_rate: int,
                      variant: str = "") -> Path:
        return self.path(file_sha1(audio_path), embedder, weights_id, sample_rate, variant)

    def load(self, path: Path, dim: int | None = None) -> np.ndarray | None:
        """The cached array, or None when absent; an unreadable or malformed file is removed."""
        if not self.enabled or not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
            ok = arr.ndim == 2 and arr.shape[0] > 0 and np.isfinite(arr).all() and (dim is None or arr.shape[1] == dim)
        except Exception:
            ok = False
        if not ok:
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return arr

    def save(self, path: Path, arr: np.ndarray) -> Path:
        """Atomic write: temp file in the same folder, then rename."""
        if not self.enabled:
            return path
        with atomic_write(path) as f:  # readable by other users: caches are shared
            np.save(f, np.ascontiguousarray(arr))
        return path

    def get_or_compute(self, audio_path: str | Path, embedder: str, weights_id: str, sample_rate: int,
                       compute: Callable[[], np.ndarray], variant: str = "", dim: int | None = None) -> np.ndarray:
        """The cached array for this file and key, or `compute()` (then cached). Arrays are 2-D [rows, dim]."""
        path = self.path_for_file(audio_path, embedder, weights_id, sample_rate, variant)
        arr = self.load(path, dim)
        if arr is not None:
            self.hits += 1
            return arr
        self.misses += 1
        arr = np.asarray(compute(), dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        self.save(path, arr)
        return arr

    def clear(self, embedder: str | None = None) -> int:
        """Delete cached arrays (of one embedder, or all); returns how many files were removed."""
        base = self.root / _safe(embedder) if embedder else self.root
        n = 0
        for p in base.rglob("*.npy") if base.exists() else []:
            p.unlink()
            n += 1
        return n

    def files(self) -> Iterable[Path]:
        return self.root.rglob("*.npy") if self.root.exists() else []


# ----------------------------------------------------------------------------- manifest-level helpers


def to_numpy(x) -> np.ndarray:
    """float32 numpy from a numpy array or a (CPU/GPU, grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def preprocess_tag(normalize: bool, headroom_db: float = 14.0, extra: str = "") -> str:
    """The variant part of a cache key for a preprocessing choice (loudness normalisation, crop, ...)."""
    tag = f"ln{headroom_db:g}" if normalize else "raw"
    return f"{tag}-{extra}" if extra else tag


def prepare_audio(path: str | Path, sample_rate: int, normalize: bool = True, headroom_db: float = 14.0) -> np.ndarray:
    """Mono float32 at `sample_rate`; loudness-normalised at the file's own rate first (as audiocraft)."""
    from .audio import load_audio, loudness_normalize, resample

    wav, sr = load_audio(path, sr=None, mono=True)
    if normalize:
        wav = loudness_normalize(wav, sr, headroom_db=headroom_db)
    return resample(wav, sr, sample_rate)


def cached_per_file(
    items: list[tuple[str, str]],
    *,
    name: str,
    weights_id: str,
    sample_rate: int,
    compute: Callable[[np.ndarray], np.ndarray],
    cache: EmbeddingCache | None = None,
    normalize: bool = True,
    headroom_db: float = 14.0,
    variant: str = "",
    dim: int | None = None,
    description: str | None = None,
) -> dict[str, np.ndarray]:
    """{id: array} for (id, audio_path) items: cached arrays, else compute(prepared audio) (then cached).

    One progress bar; each file is written as soon as it is done, so a killed run resumes.
    """
    from .progress import track

    cache = cache or EmbeddingCache()
    tag = preprocess_tag(normalize, headroom_db, variant)
    out: dict[str, np.ndarray] = {}
    for clip_id, audio_path in track(items, description or f"{name} embeddings"):
        def _compute(p=audio_path) -> np.ndarray:
            return compute(prepare_audio(p, sample_rate, normalize, headroom_db))

        out[clip_id] = _per_clip(clip_id, audio_path, lambda: cache.get_or_compute(
            audio_path, name, weights_id, sample_rate, _compute, tag, dim))
    return out


def _per_clip(clip_id: str, audio_path: str | None, work: Callable[[], np.ndarray]) -> np.ndarray:
    """Run one clip's work; every per-clip error names the file (and id), whatever raised it."""
    from .errors import AudioError, MagnetEvalError, ManifestError, MissingWeightsError
    from .validate import readable_audio_file

    if not audio_path:
        raise ManifestError(f"id {clip_id!r}: no audio_path in the manifest")
    readable_audio_file(audio_path)  # a folder or unreadable file is named before it is hashed
    try:
        return work()
    except MissingWeightsError:
        raise
    except MagnetEvalError as exc:
        if str(audio_path) in str(exc):
            raise
        msg = str(exc)
        msg = msg[len("clip: "):] if msg.startswith("clip: ") else msg
        try:
            wrapped = type(exc)(f"{audio_path} (id {clip_id}): {msg}")
        except TypeError:
            wrapped = AudioError(f"{audio_path} (id {clip_id}): {msg}")
        raise wrapped from exc


def embed_files(items: list[tuple[str, str]], embedder, *, cache: EmbeddingCache | None = None,
                normalize: bool = True, headroom_db: float = 14.0, description: str | None = None) -> dict[str, np.ndarray]:
    """Embedding frames [frames, dim] per id with an Embedder (name, sample_rate, weights_id, embed)."""
    sr = int(embedder.sample_rate)
    version = str(getattr(embedder, "version", "") or "")
    return cached_per_file(
        items, name=embedder.name, weights_id=str(embedder.weights_id), sample_rate=sr,
        compute=lambda wav: to_numpy(embedder.embed(wav, sr)),
        cache=cache, normalize=normalize, headroom_db=headroom_db, variant=f"v{version}" if version else "",
        dim=getattr(embedder, "dim", None), description=description or f"{embedder.name} embeddings",
    )
