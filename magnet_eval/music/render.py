"""Render composed pieces with FluidSynth and the FluidR3 General MIDI soundfont into a corpus.

Each part (drums, bass, chords, lead) is written as its own MIDI file and rendered alone, so the
stems are exact; the mix is their sum, scaled with the stems by one gain so that mix = sum of
stems holds on disk. Rendering is deterministic for a (seed, index) pair: FluidSynth runs
offline (`-F`) with fixed settings, and the piece comes from `random.Random(f"{seed}:{index}")`,
so the same clip comes out whatever N or the worker count. Clips are written atomically and a
sidecar JSON marks a finished clip, which makes a killed run resumable.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..audio import fit_length, load_audio, save_audio
from ..errors import MagnetEvalError
from ..manifest import Manifest, ManifestEntry
from ..progress import make_progress
from .compose import Note, Piece, caption, compose, labels

SOUNDFONT_CANDIDATES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9
PEAK = 0.89  # mix peak after normalisation (about -1 dBFS)
SPLITS = (("test", 1), ("valid", 1), ("train", 8))  # tenths of the corpus


def find_soundfont() -> Path:
    for c in SOUNDFONT_CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    raise MagnetEvalError("the General MIDI soundfont FluidR3_GM.sf2 is not installed: run `make setup` "
                          "or `apt-get install fluid-soundfont-gm`")


def find_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise MagnetEvalError("the fluidsynth program is not installed: run `make setup` or `apt-get install fluidsynth`")
    return exe


def split_of(clip_id: str) -> str:
    """train / valid / test by a hash of the id (80/10/10), stable when the corpus grows."""
    tenth = int(hashlib.sha1(clip_id.encode()).hexdigest(), 16) % 10
    acc = 0
    for name, share in SPLITS:
        acc += share
        if tenth < acc:
            return name
    return "train"


def write_midi(path: Path, notes: list[Note], tempo: int, program: int | None, beats_per_bar: int) -> None:
    """One part as a type-1 MIDI file (program None = the drum channel)."""
    import mido

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=beats_per_bar, denominator=4, time=0))
    mid.tracks.append(meta)
    track = mido.MidiTrack()
    channel = DRUM_CHANNEL if program is None else 0
    if program is not None:
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
    events = []
    for n in notes:
        on = int(round(n.start * TICKS_PER_BEAT))
        off = max(on + 1, int(round((n.start + n.length) * TICKS_PER_BEAT)))
        events.append((on, 1, n.pitch, n.velocity))
        events.append((off, 0, n.pitch, 0))
    events.sort(key=lambda e: (e[0], e[1], e[2]))  # note-offs before note-ons at the same tick
    now = 0
    for tick, is_on, pitch, vel in events:
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=vel, channel=channel, time=tick - now))
        now = tick
    mid.tracks.append(track)
    mid.save(str(path))


def render_midi(midi: Path, wav: Path, sample_rate: int) -> None:
    cmd = [find_fluidsynth(), "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-O", "s16", "-T", "wav",
           "-o", "synth.chorus.active=0", "-o", "synth.reverb.active=1", "-F", str(wav), str(find_soundfont()), str(midi)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wav.exists():
        raise MagnetEvalError(f"fluidsynth failed on {midi}: {proc.stderr.strip()[-500:]}")


def render_piece(piece: Piece, duration: float, sample_rate: int, workdir: Path) -> dict[str, np.ndarray]:
    """Render each part of `piece` to mono float32 of exactly `duration` seconds."""
    n = int(round(duration * sample_rate))
    stems = {}
    for part, notes in piece.parts.items():
        program = None if part == "drums" else piece.instruments[part][0]
        mid, wav = workdir / f"{part}.mid", workdir / f"{part}.wav"
        write_midi(mid, notes, piece.tempo, program, piece.beats_per_bar)
        render_midi(mid, wav, sample_rate)
        audio, _ = load_audio(wav, sr=sample_rate, mono=True)
        if np.abs(audio).max() < 1e-4:  # a part that sounds nothing is absent, not written as silence
            continue
        stems[part] = fit_length(audio, n)
    return stems


def render_clip(out_dir: Path, seed: int, index: int, duration: float, sample_rate: int) -> dict:
    """Compose, render and write one clip (wav, stems, MIDI, sidecar). Returns its manifest record."""
    clip_id = f"synth{seed}_{index:05d}"
    sidecar = out_dir / "clips" / f"{clip_id}.json"
    if sidecar.is_file():
        record = json.loads(sidecar.read_text())
        if Path(out_dir / record["audio_path"]).is_file() and all((out_dir / p).is_file() for p in record["stems"].values()):
            return record
    rng = random.Random(f"{seed}:{index}")
    piece = compose(rng, duration)
    text = caption(piece, rng)
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        stems = render_piece(piece, duration, sample_rate, Path(tmp))
        if not stems:
            raise MagnetEvalError(f"{clip_id}: every part rendered silent")
        mix = np.sum(list(stems.values()), axis=0)
        gain = PEAK / max(float(np.abs(mix).max()), 1e-6)
        audio_rel = f"audio/{clip_id}.wav"
        save_audio(out_dir / audio_rel, mix * gain, sample_rate)
        stem_paths = {}
        for part, wav in stems.items():
            rel = f"stems/{clip_id}/{part}.wav"
            save_audio(out_dir / rel, wav * gain, sample_rate)
            stem_paths[part] = rel
        midi_rel = f"midi/{clip_id}.mid"
        (out_dir / "midi").mkdir(parents=True, exist_ok=True)
        write_midi(out_dir / midi_rel, [n for notes in piece.parts.values() for n in notes], piece.tempo,
                   piece.instruments["lead"][0], piece.beats_per_bar)
    lab = labels(piece)
    lab.update({"split": split_of(clip_id), "seed": seed, "index": index, "midi": midi_rel, "source": "synth"})
    record = {"id": clip_id, "caption": text, "audio_path": audio_rel, "duration": duration, "labels": lab, "stems": stem_paths}
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    tmp_sidecar = sidecar.with_suffix(".json.tmp")
    tmp_sidecar.write_text(json.dumps(record, sort_keys=True))
    tmp_sidecar.replace(sidecar)
    return json.loads(sidecar.read_text())  # the same key order as a resumed clip's record


def _render_job(args: tuple) -> dict:
    return render_clip(*args)


def render_corpus(out_dir: str | Path, n: int, duration: float = 10.0, seed: int = 0, workers: int = 2,
                  sample_rate: int = 32000) -> Manifest:
    """Render `n` clips into `out_dir` (resuming a partial run) and write `out_dir/manifest.jsonl`."""
    if n <= 0:
        raise MagnetEvalError("--n must be positive")
    if duration <= 0:
        raise MagnetEvalError("--duration must be positive")
    find_fluidsynth(), find_soundfont()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, seed, i, duration, sample_rate) for i in range(n)]
    records: list[dict | None] = [None] * n
    with make_progress() as progress:
        task = progress.add_task(f"rendering {n} clips", total=n)
        if workers <= 1:
            for i, job in enumerate(jobs):
                records[i] = _render_job(job)
                progress.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_render_job, job): i for i, job in enumerate(jobs)}
                from concurrent.futures import as_completed

                for fut in as_completed(futures):
                    records[futures[fut]] = fut.result()
                    progress.advance(task)
    base = out_dir.resolve()
    manifest = Manifest([ManifestEntry.from_json(r, base) for r in records if r is not None], source=str(out_dir))
    manifest.write(out_dir / "manifest.jsonl")
    return manifest
