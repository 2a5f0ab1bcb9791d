"""Build the offline text-to-music corpus: compose, render, mix, caption and index N clips in parallel.

Layout of the output folder:
    audio/{id}.wav            the mix, mono, `sample_rate`, exactly `duration` seconds
    stems/{id}/{part}.wav     drums / bass / chords / lead (only the parts the piece has)
    midi/{id}.mid             all parts, for transcription-style ground truth
    records/{id}.json         the clip's finished manifest line (written last: marks the clip done)
    manifest.jsonl            every clip in index order (magnet_eval.manifest format)

Clip `i` of seed `s` is composed from RNGs seeded by (s, i) only, and its genre comes from a
seeded block order, so the first N clips are the same whatever N, worker count or resume
history. Each stem is rendered on its own; the stems are levelled to the genre's mix, summed,
and mix and stems are scaled by one common gain that puts the mix peak at -1 dBFS, so the mix
equals the sum of the stems as written. Parts the piece does not have, and parts that render
silent, are recorded in `labels["absent_stems"]` and get no file.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import random
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import MagnetEvalError
from ..files import atomic_write
from ..manifest import Manifest, ManifestEntry
from ..progress import info, make_progress
from .captions import caption
from .composer import choose_genre, compose, ground_truth
from .score import PARTS
from .genres import GENRES
from .midi import write_midi
from .render import find_fluidsynth, find_soundfont, render_mono

GENERATOR = "magnet-eval synth 1"
PEAK = 10 ** (-1.0 / 20)  # mix peak after normalisation: -1 dBFS
STEM_CEILING = 0.999
SILENT_PEAK = 1e-4  # a rendered stem quieter than this (-80 dBFS) is absent
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLITS = ("train", "valid", "test")
REQUIRED_LABELS = ("genre", "tempo", "key", "mode", "instruments", "time_signature", "chord_progression", "split")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides a clip's bytes besides its index."""

    duration: float = 10.0
    seed: int = 0
    sample_rate: int = 32000
    genres: tuple[str, ...] | None = None

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    def signature(self) -> dict:
        d = asdict(self)
        d["genres"] = list(self.genres) if self.genres else None
        d["generator"] = GENERATOR
        return d


def clip_id(seed: int, index: int) -> str:
    return f"synth{seed}_{index:05d}"


# --------------------------------------------------------------------------- splits


def split_of(id: str, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """train / valid / test from a hash of the id: stable, independent of N and of the other ids."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise MagnetEvalError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    u = int.from_bytes(hashlib.sha256(id.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for name, f in zip(SPLITS, fractions):
        edge += f
        if u < edge:
            return name
    return SPLITS[-1]


def assign_splits(manifest: Manifest, fractions: Sequence[float] = SPLIT_FRACTIONS, overwrite: bool = False) -> Manifest:
    """Give every entry labels["split"] (keeping existing ones unless `overwrite`), for disjoint train / held-out sets."""
    entries = []
    for e in manifest:
        labels = dict(e.labels)
        if overwrite or "split" not in labels:
            labels["split"] = split_of(e.id, fractions)
        entries.append(ManifestEntry(e.id, e.caption, e.audio_path, e.duration, labels, dict(e.stems)))
    return Manifest(entries, manifest.source)


# --------------------------------------------------------------------------- one clip


def _rms_db(x: np.ndarray) -> float:
    return 20.0 * math.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-10))


def mix_stems(stems: dict[str, np.ndarray], levels_db: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Level each stem to its target RMS (dB relative), sum, and scale all by one gain: mix peak -1 dBFS, no stem clips."""
    levelled = {}
    for name, x in stems.items():
        gain = 10.0 ** ((levels_db.get(name, 0.0) - 20.0 - _rms_db(x)) / 20.0)
        levelled[name] = (x.astype(np.float64) * gain)
    mix = np.sum(list(levelled.values()), axis=0)
    common = PEAK / max(float(np.max(np.abs(mix))), 1e-9)
    loudest_stem = max(float(np.max(np.abs(x))) for x in levelled.values())
    common = min(common, STEM_CEILING / max(loudest_stem, 1e-9))
    return (mix * common).astype(np.float32), {k: (v * common).astype(np.float32) for k, v in levelled.items()}


def _record_path(out: Path, cid: str) -> Path:
    return out / "records" / f"{cid}.json"


def render_clip(out: str | Path, index: int, config: SynthConfig) -> dict:
    """Compose, render and write clip `index`; returns its record (manifest line with relative paths + config)."""
    from ..audio import save_audio

    out = Path(out)
    cid = clip_id(config.seed, index)
    genre = choose_genre(config.seed, index, list(config.genres) if config.genres else None)
    piece = compose(random.Random(f"magnet-eval-synth:{config.seed}:{index}"), genre, config.duration)
    text = caption(piece, random.Random(f"magnet-eval-caption:{config.seed}:{index}"))
    spec = GENRES[genre]
    end_beats = piece.total_beats + 0.25 * piece.tempo / 60.0  # a little past the cut, trimmed away

    absent: dict[str, str] = {}
    for part in PARTS:
        if part not in piece.parts:
            absent[part] = f"no {part} in {genre}" if (part == "drums" and not spec.drum_kits) else "not in this arrangement"
    raw: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix=f"{cid}-") as tmp:
        for part in piece.parts:
            midi = write_midi(Path(tmp) / f"{part}.mid", piece, [part], end_beats, reverb=spec.reverb)
            audio = render_mono(midi, tmp, config.sample_rate, config.n_samples)
            if float(np.max(np.abs(audio))) < SILENT_PEAK:
                absent[part] = "rendered silent"
                continue
            raw[part] = audio
    if not raw:
        raise MagnetEvalError(f"{cid}: every part rendered silent")
    mix, stems = mix_stems(raw, spec.mix_db)

    stem_paths = {}
    for part, audio in stems.items():
        rel = f"stems/{cid}/{part}.wav"
        save_audio(out / rel, audio, config.sample_rate)
        stem_paths[part] = rel
    audio_rel = f"audio/{cid}.wav"
    save_audio(out / audio_rel, mix, config.sample_rate)
    midi_rel = f"midi/{cid}.mid"
    write_midi(out / midi_rel, piece, [p for p in piece.parts if p in stems], piece.total_beats, reverb=spec.reverb)

    labels = ground_truth(piece, config.duration)
    for part in list(labels["instruments"]):
        if part in absent:  # rendered silent: not an instrument of the clip
            for k in ("instruments", "programs", "styles", "n_notes"):
                labels[k].pop(part, None)
    labels.update({
        "split": split_of(cid),
        "stems_present": [p for p in PARTS if p in stem_paths],
        "absent_stems": {p: absent[p] for p in PARTS if p in absent},
        "midi": midi_rel,
        "seed": config.seed,
        "index": index,
        "sample_rate": config.sample_rate,
        "source": "synthetic",
        "generator": GENERATOR,
    })
    record = {"id": cid, "caption": text, "audio_path": audio_rel, "duration": float(config.duration),
              "labels": labels, "stems": stem_paths, "config": config.signature()}
    path = _record_path(out, cid)
    with atomic_write(path) as f:
        f.write((json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    return json.loads(path.read_text(encoding="utf-8"))


def _wav_ok(path: Path, sample_rate: int, n_samples: int) -> bool:
    import soundfile as sf

    try:
        info_ = sf.info(str(path))
    except Exception:
        return False
    return info_.samplerate == sample_rate and info_.frames == n_samples and info_.channels == 1


def finished_record(out: str | Path, index: int, config: SynthConfig) -> dict | None:
    """The clip's record if it is complete (same config, every label, wav + stems + MIDI on disk), else None."""
    out = Path(out)
    path = _record_path(out, clip_id(config.seed, index))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("config") != config.signature():
        return None
    labels = record.get("labels") or {}
    if any(k not in labels for k in REQUIRED_LABELS) or not record.get("caption") or not record.get("stems"):
        return None
    wavs = [record.get("audio_path")] + list(record["stems"].values())
    if not all(isinstance(p, str) and _wav_ok(out / p, config.sample_rate, config.n_samples) for p in wavs):
        return None
    if not (out / labels.get("midi", "")).is_file():
        return None
    return record


def _job(args: tuple[str, int, SynthConfig]) -> dict:
    return render_clip(*args)


# --------------------------------------------------------------------------- the corpus


def build_corpus(out: str | Path, n: int = 200, duration: float = 10.0, seed: int = 0, workers: int = 2,
                 sample_rate: int = 32000, genres: Iterable[str] | None = None, force: bool = False) -> Manifest:
    """Render clips 0..n-1 into `out` (skipping finished ones unless `force`) and write `out/manifest.jsonl`."""
    if n <= 0:
        raise MagnetEvalError(f"--n must be a positive number of clips, got {n}")
    if not (duration > 0 and math.isfinite(duration)):
        raise MagnetEvalError(f"--duration must be a positive number of seconds, got {duration}")
    if sample_rate < 8000:
        raise MagnetEvalError(f"--sample-rate must be at least 8000 Hz, got {sample_rate}")
    if workers < 1:
        raise MagnetEvalError(f"--workers must be at least 1, got {workers}")
    genre_list = tuple(dict.fromkeys(genres)) if genres else None
    unknown = [g for g in genre_list or () if g not in GENRES]
    if unknown:
        raise MagnetEvalError(f"unknown genre(s) {', '.join(unknown)}; known: {', '.join(GENRES)}")
    find_fluidsynth()
    find_soundfont()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(duration=float(duration), seed=int(seed), sample_rate=int(sample_rate), genres=genre_list)
    records: list[dict | None] = [None] * n
    if not force:
        for i in range(n):
            records[i] = finished_record(out, i, config)
    todo = [i for i in range(n) if records[i] is None]
    if n - len(todo):
        info(f"{n - len(todo)} of {n} clips already rendered in {out}: skipping them")

    started = time.perf_counter()
    failures: list[str] = []
    if todo:
        if workers == 1 or len(todo) == 1:
            with make_progress() as progress:
                task = progress.add_task(f"rendering {len(todo)} clips", total=len(todo))
                for i in todo:
                    try:
                        records[i] = render_clip(out, i, config)
                    except MagnetEvalError as exc:
                        failures.append(f"{clip_id(seed, i)}: {exc}")
                    progress.advance(task)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context(method)) as pool:
                pending: dict[Future, int] = {pool.submit(_job, (str(out), i, config)): i for i in todo}
                try:
                    with make_progress() as progress:
                        task = progress.add_task(f"rendering {len(todo)} clips ({workers} workers)", total=len(todo))
                        while pending:
                            done, _ = wait(pending, return_when=FIRST_COMPLETED)
                            for fut in done:
                                i = pending.pop(fut)
                                try:
                                    records[i] = fut.result()
                                except MagnetEvalError as exc:
                                    failures.append(f"{clip_id(seed, i)}: {exc}")
                                progress.advance(task)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        elapsed = time.perf_counter() - started
        info(f"rendered {len(todo) - len(failures)} clips in {elapsed:.1f} s "
             f"({elapsed / max(1, len(todo)):.2f} s per clip with {workers} worker{'s' if workers > 1 else ''})")
    if failures:
        shown = "\n  ".join(failures[:10])
        raise MagnetEvalError(f"{len(failures)} of {n} clips failed (the others are kept; re-run to resume):\n  {shown}")

    base = out.resolve()
    entries = []
    for r in records:
        assert r is not None
        entries.append(ManifestEntry.from_json({k: v for k, v in r.items() if k != "config"}, base))
    manifest = Manifest(entries, source=str(out / "manifest.jsonl"))
    manifest.write(out / "manifest.jsonl")
    return manifest


def summarize(manifest: Manifest) -> dict:
    """Counts by split, genre and present stems: what the CLI prints after a run."""
    from collections import Counter

    return {
        "clips": len(manifest),
        "splits": dict(sorted(Counter(e.labels.get("split") for e in manifest).items())),
        "genres": dict(sorted(Counter(e.labels.get("genre") for e in manifest).items())),
        "stems": dict(sorted(Counter(s for e in manifest for s in e.stems).items())),
    }


__all__ = ["SynthConfig", "assign_splits", "build_corpus", "clip_id", "finished_record", "mix_stems", "render_clip",
           "split_of", "summarize"]
