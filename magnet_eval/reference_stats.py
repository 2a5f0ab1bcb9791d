"""Cached reference statistics (.npz): the reference side of FAD/KAD without the reference audio.

A stats file holds the float64 mean and covariance of the reference embedding frames, their
count, a fixed-seed subsample of the frames themselves (for KAD and inspection; at most
`max_frames`), the KAD bandwidth and reference self-term computed from those frames, and a
provenance record: embedder, weights id, sample rate, embedding dim, clip count and
durations, loudness normalisation, resampler, toolkit version, creation time, manifest path.
`check_compatible` refuses stats made with another embedder, weights, sample rate or
preprocessing: mixing them would give a meaningless number rather than an error.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import IncompatibleStatsError, MagnetEvalError
from .embedding_cache import EMBED_BATCH
from .files import atomic_write
from .metrics.frechet import GaussianAccumulator, GaussianStats

FORMAT_VERSION = 1


@dataclass
class ReferenceStats:
    mean: np.ndarray
    cov: np.ndarray
    count: int
    frames: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)
    kad_bandwidth: float | None = None
    kad_reference_term: float | None = None
    path: str | None = None

    @property
    def embedder(self) -> str:
        return str(self.provenance.get("embedder", ""))

    @property
    def n_clips(self) -> int:
        return int(self.provenance.get("n_clips", 0))

    def gaussian(self) -> GaussianStats:
        return GaussianStats(self.mean, self.cov, int(self.count))

    def save(self, path: str | Path) -> Path:
        """Write .npz atomically (temp file + rename); provenance as JSON text, no pickles."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "mean": np.asarray(self.mean, np.float64),
            "cov": np.asarray(self.cov, np.float64),
            "count": np.asarray(int(self.count), np.int64),
            "provenance": np.asarray(json.dumps(self.provenance, sort_keys=True)),
            "format_version": np.asarray(FORMAT_VERSION, np.int64),
        }
        if self.frames is not None:
            arrays["frames"] = np.asarray(self.frames, np.float32)
        if self.kad_bandwidth is not None:
            arrays["kad_bandwidth"] = np.asarray(float(self.kad_bandwidth))
            arrays["kad_reference_term"] = np.asarray(float(self.kad_reference_term))
        with atomic_write(path) as f:  # mode 0666 minus umask: statistics are shared
            np.savez(f, **arrays)
        self.path = str(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceStats":
        path = Path(path)
        if not path.is_file():
            raise MagnetEvalError(f"{path}: reference statistics file does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
                missing = {"mean", "cov", "count", "provenance"} - keys
                if missing:
                    raise IncompatibleStatsError(f"{path}: not a magnet-eval statistics file (missing {sorted(missing)})")
                stats = cls(
                    mean=z["mean"].astype(np.float64),
                    cov=z["cov"].astype(np.float64),
                    count=int(z["count"]),
                    frames=z["frames"].astype(np.float32) if "frames" in keys else None,
                    provenance=json.loads(str(z["provenance"])),
                    kad_bandwidth=float(z["kad_bandwidth"]) if "kad_bandwidth" in keys else None,
                    kad_reference_term=float(z["kad_reference_term"]) if "kad_reference_term" in keys else None,
                    path=str(path),
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # truncated/corrupt .npz
            raise MagnetEvalError(f"{path}: cannot read reference statistics ({type(exc).__name__}: {exc}); "
                                  "the file is damaged or truncated, build it again with `stats build`") from exc
        d = stats.mean.shape[0]
        if stats.cov.shape != (d, d) or not np.isfinite(stats.cov).all() or not np.isfinite(stats.mean).all():
            raise IncompatibleStatsError(f"{path}: malformed statistics (mean {stats.mean.shape}, covariance {stats.cov.shape})")
        return stats

    def summary(self) -> dict:
        """What `stats show` prints."""
        p = dict(self.provenance)
        durations = p.pop("clip_durations", None)
        out = {"path": self.path, "dim": int(self.mean.shape[0]), "count (frames)": int(self.count),
               "frames stored": 0 if self.frames is None else int(self.frames.shape[0]),
               "kad bandwidth": self.kad_bandwidth}
        out.update(p)
        if durations:
            arr = np.asarray(durations, dtype=np.float64)
            out["clip durations (s)"] = f"min {arr.min():.2f}, mean {arr.mean():.2f}, max {arr.max():.2f}, total {arr.sum():.1f}"
        out["trace(cov)"] = float(np.trace(self.cov))
        return out


def embedder_identity(embedder) -> dict:
    return {"embedder": str(embedder.name), "weights_id": str(embedder.weights_id),
            "sample_rate": int(embedder.sample_rate)}


def check_compatible(stats: ReferenceStats, embedder, *, normalize: bool | None = None,
                     headroom_db: float | None = None) -> None:
    """Raise IncompatibleStatsError unless `stats` were made with this embedder, weights, rate and preprocessing."""
    want = embedder_identity(embedder)
    prov = stats.provenance
    where = stats.path or "the reference statistics"
    problems = []
    for key in ("embedder", "weights_id", "sample_rate"):
        have = prov.get(key)
        if str(have) != str(want[key]):
            problems.append(f"{key}: stats have {have!r}, this run uses {want[key]!r}")
    dim = getattr(embedder, "dim", None)
    if dim and int(dim) != int(stats.mean.shape[0]):
        problems.append(f"dim: stats have {stats.mean.shape[0]}, the embedder gives {dim}")
    if normalize is not None and "loudness_normalized" in prov and bool(prov["loudness_normalized"]) != bool(normalize):
        problems.append(f"loudness normalisation: stats {prov['loudness_normalized']}, this run {normalize}")
    if (normalize and headroom_db is not None and prov.get("loudness_normalized")
            and not math.isclose(float(prov.get("headroom_db", headroom_db)), float(headroom_db))):
        problems.append(f"headroom: stats {prov.get('headroom_db')} dB, this run {headroom_db} dB")
    if problems:
        raise IncompatibleStatsError(
            f"{where} cannot be used here, it was made differently:\n  " + "\n  ".join(problems)
            + f"\nRebuild it: magnet-eval stats build --embedder {want['embedder']} --audio <reference manifest> --out <file.npz>"
        )


def stats_from_embeddings(
    embeddings: dict[str, np.ndarray],
    embedder,
    *,
    durations: list[float] | None = None,
    manifest_path: str | None = None,
    normalize: bool = True,
    headroom_db: float = 14.0,
    max_frames: int = 10000,
    seed: int = 0,
    kad: bool = True,
) -> ReferenceStats:
    """ReferenceStats from {id: [frames, dim]} embeddings (ids sorted for a reproducible frame subsample)."""
    from .audio import RESAMPLER
    from .metrics.kad import median_bandwidth, reference_self_term

    if not embeddings:
        raise MagnetEvalError("no reference embeddings: the reference manifest has no audio")
    ids = sorted(embeddings)
    frames = np.concatenate([np.asarray(embeddings[i], np.float32) for i in ids], axis=0)
    acc = GaussianAccumulator()
    rows = max(256, 2 ** 22 // max(int(frames.shape[1]), 1))  # float64 chunks of ~32 MB, not one d x d merge per clip
    for s in range(0, frames.shape[0], rows):
        acc.update(frames[s:s + rows])
    if max_frames and frames.shape[0] > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(frames.shape[0], max_frames, replace=False))
        frames = frames[keep]
    bandwidth = term = None
    if kad and frames.shape[0] >= 2:
        bandwidth = median_bandwidth(frames, seed=seed)
        term = reference_self_term(frames.astype(np.float64), bandwidth)
    prov = embedder_identity(embedder)
    prov.update({
        "dim": int(acc.dim),
        "n_clips": len(ids),
        "n_frames": int(acc.count),
        "clip_durations": [round(float(d), 4) for d in (durations or [])],
        "loudness_normalized": bool(normalize),
        "headroom_db": float(headroom_db),
        "resampler": RESAMPLER,
        "frames_stored": int(frames.shape[0]),
        "frames_seed": int(seed),
        "toolkit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "manifest": str(manifest_path) if manifest_path else None,
        "format_version": FORMAT_VERSION,
    })
    return ReferenceStats(acc.mean, acc.cov, acc.count, frames, prov, bandwidth, term)


def build_reference_stats(manifest, embedder, *, cache=None, normalize: bool = True, headroom_db: float = 14.0,
                          max_frames: int = 10000, seed: int = 0, batch_size: int = EMBED_BATCH) -> ReferenceStats:
    """Embed every clip of `manifest` that has audio (cached per file; under torchrun each rank embeds its
    shard and the embeddings are gathered, see `sharding`) and summarise it (see module doc)."""
    from .embedding_cache import embed_files
    from .progress import warn

    missing = manifest.missing_audio()
    if missing:
        warn(f"{len(missing)} reference entries have no audio and are skipped (first: {missing[0].id})")
    with_audio = manifest.with_audio()
    if len(with_audio) == 0:
        raise MagnetEvalError(f"reference manifest {manifest.source}: no entry has an existing audio file")
    items = [(e.id, e.audio_path) for e in with_audio]
    emb = embed_files(items, embedder, cache=cache, normalize=normalize, headroom_db=headroom_db,
                      description=f"reference {embedder.name} embeddings", batch_size=batch_size)
    durations = []
    import soundfile as sf

    for e in with_audio:
        try:
            durations.append(float(sf.info(e.audio_path).duration))
        except RuntimeError:
            durations.append(float(e.duration) if e.duration else float("nan"))
    return stats_from_embeddings(emb, embedder, durations=durations, manifest_path=manifest.source,
                                 normalize=normalize, headroom_db=headroom_db, max_frames=max_frames, seed=seed)
