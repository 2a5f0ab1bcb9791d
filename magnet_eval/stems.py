"""Stem corpora for StemGen: readers (Slakh2100, MUSDB18-HQ, the toolkit's rendered corpus) and training examples.

StemGen learns to answer a mix with one missing part, so a training example is
(context = the sum of the other stems of a clip, target = one stem, the target's instrument
class). Every corpus is read into the same `StemTrack` list, with instrument classes from one
vocabulary (`INSTRUMENTS`): the 16 General MIDI families plus drums (Slakh and the rendered
corpus, from their program numbers) and MUSDB's `vocals` / `other`. See docs/stemgen.md for
the choices the paper leaves open (silent-context probability, segment placement).

All audio goes through `magnet_eval.audio`; bad corpora raise `ManifestError` naming the
folder or file, unreadable audio `AudioError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .audio import fit_length, load_audio
from .errors import ManifestError, MagnetEvalError

# General MIDI program families (8 programs each, in program order), then the non-GM classes.
GM_FAMILIES: tuple[str, ...] = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects",
)
INSTRUMENTS: tuple[str, ...] = GM_FAMILIES + ("drums", "vocals", "other")

# Slakh2100's `inst_class` strings (its own names for the GM families) -> our classes; used when a
# stem has no program number. Slakh calls GM's "Ensemble" family "Strings (continued)".
SLAKH_CLASSES: dict[str, str] = {
    "piano": "piano", "chromatic percussion": "chromatic_percussion", "organ": "organ", "guitar": "guitar",
    "bass": "bass", "strings": "strings", "strings (continued)": "ensemble", "ensemble": "ensemble",
    "brass": "brass", "reed": "reed", "pipe": "pipe", "synth lead": "synth_lead", "synth pad": "synth_pad",
    "synth effects": "synth_effects", "sound effects": "sound_effects", "ethnic": "ethnic",
    "percussive": "percussive", "drums": "drums",
}
MUSDB_STEMS: tuple[str, ...] = ("bass", "drums", "other", "vocals")


def gm_family(program: int, is_drum: bool = False) -> str:
    """The instrument class of a General MIDI program (0-127); drum channels are 'drums' whatever the kit."""
    if is_drum:
        return "drums"
    program = int(program)
    if not 0 <= program <= 127:
        raise MagnetEvalError(f"General MIDI program {program} is outside 0-127")
    return GM_FAMILIES[program // 8]


def instrument_index(name: str, vocabulary: Sequence[str] = INSTRUMENTS) -> int:
    """Class id of an instrument name (case and spaces forgiven); an unknown name lists the known ones."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if key in vocabulary:
        return list(vocabulary).index(key)
    raise MagnetEvalError(f"unknown instrument {name!r}; known instruments: {', '.join(vocabulary)}")


@dataclass
class StemTrack:
    """One multitrack clip: its stems (key -> file) and each stem's instrument class."""

    id: str
    stems: dict[str, Path]
    classes: dict[str, str]
    source: str = ""
    split: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, cls in self.classes.items():
            if cls not in INSTRUMENTS:
                raise ManifestError(f"{self.source or self.id}: stem {key!r} has unknown instrument class {cls!r}")


# ---- Slakh2100 -------------------------------------------------------------------------------------
def _slakh_class(meta: dict, where: str) -> str:
    if meta.get("is_drum"):
        return "drums"
    program = meta.get("program_num")
    if program is not None:
        try:
            return gm_family(int(program))
        except (TypeError, ValueError, MagnetEvalError) as exc:
            raise ManifestError(f"{where}: bad program_num {program!r} ({exc})") from exc
    inst = str(meta.get("inst_class", "")).strip().lower()
    if inst in SLAKH_CLASSES:
        return SLAKH_CLASSES[inst]
    raise ManifestError(f"{where}: unknown instrument (no program_num, inst_class {meta.get('inst_class')!r})")


def read_slakh_track(folder: str | Path) -> StemTrack:
    """One `TrackXXXXX/` folder: `metadata.yaml` (its `stems:` map) and `stems/SXX.flac`.

    Stems whose `audio_rendered` is false have no audio in Slakh and are skipped; a rendered stem
    whose file is missing, a folder without stems, or an unknown instrument is an error naming it.
    """
    import yaml

    folder = Path(folder)
    meta_path = folder / "metadata.yaml"
    if not meta_path.is_file():
        raise ManifestError(f"{folder}: no metadata.yaml (expected Slakh2100's TrackXXXXX/metadata.yaml)")
    try:
        meta = yaml.safe_load(meta_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ManifestError(f"{meta_path}: not valid YAML ({exc})") from exc
    entries = meta.get("stems") if isinstance(meta, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ManifestError(f"{meta_path}: has no 'stems' map")
    stem_dir = folder / "stems"
    stems: dict[str, Path] = {}
    classes: dict[str, str] = {}
    for key, info in sorted(entries.items()):
        info = info or {}
        if info.get("audio_rendered") is False:
            continue
        found = [stem_dir / f"{key}{ext}" for ext in (".flac", ".wav") if (stem_dir / f"{key}{ext}").is_file()]
        if not found:
            raise ManifestError(f"{folder}: stem {key} is rendered in metadata.yaml but {stem_dir / (key + '.flac')} "
                                "does not exist")
        stems[key] = found[0]
        classes[key] = _slakh_class(info, f"{meta_path} stem {key}")
    if not stems:
        raise ManifestError(f"{folder}: stem folder without stems (no rendered stem audio under {stem_dir})")
    split = folder.parent.name if folder.parent.name in ("train", "validation", "test", "omitted") else None
    return StemTrack(folder.name, stems, classes, source=str(folder), split=split)


def read_slakh(root: str | Path) -> list[StemTrack]:
    """Every `Track*/` folder under `root` (the corpus root with train/validation/test, a split, or one track)."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: Slakh2100 folder does not exist")
    if (root / "metadata.yaml").is_file():
        return [read_slakh_track(root)]
    folders = sorted(p for p in root.glob("Track*") if p.is_dir()) or sorted(
        p for p in root.glob("*/Track*") if p.is_dir())
    if not folders:
        raise ManifestError(f"{root}: no Track*/ folders (expected Slakh2100's layout TrackXXXXX/stems/*.flac)")
    return [read_slakh_track(f) for f in folders]


# ---- MUSDB18-HQ ------------------------------------------------------------------------------------
def read_musdb(root: str | Path) -> list[StemTrack]:
    """Track folders holding MUSDB18-HQ's `{bass,drums,other,vocals}.wav` (under train/ and test/, or directly).

    All four stems are required (MUSDB always has them; a partial folder is a broken copy); a
    folder with `mixture.wav` but no stems is an error naming it.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: MUSDB18-HQ folder does not exist")
    candidates = [p for p in sorted(root.iterdir()) if p.is_dir()]
    folders: list[Path] = []
    for p in candidates:
        if p.name in ("train", "test") and not any((p / f"{s}.wav").exists() for s in MUSDB_STEMS):
            folders += [q for q in sorted(p.iterdir()) if q.is_dir()]
        else:
            folders.append(p)
    tracks = []
    for f in folders:
        present = {s: f / f"{s}.wav" for s in MUSDB_STEMS if (f / f"{s}.wav").is_file()}
        if not present:
            if (f / "mixture.wav").exists() or any(f.glob("*.wav")):
                expected = ", ".join(s + ".wav" for s in MUSDB_STEMS)
                raise ManifestError(f"{f}: stem folder without stems (expected {expected})")
            continue
        missing = [s for s in MUSDB_STEMS if s not in present]
        if missing:
            raise ManifestError(f"{f}: missing MUSDB18-HQ stems {', '.join(m + '.wav' for m in missing)}")
        split = f.parent.name if f.parent.name in ("train", "test") else None
        tracks.append(StemTrack(f.name, present, {s: s for s in MUSDB_STEMS}, source=str(f), split=split))
    if not tracks:
        raise ManifestError(f"{root}: no MUSDB18-HQ track folders ({{bass,drums,other,vocals}}.wav)")
    return tracks


# ---- the toolkit's rendered corpus -----------------------------------------------------------------
def read_corpus(manifest_path: str | Path, split: Optional[str] = None) -> list[StemTrack]:
    """Clips of a manifest with `stems` (the rendered corpus): classes are the GM families of `labels.programs`.

    The corpus's drum part plays a drum kit (program = kit number), so 'drums' is always 'drums'.
    """
    from .manifest import Manifest

    manifest = Manifest.read(manifest_path)
    tracks = []
    for e in manifest:
        if split is not None and e.labels.get("split") != split:
            continue
        if not e.stems:
            continue
        programs = e.labels.get("programs") or {}
        classes = {}
        for part in e.stems:
            if part == "drums":
                classes[part] = "drums"
            elif part in programs:
                classes[part] = gm_family(int(programs[part]))
            else:
                raise ManifestError(f"{manifest_path}: clip {e.id} stem {part!r} has no program in labels.programs "
                                    "(unknown instrument)")
        tracks.append(StemTrack(e.id, {k: Path(v) for k, v in e.stems.items()}, classes, source=str(manifest_path),
                                split=e.labels.get("split")))
    if not tracks:
        raise ManifestError(f"{manifest_path}: no clip with stems" + (f" in split {split!r}" if split else ""))
    return tracks


def read_stem_corpus(path: str | Path) -> list[StemTrack]:
    """Any supported stem corpus: a manifest with stems (.jsonl or a folder with manifest.jsonl), a Slakh2100
    folder (Track*/ with metadata.yaml) or a MUSDB18-HQ folder ({bass,drums,other,vocals}.wav per track)."""
    p = Path(path)
    if p.is_file() or (p / "manifest.jsonl").is_file():
        return read_corpus(p if p.is_file() else p / "manifest.jsonl")
    if not p.is_dir():
        raise ManifestError(f"{p}: stem corpus does not exist")
    if (p / "metadata.yaml").is_file() or any(p.glob("Track*")) or any(p.glob("*/Track*")):
        return read_slakh(p)
    return read_musdb(p)


def split_tracks(tracks: Sequence[StemTrack], valid_fraction: float = 0.1) -> tuple[list[StemTrack], list[StemTrack]]:
    """(train, valid): the corpus's own splits when it has a validation split ('valid' / 'validation'),
    else a stable hash of the id puts `valid_fraction` of the tracks in validation; 'test' tracks are left out."""
    import hashlib

    named = {t.split for t in tracks}
    if named & {"valid", "validation"}:
        return ([t for t in tracks if t.split in (None, "train")],
                [t for t in tracks if t.split in ("valid", "validation")])
    pool = [t for t in tracks if t.split != "test"] or list(tracks)

    def bucket(t: StemTrack) -> float:
        return int(hashlib.sha256(t.id.encode()).hexdigest()[:8], 16) / 16 ** 8

    valid = [t for t in pool if bucket(t) < valid_fraction] or pool[-1:]
    train = [t for t in pool if t not in valid] or pool
    return train, valid


# ---- training examples -----------------------------------------------------------------------------
@dataclass
class StemExample:
    """One StemGen training example: context mix, target stem, target class id (all at one sample rate)."""

    context: np.ndarray
    target: np.ndarray
    instrument: int
    track_id: str
    stem: str
    silent_context: bool
    offset: int


def make_example(stems: dict[str, np.ndarray], target: str,
                 silent_context: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(context, target): context = the sum of every stem but `target` (zeros when `silent_context`).

    Stems must have one length (the caller cuts them to one segment).
    """
    if target not in stems:
        raise MagnetEvalError(f"stem {target!r} is not among {sorted(stems)}")
    lengths = {k: v.shape[-1] for k, v in stems.items()}
    if len(set(lengths.values())) != 1:
        raise MagnetEvalError(f"stems of different lengths: {lengths}")
    tgt = np.asarray(stems[target], dtype=np.float32)
    context = np.zeros_like(tgt)
    if not silent_context:
        for k, v in stems.items():
            if k != target:
                context = context + np.asarray(v, dtype=np.float32)
    return context, tgt


class StemExamples:
    """Draws one (clip, stem) example per step from every clip and every stem, deterministically per (seed, step).

    Each step picks a (track, stem) pair uniformly among all pairs, a segment of `segment_s`
    seconds at a random offset (the same for every stem of the clip), and with probability
    `silent_context_prob` replaces the context by silence so the model also learns to start a
    piece from nothing. Decoded tracks are cached (up to `cache_tracks`).
    """

    def __init__(self, tracks: Sequence[StemTrack], sample_rate: int, segment_s: float,
                 silent_context_prob: float = 0.1, seed: int = 0, cache_tracks: int = 32,
                 vocabulary: Sequence[str] = INSTRUMENTS):
        if not tracks:
            raise ManifestError("no stem tracks to draw examples from")
        if not 0.0 <= silent_context_prob <= 1.0:
            raise MagnetEvalError(f"silent_context_prob must be in [0, 1], got {silent_context_prob}")
        self.tracks = list(tracks)
        self.pairs = [(i, k) for i, t in enumerate(self.tracks) for k in sorted(t.stems)]
        if not self.pairs:
            raise ManifestError("the stem tracks hold no stems")
        self.sample_rate = int(sample_rate)
        self.n_samples = int(round(segment_s * sample_rate))
        self.silent_context_prob = float(silent_context_prob)
        self.seed = int(seed)
        self.vocabulary = list(vocabulary)
        self.cache_tracks = cache_tracks
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        """Number of distinct (clip, stem) pairs."""
        return len(self.pairs)

    def _audio(self, i: int) -> dict[str, np.ndarray]:
        if i not in self._cache:
            track = self.tracks[i]
            stems = {k: load_audio(p, sr=self.sample_rate)[0] for k, p in sorted(track.stems.items())}
            n = max(v.shape[-1] for v in stems.values())
            stems = {k: fit_length(v, n) for k, v in stems.items()}
            if len(self._cache) >= self.cache_tracks:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = stems
        return self._cache[i]

    def example(self, step: int) -> StemExample:
        """The example of training step `step` (same seed and step -> same example)."""
        rng = np.random.default_rng([self.seed, int(step)])
        i, key = self.pairs[int(rng.integers(len(self.pairs)))]
        track = self.tracks[i]
        stems = self._audio(i)
        total = next(iter(stems.values())).shape[-1]
        offset = int(rng.integers(0, total - self.n_samples + 1)) if total > self.n_samples else 0
        seg = {k: fit_length(v[offset:offset + self.n_samples], self.n_samples) for k, v in stems.items()}
        silent = bool(rng.random() < self.silent_context_prob)
        context, target = make_example(seg, key, silent_context=silent)
        cls = instrument_index(track.classes[key], self.vocabulary)
        return StemExample(context, target, cls, track.id, key, silent, offset)

    def batch(self, steps: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(context [B, n], target [B, n], instrument [B]) for a list of step indices."""
        ex = [self.example(s) for s in steps]
        return (np.stack([e.context for e in ex]), np.stack([e.target for e in ex]),
                np.array([e.instrument for e in ex], dtype=np.int64))


__all__ = ["GM_FAMILIES", "INSTRUMENTS", "MUSDB_STEMS", "SLAKH_CLASSES", "StemExample", "StemExamples", "StemTrack",
           "gm_family", "instrument_index", "make_example", "read_corpus", "read_musdb", "read_slakh",
           "read_slakh_track", "read_stem_corpus", "split_tracks"]
