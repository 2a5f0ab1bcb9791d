"""MIR descriptors of audio files: loading (stem + context mix), on-disk cache, two-process pool.

Descriptors of a file are cached like embeddings, with the toolkit's `EmbeddingCache` (content
hash of the file bytes, or of stem and context together, + extractor version + preprocessing),
so a re-run or a killed run recomputes nothing that was finished: each clip is written the
moment its worker returns it. Extraction runs in `workers` forked processes (essentia is not
thread-parallel); each worker limits torch to one thread, so two workers use the two cores.
Forking (not spawning) lets scripts without a `__main__` guard, notebooks and pytest use it.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..embedding_cache import EmbeddingCache, preprocess_tag
from ..errors import AudioError, MagnetEvalError
from ..files import file_sha1
from .descriptors import DESCRIPTOR_VERSION, SAMPLE_RATE, VECTOR_SIZE, ClipDescriptors, extract_descriptors

if TYPE_CHECKING:
    from ..manifest import Manifest

CACHE_NAME = "mir-descriptors"

def stem_plus_context(stem: np.ndarray, context: np.ndarray) -> np.ndarray:
    """The generated stem summed with its context mix, as StemGen measures MIRDD.

    Both mono at the same rate; the context is trimmed or zero-padded to the stem's length (the
    stem is what was generated for that context); the sum is scaled down only if it would clip.
    """
    from ..audio import check_finite, fit_length, to_mono

    s = to_mono(np.asarray(stem, dtype=np.float32))
    c = to_mono(np.asarray(context, dtype=np.float32))
    check_finite(s, "stem")
    check_finite(c, "context mix")
    mix = s + fit_length(c, s.shape[-1])
    peak = float(np.abs(mix).max())
    if peak > 1.0:
        mix = mix / peak
    return mix.astype(np.float32)


def load_clip(path: str | Path, context: str | Path | None = None, *, normalize: bool = True,
              headroom_db: float = 14.0) -> np.ndarray:
    """Mono float32 at 44.1 kHz: the file (or file + context mix), loudness-normalised like every
    metric input (-headroom_db LUFS, audiocraft's 14 dB) when `normalize`."""
    from ..audio import load_audio, loudness_normalize
    from ..embedding_cache import prepare_audio

    if context is None:
        return prepare_audio(path, SAMPLE_RATE, normalize, headroom_db)
    stem, _ = load_audio(path, sr=SAMPLE_RATE, mono=True)
    ctx, _ = load_audio(context, sr=SAMPLE_RATE, mono=True)
    mix = stem_plus_context(stem, ctx)
    return loudness_normalize(mix, SAMPLE_RATE, headroom_db=headroom_db) if normalize else mix


def describe_file(path: str | Path, context: str | Path | None = None, *, normalize: bool = True,
                  headroom_db: float = 14.0) -> ClipDescriptors:
    """The descriptors of one file (no cache)."""
    wav = load_clip(path, context, normalize=normalize, headroom_db=headroom_db)
    try:
        return extract_descriptors(wav, SAMPLE_RATE)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from exc


def _worker_init() -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001  (torch is only used for resampling here)
        pass


def _describe_job(path: str, context: str | None, normalize: bool, headroom_db: float) -> np.ndarray:
    return describe_file(path, context, normalize=normalize, headroom_db=headroom_db).to_vector()


def weights_id() -> str:
    """What the cached values depend on besides the audio: essentia's version and ours."""
    from .descriptors import essentia_version

    return f"essentia-{essentia_version()}-mir{DESCRIPTOR_VERSION}"


def content_hash(path: str | Path, context: str | Path | None = None) -> str:
    h = file_sha1(path)
    if context is None:
        return h
    return hashlib.sha1(f"{h}+context:{file_sha1(context)}".encode()).hexdigest()


def describe_files(
    items: Sequence[tuple[str, str] | tuple[str, str, str | None]],
    *,
    cache: EmbeddingCache | None = None,
    normalize: bool = True,
    headroom_db: float = 14.0,
    workers: int = 2,
    description: str = "MIR descriptors",
) -> dict[str, ClipDescriptors]:
    """{id: ClipDescriptors} for (id, audio path[, context path]) items, in item order.

    Cached clips are read back; the others are extracted in `workers` processes (1 = in this
    process) and cached one by one as they finish; one progress bar for the lot.
    """
    from ..progress import make_progress

    cache = cache or EmbeddingCache()
    wid = weights_id()
    norm = [(str(it[0]), str(it[1]), (str(it[2]) if len(it) > 2 and it[2] is not None else None)) for it in items]
    ids = [i for i, _, _ in norm]
    if len(set(ids)) != len(ids):
        raise AudioError("duplicate clip ids given to the MIR descriptor extraction")
    done: dict[str, ClipDescriptors] = {}
    todo: list[tuple[str, str, str | None, Path]] = []
    for clip_id, path, ctx in norm:
        variant = preprocess_tag(normalize, headroom_db, "ctx" if ctx else "")
        cpath = cache.path(content_hash(path, ctx), CACHE_NAME, wid, SAMPLE_RATE, variant)
        arr = cache.load(cpath, VECTOR_SIZE)
        if arr is not None:
            try:
                done[clip_id] = ClipDescriptors.from_vector(arr[0])
                cache.hits += 1
                continue
            except ValueError:
                pass
        cache.misses += 1
        todo.append((clip_id, path, ctx, cpath))

    def finish(clip_id: str, cpath: Path, vec: np.ndarray) -> None:
        cache.save(cpath, np.asarray(vec, dtype=np.float32)[None])
        done[clip_id] = ClipDescriptors.from_vector(vec)

    with make_progress() as progress:
        task = progress.add_task(description, total=len(norm), completed=len(norm) - len(todo))
        if workers > 1 and len(todo) > 1:
            import multiprocessing as mp

            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context(method),
                                       initializer=_worker_init)
            try:
                futures = {pool.submit(_describe_job, path, ctx, normalize, headroom_db): (clip_id, cpath)
                           for clip_id, path, ctx, cpath in todo}
                for fut in as_completed(futures):
                    clip_id, cpath = futures[fut]
                    finish(clip_id, cpath, fut.result())
                    progress.advance(task)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for clip_id, path, ctx, cpath in todo:
                finish(clip_id, cpath, _describe_job(path, ctx, normalize, headroom_db))
                progress.advance(task)
    return {i: done[i] for i in ids}


def describe_manifest_clips(manifests: Sequence["Manifest | str | Path"], *, cache: EmbeddingCache | None = None,
                            normalize: bool = True, headroom_db: float = 14.0, workers: int = 2) -> int:
    """Extract into the cache the descriptors of every clip (plain audio, no context mix) of several
    manifests, all in one pool; returns how many clips that is.

    For a pipeline that evaluates several systems: their MIRDD then reads every clip back. One pool
    for all keeps the workers busy to the very last clip, where a pool per system and side pays the
    pool's start-up each time and leaves a core idle on each set's last clip.
    """
    from ..manifest import Manifest

    items = []
    for k, m in enumerate(manifests):
        man = m if isinstance(m, Manifest) else Manifest.read(m)
        items += [(f"{k}/{e.id}", e.audio_path) for e in man.with_audio()]
    describe_files(items, cache=cache, normalize=normalize, headroom_db=headroom_db, workers=workers)
    return len(items)


CONTEXT_STEM = "context"


def describe_manifests(generated: "Manifest", reference: "Manifest", *, context: str | None = "auto",
                       cache: EmbeddingCache | None = None, normalize: bool = True, headroom_db: float = 14.0,
                       workers: int = 2) -> tuple[dict[str, ClipDescriptors], dict[str, ClipDescriptors], str | None]:
    """MIRDD's inputs: (generated descriptors, reference descriptors, the context stem used or None).

    Populations, not pairs: every entry with audio on each side. context: the `stems` key holding
    each generated clip's context mix; "auto" uses "context" when every generated entry has one
    (stem generation, measured on stem + context as StemGen does) and plain audio otherwise; None
    never mixes. Reference entries with that stem are mixed the same way; those without it are
    taken as full mixes already.
    """
    gen_entries = generated.with_audio().entries
    ref_entries = reference.with_audio().entries
    if not gen_entries:
        raise MagnetEvalError("MIRDD: the generated manifest has no audio")
    if not ref_entries:
        raise MagnetEvalError("MIRDD: the reference manifest has no audio")
    key = context
    if context == "auto":
        key = CONTEXT_STEM if all(CONTEXT_STEM in e.stems for e in gen_entries) else None
    if key is not None:
        missing = [e.id for e in gen_entries if key not in e.stems]
        if missing:
            raise MagnetEvalError(f"MIRDD on stem + context: {len(missing)} generated entries have no "
                                  f"'{key}' stem (first: {missing[0]})")
    gen_items = [(e.id, e.audio_path, e.stems.get(key) if key else None) for e in gen_entries]
    ref_items = [(e.id, e.audio_path, e.stems.get(key) if key else None) for e in ref_entries]
    opts = dict(cache=cache, normalize=normalize, headroom_db=headroom_db, workers=workers)
    ref = describe_files(ref_items, description="reference MIR descriptors", **opts)
    gen = describe_files(gen_items, description="generated MIR descriptors", **opts)
    return gen, ref, key
