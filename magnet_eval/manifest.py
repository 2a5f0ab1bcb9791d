"""The one manifest type of the toolkit (id, caption, audio path, duration, labels, stems) and its readers.

A manifest is what every command exchanges: prompts for generation, reference audio for
metrics, the rendered corpus for training. On disk it is JSON Lines, one entry per line, with
audio paths relative to the manifest's folder so that a folder can be moved as a whole.
Readers for the field's caption files (MusicCaps, AudioCaps) turn them into manifests and
report the rows whose audio is missing instead of failing.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .errors import ManifestError
from .files import atomic_write

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")


def is_audio_name(name: str) -> bool:
    """An audio file name by extension. Names starting with '.' are kept (a clip id may start with one:
    `generate` writes `{id}.wav`); only macOS AppleDouble companions (`._name.wav`) are skipped."""
    return Path(name).suffix.lower() in AUDIO_EXTENSIONS and not name.startswith("._") and Path(name).stem != ""


@dataclass
class ManifestEntry:
    """One clip or prompt. `audio_path` and `stems` are absolute in memory."""

    id: str
    caption: str = ""
    audio_path: Optional[str] = None
    duration: Optional[float] = None
    labels: dict = field(default_factory=dict)
    stems: dict = field(default_factory=dict)

    def to_json(self, base: Path | None = None) -> dict:
        """A JSON-ready dict; paths made relative to `base` when they lie under it."""
        d = asdict(self)

        def rel(p: Optional[str]) -> Optional[str]:
            if p is None or base is None:
                return p
            try:
                return os.path.relpath(p, base)
            except ValueError:  # another drive
                return p

        d["audio_path"] = rel(self.audio_path)
        d["stems"] = {k: rel(v) for k, v in self.stems.items()}
        return d

    @classmethod
    def from_json(cls, d: dict, base: Path | None = None) -> "ManifestEntry":
        def absolute(p: Optional[str]) -> Optional[str]:
            if p is None or os.path.isabs(p) or base is None:
                return p
            return str((base / p).resolve())

        if "id" not in d:
            raise ManifestError("entry has no 'id'")
        cid = d["id"]
        if isinstance(cid, bool) or not isinstance(cid, (str, int)) or not str(cid).strip():
            raise ManifestError(f"'id' must be a non-empty string, got {cid!r}")
        caption = d.get("caption")
        if caption is not None and not isinstance(caption, str):
            raise ManifestError(f"id {cid!r}: 'caption' must be a string, got {type(caption).__name__}")
        audio = d.get("audio_path")
        if audio is not None and (not isinstance(audio, str) or not audio.strip()):
            raise ManifestError(f"id {cid!r}: 'audio_path' must be a non-empty string or null, got {audio!r}")
        duration = d.get("duration")
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration == duration \
                    or duration in (float("inf"), float("-inf")) or duration < 0:
                raise ManifestError(f"id {cid!r}: 'duration' must be a finite number of seconds >= 0, got {duration!r}")
        labels = d.get("labels")
        if labels is not None and not isinstance(labels, dict):
            raise ManifestError(f"id {cid!r}: 'labels' must be an object, got {type(labels).__name__}")
        stems = d.get("stems")
        if stems is not None and (not isinstance(stems, dict)
                                  or not all(isinstance(v, str) and v for v in stems.values())):
            raise ManifestError(f"id {cid!r}: 'stems' must be an object of name -> audio path, got {stems!r}")
        return cls(
            id=str(cid),
            caption=caption or "",
            audio_path=absolute(audio),
            duration=None if duration is None else float(duration),
            labels=dict(labels or {}),
            stems={str(k): absolute(v) for k, v in (stems or {}).items()},
        )


class Manifest:
    """An ordered collection of entries with unique ids."""

    def __init__(self, entries: Iterable[ManifestEntry] = (), source: str | None = None):
        self.entries: list[ManifestEntry] = list(entries)
        self.source = source
        self._index: dict[str, int] = {}
        for i, e in enumerate(self.entries):
            if e.id in self._index:
                raise ManifestError(f"duplicate id {e.id!r} in manifest{' ' + source if source else ''}")
            self._index[e.id] = i

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> ManifestEntry:
        return self.entries[i]

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def by_id(self, id: str) -> ManifestEntry:
        try:
            return self.entries[self._index[id]]
        except KeyError:
            raise ManifestError(f"id {id!r} is not in the manifest{' ' + self.source if self.source else ''}") from None

    def __contains__(self, id: str) -> bool:
        return id in self._index

    def with_audio(self) -> "Manifest":
        """Entries whose audio file exists."""
        return Manifest([e for e in self.entries if e.audio_path and os.path.exists(e.audio_path)], self.source)

    def missing_audio(self) -> list[ManifestEntry]:
        return [e for e in self.entries if not (e.audio_path and os.path.exists(e.audio_path))]

    def filter(self, predicate) -> "Manifest":
        return Manifest([e for e in self.entries if predicate(e)], self.source)

    def split(self, name: str) -> "Manifest":
        """Entries with labels['split'] == name (train / valid / test)."""
        return self.filter(lambda e: e.labels.get("split") == name)

    def duplicate_audio(self) -> dict[str, list[str]]:
        """{audio file: ids} for every file listed under two or more ids (a set would count it twice)."""
        seen: dict[str, list[str]] = {}
        for e in self.entries:
            if e.audio_path:
                seen.setdefault(os.path.realpath(e.audio_path), []).append(e.id)
        return {p: ids for p, ids in seen.items() if len(ids) > 1}

    def check_duplicate_audio(self) -> None:
        """Raise ManifestError when one audio file stands for several ids (FAD/KL would weigh it twice)."""
        dups = self.duplicate_audio()
        if dups:
            shown = "; ".join(f"{p} under ids {', '.join(ids)}" for p, ids in list(dups.items())[:5])
            raise ManifestError(f"manifest{' ' + self.source if self.source else ''}: the same audio file is listed "
                                f"under several ids ({len(dups)} file(s)): {shown}")

    def validate(self) -> None:
        """Raise ManifestError listing every entry whose audio (or a stem) is missing, or a file under two ids."""
        self.check_duplicate_audio()
        problems = []
        for e in self.entries:
            if not e.audio_path:
                problems.append(f"{e.id}: no audio_path")
            elif not os.path.exists(e.audio_path):
                problems.append(f"{e.id}: {e.audio_path} does not exist")
            for name, p in e.stems.items():
                if not os.path.exists(p):
                    problems.append(f"{e.id}: stem {name} {p} does not exist")
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ManifestError(
                f"manifest{' ' + self.source if self.source else ''} does not match its files "
                f"({len(problems)} problems):\n  {shown}{more}"
            )

    def write(self, path: str | Path) -> Path:
        """Write JSONL atomically, paths relative to the manifest's folder."""
        path = Path(path)
        base = path.parent.resolve()
        lines = [json.dumps(e.to_json(base), ensure_ascii=False) + "\n" for e in self.entries]
        with atomic_write(path) as f:
            f.write("".join(lines).encode("utf-8"))
        return path

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        """Read a JSONL manifest; a malformed line raises ManifestError with its line number."""
        from .validate import read_text

        path = Path(path)
        if path.is_dir():
            raise ManifestError(f"{path}: is a folder, where a manifest file (.jsonl) was expected")
        if not path.is_file():
            raise ManifestError(f"{path}: manifest file does not exist")
        text = read_text(path, "manifest", ManifestError)  # UTF-8, readable, not empty
        base = path.parent.resolve()
        entries = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict):
                    raise ValueError("not a JSON object")
                entries.append(ManifestEntry.from_json(d, base))
            except (ValueError, RecursionError, ManifestError) as exc:
                raise ManifestError(f"{path}:{lineno}: malformed manifest line ({exc})") from exc
        if not entries:
            raise ManifestError(f"{path}: manifest is empty")
        manifest = cls(entries, source=str(path))
        manifest.check_duplicate_audio()
        return manifest

    @classmethod
    def from_dir(cls, folder: str | Path) -> "Manifest":
        """Every audio file in a folder (not recursive), ids = file stems, no captions."""
        folder = Path(folder)
        files = sorted(p for p in folder.iterdir() if is_audio_name(p.name) and p.is_file())
        if not files:
            raise ManifestError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
        return cls([ManifestEntry(id=p.stem, audio_path=str(p.resolve())) for p in files], source=str(folder))


def read_any(path: str | Path) -> Manifest:
    """A .jsonl manifest, or a folder (its manifest.jsonl if present, else its audio files)."""
    path = Path(path)
    if path.is_dir():
        if (path / "manifest.jsonl").is_file():
            return Manifest.read(path / "manifest.jsonl")
        return Manifest.from_dir(path)
    if path.suffix == ".jsonl":
        return Manifest.read(path)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file or folder")
    raise ManifestError(f"{path}: expected a .jsonl manifest or a folder of audio files")


# ----------------------------------------------------------------------------- caption readers


def _read_csv(path: Path, required: list[str]) -> list[dict]:
    """Rows of a caption CSV (UTF-8); a row with fewer or more fields than the header is refused with its line."""
    import io

    from .validate import read_text

    if path.is_dir():
        raise ManifestError(f"{path}: is a folder, where a caption file (.csv) was expected")
    if not path.is_file():
        raise ManifestError(f"{path}: caption file does not exist")
    text = read_text(path, "caption file", ManifestError)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise ManifestError(f"{path}: missing columns {missing}; found {columns}")
        rows = []
        for row in reader:
            line = reader.line_num
            if None in row:
                raise ManifestError(f"{path}:{line}: malformed row: {len(columns) + len(row[None])} fields, "
                                    f"the header has {len(columns)}")
            short = [c for c in columns if row.get(c) is None]
            if short:
                raise ManifestError(f"{path}:{line}: malformed row: {len(columns) - len(short)} fields, the header "
                                    f"has {len(columns)} (missing {', '.join(short[:5])})")
            rows.append(row)
    except csv.Error as exc:
        raise ManifestError(f"{path}: malformed CSV ({exc})") from exc
    if not rows:
        raise ManifestError(f"{path}: no rows")
    return rows


def _index_audio(audio_dir: Path | None) -> dict[str, Path]:
    """Map file stem (and the stem without a leading 'Y', AudioSet style) -> path."""
    if audio_dir is None:
        return {}
    if not audio_dir.is_dir():
        raise ManifestError(f"{audio_dir}: audio folder does not exist")
    index: dict[str, Path] = {}
    for root, _dirs, files in os.walk(audio_dir):
        for name in files:
            p = Path(root) / name
            if is_audio_name(name):
                index.setdefault(p.stem, p)
    return index


def _num_variants(x: str) -> list[str]:
    """'30' -> ['30', '30.0', '30.000', '30000']: the spellings downloaders use for segment bounds."""
    try:
        v = float(x)
    except ValueError:
        return [x]
    out = [x, f"{v:g}", f"{v:.1f}", f"{v:.3f}", f"{int(round(v * 1000))}"]
    if v == int(v):
        out.append(str(int(v)))
    return list(dict.fromkeys(out))


def _segment_names(vid: str, start: str, end: str | None) -> list[str]:
    names = [vid, f"Y{vid}"]
    for s in _num_variants(start):
        if end is None:
            names += [f"{vid}_{s}", f"{vid}-{s}", f"Y{vid}_{s}"]
            continue
        for e in _num_variants(end):
            names += [f"{vid}_{s}-{e}", f"{vid}_{s}_{e}", f"{vid}-{s}-{e}", f"[{vid}]-[{s}-{e}]", f"Y{vid}_{s}_{e}", f"Y{vid}_{s}-{e}"]
    return names


def _find(index: dict[str, Path], names: list[str]) -> Path | None:
    for n in names:
        if n in index:
            return index[n]
    return None


@dataclass
class ReadResult:
    """A manifest made from a caption file, and the rows whose audio was not found."""

    manifest: Manifest
    missing: list[str]  # ids without audio (empty when no audio folder was given)
    n_rows: int


def _parse_list(text: str) -> list:
    text = (text or "").strip()
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
        return list(value) if isinstance(value, (list, tuple)) else [value]
    except (ValueError, SyntaxError):
        return [t.strip() for t in text.split(",") if t.strip()]


def _truthy(x: str) -> bool:
    return str(x).strip().lower() in {"true", "1", "yes"}


MUSICCAPS_COLUMNS = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
                     "author_id", "is_balanced_subset", "is_audioset_eval"]


def read_musiccaps(csv_path: str | Path, audio_dir: str | Path | None = None) -> ReadResult:
    """MusicCaps `musiccaps-public.csv` (extra columns kept in labels) + an optional folder of clips.

    Files may be named by ytid alone or with the segment bounds (`{ytid}_{start}-{end}`,
    `[{ytid}]-[{start}-{end}]`, ...). Rows whose audio is not found are listed in `missing`.
    """
    csv_path = Path(csv_path)
    rows = _read_csv(csv_path, MUSICCAPS_COLUMNS)
    index = _index_audio(Path(audio_dir) if audio_dir else None)
    entries, missing = [], []
    for i, row in enumerate(rows):
        ytid = (row.get("ytid") or "").strip()
        if not ytid:
            raise ManifestError(f"{csv_path}: row {i + 2} has an empty ytid")
        try:
            start, end = float(row["start_s"]), float(row["end_s"])
        except ValueError as exc:
            raise ManifestError(f"{csv_path}: row {i + 2} ({ytid}) has non-numeric bounds") from exc
        audio = _find(index, _segment_names(ytid, row["start_s"], row["end_s"])) if index else None
        if audio_dir and audio is None:
            missing.append(ytid)
        extra = {k: v for k, v in row.items() if k not in MUSICCAPS_COLUMNS and k is not None}
        labels = {
            "source": "musiccaps",
            "start_s": start,
            "end_s": end,
            "audioset_positive_labels": _parse_list(row["audioset_positive_labels"]),
            "aspect_list": _parse_list(row["aspect_list"]),
            "author_id": row["author_id"],
            "is_balanced_subset": _truthy(row["is_balanced_subset"]),
            "is_audioset_eval": _truthy(row["is_audioset_eval"]),
        }
        if extra:
            labels["extra"] = extra
        entries.append(ManifestEntry(id=ytid, caption=row["caption"].strip(),
                                     audio_path=str(audio.resolve()) if audio else None,
                                     duration=end - start, labels=labels))
    return ReadResult(Manifest(entries, source=str(csv_path)), missing, len(rows))


AUDIOCAPS_COLUMNS = ["audiocap_id", "youtube_id", "start_time", "caption"]


def read_audiocaps(csv_path: str | Path, audio_dir: str | Path | None = None, caption_choice: str = "first",
                   seed: int = 0, clip_duration: float = 10.0) -> ReadResult:
    """AudioCaps CSV -> one entry per clip (youtube_id), its captions kept in labels['captions'].

    The caption used as the prompt is fixed: the one with the lowest audiocap_id ('first'), or
    one drawn with `seed` ('random'). Audio files may be named `{youtube_id}`, `Y{youtube_id}`,
    with the start time, or by audiocap_id.
    """
    if caption_choice not in ("first", "random"):
        raise ManifestError(f"caption_choice must be 'first' or 'random', not {caption_choice!r}")
    csv_path = Path(csv_path)
    rows = _read_csv(csv_path, AUDIOCAPS_COLUMNS)
    clips: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        vid = (row.get("youtube_id") or "").strip()
        if not vid:
            raise ManifestError(f"{csv_path}: row {i + 2} has an empty youtube_id")
        clips.setdefault(vid, []).append(row)
    index = _index_audio(Path(audio_dir) if audio_dir else None)
    rng = random.Random(seed)
    entries, missing = [], []
    for vid, group in clips.items():
        group = sorted(group, key=lambda r: (0, int(r["audiocap_id"]), "") if r["audiocap_id"].strip().isdigit()
                       else (1, 0, r["audiocap_id"]))
        chosen = group[0] if caption_choice == "first" else group[rng.randrange(len(group))]
        start = group[0]["start_time"]
        names = _segment_names(vid, start, None) + [r["audiocap_id"] for r in group]
        try:
            s = float(start)
            names += _segment_names(vid, start, f"{s + clip_duration:g}")
        except ValueError:
            pass
        audio = _find(index, names) if index else None
        if audio_dir and audio is None:
            missing.append(vid)
        entries.append(ManifestEntry(
            id=vid, caption=chosen["caption"].strip(),
            audio_path=str(audio.resolve()) if audio else None, duration=clip_duration,
            labels={"source": "audiocaps", "start_time": float(start) if start else None,
                    "audiocap_id": chosen["audiocap_id"], "captions": [r["caption"].strip() for r in group],
                    "audiocap_ids": [r["audiocap_id"] for r in group], "caption_choice": caption_choice,
                    "caption_seed": seed}))
    return ReadResult(Manifest(entries, source=str(csv_path)), missing, len(rows))


_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def prompts_manifest(texts: list[str]) -> Manifest:
    """A manifest of literal prompts (ids p000, p001, ...), for `generate --prompts "text"`."""
    return Manifest([ManifestEntry(id=f"p{i:03d}", caption=t) for i, t in enumerate(texts)], source="<prompts>")


def safe_id(text: str) -> str:
    """An id usable as a file name."""
    return _SLUG.sub("_", text).strip("_") or "item"
