"""On-disk cache of per-file embeddings (and classifier outputs), keyed so that it can never go stale.

Key = sha1 of the audio file's bytes + embedder name + weights id + sample rate + a variant tag
(the preprocessing: loudness normalisation, crop rule, code version). A changed file, other
weights or other preprocessing gives another key. Hashing every file on every call costs more than
the lookup itself, so each file's hash is remembered in a small index beside the cache
(`<cache>.file_hashes.json`: path -> size, mtime, sha1); a file whose size or mtime changed is
hashed again, and a file modified in the last few seconds is not remembered (its mtime could stay
the same through another write in the same clock tick). Layout:

    cache_dir()/embeddings/<embedder>/<sha1(weights_id)[:16]>/sr<rate>-<variant>/<h[:2]>/<h>.npy

Each array is written to a temporary file in the same folder and renamed into place, so a run
killed mid-write leaves no partial file, and a re-run resumes from what was written. A file
that fails to load (corrupt, wrong shape, non-finite) is deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .files import atomic_write, file_sha1
from .paths import cache_dir

#: clips handed to an embedder at once by default; embedders that batch give the same values for any size
#: (musicnn: fixed-shape passes; pann: passes of two or more clips), so this only trades memory for speed
EMBED_BATCH = 8

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def _safe(text: str) -> str:
    return _SAFE.sub("_", str(text)).strip("_") or "x"


class EmbeddingCache:
    """Per-file arrays under `root` (default cache_dir()/embeddings)."""

    RACY_SECONDS = 2.0  # files modified more recently than this are hashed every time

    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.hashed = 0  # files whose bytes were read to hash them (the index remembers the rest)
        self._index: dict[str, list] | None = None
        self._index_dirty = False

    # -- file identity: path + size + mtime -> the content hash, computed once --------------------

    @property
    def index_path(self) -> Path:
        """The hash index, beside the cache folder (not inside it: the folder holds only arrays)."""
        return self.root.with_name(self.root.name + ".file_hashes.json")

    def _load_index(self) -> dict[str, list]:
        if self._index is None:
            self._index = {}
            try:
                data = json.loads(self.index_path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self._index = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 3}
            except (OSError, ValueError):
                pass  # absent or damaged: every file is hashed again
        return self._index

    def file_hash(self, audio_path: str | Path) -> str:
        """sha1 of the file's bytes, read from the index while the file's size and mtime are unchanged."""
        p = os.path.abspath(audio_path)
        st = os.stat(p)
        index = self._load_index()
        known = index.get(p)
        if known is not None and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            return str(known[2])
        digest = file_sha1(p)
        self.hashed += 1
        import time

        if self.enabled and time.time_ns() - st.st_mtime_ns > self.RACY_SECONDS * 1e9:
            index[p] = [st.st_size, st.st_mtime_ns, digest]
            self._index_dirty = True
        return digest

    def save_index(self) -> None:
        """Write the hash index (merged with what another process wrote meanwhile; atomic rename)."""
        if not (self.enabled and self._index_dirty and self._index is not None):
            return
        path = self.index_path
        merged: dict = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            merged = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            pass
        merged.update(self._index)
        try:
            with atomic_write(path, "w") as f:
                json.dump(merged, f)
        except OSError:
            return  # a read-only cache still works; files are hashed again next time
        self._index_dirty = False

    def path(self, content_hash: str, embedder: str, weights_id: str, sample_rate: int, variant: str = "") -> Path:
        wid = hashlib.sha1(str(weights_id).encode()).hexdigest()[:16]
        tag = f"sr{int(sample_rate)}" + (f"-{_safe(variant)}" if variant else "")
        return self.root / _safe(embedder) / wid / tag / content_hash[:2] / f"{content_hash}.npy"

    def path_for_file(self, audio_path: str | Path, embedder: str, weights_id: str, sample_rate: int,
                      variant: str = "") -> Path:
        return self.path(self.file_hash(audio_path), embedder, weights_id, sample_rate, variant)

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
    compute_batch: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
    batch_size: int = EMBED_BATCH,
) -> dict[str, np.ndarray]:
    """{id: array} for (id, audio_path) items: cached arrays, else compute(prepared audio) (then cached).

    One progress bar; each file is written as soon as it is done, so a killed run resumes. While a
    group is computed, one thread reads and normalises the next group's audio.
    compute_batch (with batch_size > 1): the missing clips are computed `batch_size` at a time; a batch
    that fails is redone clip by clip, so the error names its file. Under torchrun (`sharding`) each
    rank computes its shard and the arrays of every rank are gathered, in `items` order.
    """
    from . import sharding

    cache = cache or EmbeddingCache()
    tag = preprocess_tag(normalize, headroom_db, variant)
    bs = max(1, int(batch_size)) if compute_batch is not None else 1

    def lookup(group: list[tuple[str, str]]) -> tuple[dict[str, np.ndarray], list[tuple[str, str, Path]]]:
        """The group's cached arrays, and (clip id, audio path, cache path) of its misses."""
        hits, todo = {}, []
        for clip_id, audio_path in group:
            where: list[Path] = []

            def _lookup(p=audio_path, where=where) -> np.ndarray | None:
                if not cache.enabled:  # nothing read or written: no need to hash the file
                    where.append(Path(os.devnull))
                    return None
                where.append(cache.path_for_file(p, name, weights_id, sample_rate, tag))  # hashed once
                return cache.load(where[0], dim)

            got = _per_clip(clip_id, audio_path, _lookup)
            if got is not None:
                cache.hits += 1
                hits[clip_id] = got
            else:
                todo.append((clip_id, audio_path, where[0]))
        return hits, todo

    def prepare_all(todo: list[tuple[str, str, Path]]) -> list[np.ndarray]:
        return [prepare_audio(p, sample_rate, normalize, headroom_db) for _, p, _ in todo]

    def work(mine: list[tuple[str, str]]) -> dict[str, np.ndarray]:
        from concurrent.futures import ThreadPoolExecutor

        from .progress import track

        out: dict[str, np.ndarray] = {}
        groups = [mine[i:i + bs] for i in range(0, len(mine), bs)]
        ahead = None  # the next group, looked up, its audio being read and normalised by the prefetch thread
        try:
            with ThreadPoolExecutor(1) as prefetch:
                for k, group in enumerate(track(groups, description or f"{name} embeddings")):
                    if ahead is None:
                        hits, todo = lookup(group)
                        pending = prefetch.submit(prepare_all, todo) if todo else None
                    else:
                        hits, todo, pending = ahead
                    ahead = None
                    if k + 1 < len(groups):
                        try:
                            nxt = lookup(groups[k + 1])
                            ahead = (*nxt, prefetch.submit(prepare_all, nxt[1]) if nxt[1] else None)
                        except Exception:  # noqa: BLE001  (raised again in its turn, after this group is saved)
                            ahead = None
                    out.update(hits)
                    try:
                        wavs = pending.result() if pending is not None else None
                    except Exception:  # noqa: BLE001  (each clip is prepared again below; its error names the file)
                        wavs = None
                    if len(todo) > 1 and wavs is not None:
                        _compute_group(todo, wavs, out, cache, compute_batch)
                    for i, (clip_id, audio_path, target) in enumerate(todo):
                        if clip_id in out:
                            continue

                        def _compute(p=audio_path, target=target, wav=wavs[i] if wavs is not None else None):
                            if wav is None:
                                wav = prepare_audio(p, sample_rate, normalize, headroom_db)
                            arr = np.asarray(compute(wav), np.float32)
                            arr = arr[None] if arr.ndim == 1 else arr
                            cache.misses += 1
                            cache.save(target, arr)
                            return arr

                        out[clip_id] = _per_clip(clip_id, audio_path, _compute)
        finally:
            cache.save_index()
        rank, world = sharding.rank_world()
        if world > 1:
            from .progress import info

            info(f"rank {rank} of {world}: {len(mine)} of {len(items)} clips ({description or name})")
        return out

    got = sharding.run_sharded(items, work)
    return {clip_id: got[clip_id] for clip_id, _ in items if clip_id in got}


def _compute_group(todo: list[tuple[str, str, Path]], wavs: list[np.ndarray], out: dict[str, np.ndarray],
                   cache: EmbeddingCache, compute_batch) -> None:
    """One batched call for several missing clips; any failure leaves them to the per-clip path (which names files)."""
    try:
        arrays = compute_batch(wavs)
        if len(arrays) != len(todo):
            return
    except Exception:  # noqa: BLE001  (redone one by one below, where the error names its file)
        return
    for (clip_id, _, target), arr in zip(todo, arrays):
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None]
        cache.misses += 1
        cache.save(target, arr)
        out[clip_id] = arr


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
                normalize: bool = True, headroom_db: float = 14.0, description: str | None = None,
                batch_size: int = EMBED_BATCH) -> dict[str, np.ndarray]:
    """Embedding frames [frames, dim] per id with an Embedder (name, sample_rate, weights_id, embed).

    batch_size > 1 uses the embedder's `embed_batch` when it has one (per-clip results equal batch 1's).
    """
    sr = int(embedder.sample_rate)
    version = str(getattr(embedder, "version", "") or "")
    batch = getattr(embedder, "embed_batch", None) if getattr(embedder, "batched", False) else None
    return cached_per_file(
        items, name=embedder.name, weights_id=str(embedder.weights_id), sample_rate=sr,
        compute=lambda wav: to_numpy(embedder.embed(wav, sr)),
        cache=cache, normalize=normalize, headroom_db=headroom_db, variant=f"v{version}" if version else "",
        dim=getattr(embedder, "dim", None), description=description or f"{embedder.name} embeddings",
        compute_batch=(lambda wavs: [to_numpy(a) for a in batch(wavs, sr)]) if callable(batch) else None,
        batch_size=batch_size,
    )
