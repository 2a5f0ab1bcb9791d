"""Write a composed piece (or some of its parts) as a Standard MIDI File with mido.

Drums go on channel 10 (index 9) with the kit chosen by a program change in FluidSynth's
percussion bank; every other part gets its own channel, program, fixed volume, reverb send
and no chorus (CC 93 = 0), so a render depends on nothing but the file. Chord changes are
written as marker events, and the file ends at a fixed time so every stem renders alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..files import atomic_write
from .score import Piece

TICKS_PER_BEAT = 480
CHANNELS = {"bass": 0, "chords": 1, "lead": 2, "drums": 9}


def _ticks(beats: float) -> int:
    return int(round(beats * TICKS_PER_BEAT))


def _key_signature(piece: Piece) -> str | None:
    name, family = piece.key.label.split(" ")
    return name + ("m" if family == "minor" else "")


def piece_to_midi(piece: Piece, parts: Iterable[str] | None = None, end_beats: float | None = None, reverb: int = 40):
    """A type-1 mido.MidiFile of the chosen parts (all by default), ending at `end_beats`."""
    import mido

    names = [p for p in piece.parts if parts is None or p in set(parts)]
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    end_tick = _ticks(end_beats if end_beats is not None else piece.total_beats)

    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name="meta", time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.tempo), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=piece.beats_per_bar, denominator=4, time=0))
    try:
        meta.append(mido.MetaMessage("key_signature", key=_key_signature(piece), time=0))
    except (ValueError, KeyError):
        pass
    now = 0
    for bar, chord in enumerate(piece.chords):
        tick = _ticks(bar * piece.beats_per_bar)
        if tick >= end_tick:
            break
        if bar == 0 or chord != piece.chords[bar - 1]:
            meta.append(mido.MetaMessage("marker", text=chord.symbol, time=tick - now))
            now = tick
    meta.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    mid.tracks.append(meta)

    for name in names:
        part = piece.parts[name]
        ch = CHANNELS[name]
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=f"{name}: {part.instrument}", time=0))
        track.append(mido.Message("control_change", channel=ch, control=0, value=0, time=0))
        track.append(mido.Message("program_change", channel=ch, program=part.program, time=0))
        track.append(mido.Message("control_change", channel=ch, control=7, value=100, time=0))
        track.append(mido.Message("control_change", channel=ch, control=10, value=64, time=0))
        track.append(mido.Message("control_change", channel=ch, control=91, value=int(reverb), time=0))
        track.append(mido.Message("control_change", channel=ch, control=93, value=0, time=0))
        events: list[tuple[int, int, int, int]] = []  # (tick, 0 = off / 1 = on, pitch, velocity)
        for n in part.notes:
            on = _ticks(n.start)
            if on >= end_tick:
                continue
            off = min(max(on + 1, _ticks(n.start + n.duration)), end_tick)
            events.append((on, 1, n.pitch, n.velocity))
            events.append((off, 0, n.pitch, 0))
        events.sort()
        now = 0
        for tick, is_on, pitch, velocity in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, channel=ch, note=pitch, velocity=velocity, time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
        mid.tracks.append(track)
    return mid


def write_midi(path: str | Path, piece: Piece, parts: Iterable[str] | None = None, end_beats: float | None = None,
               reverb: int = 40) -> Path:
    """Write the piece (or the named parts) to `path` atomically."""
    path = Path(path)
    with atomic_write(path) as f:
        piece_to_midi(piece, parts, end_beats, reverb).save(file=f)
    return path
