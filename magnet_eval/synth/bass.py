"""The bass part: chord roots in the genre's rhythm (pattern bars, eighths, walking lines, drones...)."""

from __future__ import annotations

import random

from .genres import GenreSpec
from .performance import human_velocity
from .score import Note
from .theory import Chord, Key, pitch_in_range


def _chord_tone(chord: Chord, token: str) -> int:
    """Pitch class (or octave marker) of a pattern token: R root, 3 third, 5 fifth, 7 seventh (or root), O octave."""
    if token in ("R", "O"):
        return chord.root
    if token == "3":
        return chord.third
    if token == "5":
        return chord.fifth
    if token == "7":
        return chord.pcs[3] if len(chord.pcs) > 3 else chord.root
    if token == "6":
        return (chord.root + 9) % 12
    if token == "b7":
        return (chord.root + 10) % 12
    raise ValueError(token)


# (start beat, token, duration) per 4/4 bar
BASS_PATTERNS: dict[str, tuple[tuple[tuple[float, str, float], ...], ...]] = {
    "funk": (
        ((0, "R", 0.4), (0.75, "R", 0.2), (1.5, "O", 0.2), (1.75, "R", 0.2), (2.5, "5", 0.3), (2.75, "O", 0.2), (3.5, "7", 0.4)),
        ((0, "R", 0.6), (1.0, "O", 0.2), (1.5, "R", 0.2), (2.25, "R", 0.2), (2.5, "5", 0.2), (3.0, "O", 0.2), (3.75, "R", 0.2)),
        ((0, "R", 0.3), (0.5, "R", 0.2), (1.25, "O", 0.2), (2.0, "R", 0.4), (2.75, "3", 0.2), (3.0, "5", 0.3), (3.5, "O", 0.2)),
    ),
    "onedrop": (
        ((0.5, "R", 0.4), (1.0, "R", 0.9), (2.0, "5", 0.4), (2.5, "3", 0.4), (3.0, "R", 0.9)),
        ((0.0, "R", 1.4), (1.5, "R", 0.4), (2.5, "5", 0.4), (3.0, "O", 0.4), (3.5, "5", 0.4)),
    ),
    "bossa": (
        ((0.0, "R", 1.4), (1.5, "5", 0.45), (2.0, "5", 1.4), (3.5, "R", 0.45)),
    ),
    "sparse": (
        ((0.0, "R", 1.4), (2.5, "5", 0.4), (3.0, "R", 0.9)),
        ((0.0, "R", 2.4), (2.75, "R", 0.5), (3.5, "5", 0.4)),
        ((0.0, "R", 1.0), (1.5, "R", 0.4), (2.0, "3", 1.0), (3.5, "5", 0.4)),
    ),
}


def compose_bass(rng: random.Random, spec: GenreSpec, key: Key, chords: list[Chord], beats_per_bar: int) -> list[Note]:
    """Chord roots in the genre's rhythm, with fifths, octaves and approach notes where the style has them."""
    lo, hi = spec.bass_range
    home = lo + 9
    style = spec.bass_style
    bar_patterns = BASS_PATTERNS.get(style)
    pattern = rng.choice(bar_patterns) if bar_patterns else None
    chug_mask = rng.choice(("x.xxx.xxx.xxx.xx", "xxxxxxxxxxxxxxxx", "x.x.xxx.x.x.xxx.", "xx.xxx.xxx.xxx.x"))
    notes: list[Note] = []
    prev = None
    bar_beats = beats_per_bar
    for bar, chord in enumerate(chords):
        t0 = bar * bar_beats
        nxt = chords[bar + 1] if bar + 1 < len(chords) else chords[0]
        root = pitch_in_range(chord.root, lo, hi, prev if prev is not None else home)
        if prev is not None and abs(root - home) > 9:  # do not drift away from the register
            root = pitch_in_range(chord.root, lo, hi, home)
        next_root = pitch_in_range(nxt.root, lo, hi, root)

        def tone(token: str) -> int:
            if token == "O":
                return root + 12 if root + 12 <= hi + 12 else root
            return pitch_in_range(_chord_tone(chord, token), lo, hi + 7, root + 3)

        if pattern is not None:
            scale = 1.0
            for start, token, dur in pattern:
                start *= scale
                if start >= bar_beats:
                    continue
                accent = 10 if start == int(start) else 0
                notes.append(Note(tone(token), t0 + start, min(dur, bar_beats - start), human_velocity(rng, 88 + accent)))
        elif style == "eighths":
            for i in range(2 * bar_beats):
                pitch = root
                if i == 2 * bar_beats - 1 and nxt.root != chord.root and rng.random() < 0.5:
                    pitch = _approach(key, next_root, rng)
                notes.append(Note(pitch, t0 + 0.5 * i, 0.45, human_velocity(rng, 96 if i % 2 == 0 else 84)))
        elif style == "chug":
            for i in range(4 * bar_beats):
                if chug_mask[i % 16] == "x":
                    notes.append(Note(root, t0 + 0.25 * i, 0.22, human_velocity(rng, 104 if i % 4 == 0 else 90)))
        elif style == "walking":
            notes.extend(_walking_bar(rng, key, chord, root, next_root, t0, bar_beats, lo, hi + 5))
        elif style == "offbeat":
            for beat in range(bar_beats):
                pitch = root + 12 if (beat == bar_beats - 1 and rng.random() < 0.3) else root
                notes.append(Note(pitch, t0 + beat + 0.5, 0.4, human_velocity(rng, 100)))
        elif style == "driving":
            for i in range(2 * bar_beats):
                pitch = root + 12 if i % 4 == 3 else root
                notes.append(Note(pitch, t0 + 0.5 * i, 0.42, human_velocity(rng, 100 if i % 2 == 0 else 86)))
        elif style == "halves":
            if bar_beats == 3:
                notes.append(Note(root, t0, 1.0, human_velocity(rng, 86)))
                notes.append(Note(tone("5"), t0 + 1, 2.0, human_velocity(rng, 74)))
            else:
                notes.append(Note(root, t0, 2.0, human_velocity(rng, 86)))
                notes.append(Note(tone(rng.choice(("5", "3", "R"))), t0 + 2, 2.0, human_velocity(rng, 76)))
        elif style == "drone":
            if bar == 0 or chord != chords[bar - 1]:
                length = 1
                while bar + length < len(chords) and chords[bar + length] == chord:
                    length += 1
                notes.append(Note(root, t0, length * bar_beats - 0.1, human_velocity(rng, 80)))
        elif style == "boogie":  # the boogie-woogie line up and down the dominant chord, in (swung) eighths
            line = (0, 4, 7, 9, 10, 9, 7, 4)
            for i in range(2 * bar_beats):
                notes.append(Note(root + line[i % 8], t0 + 0.5 * i, 0.45, human_velocity(rng, 94 if i % 2 == 0 else 80)))
        else:
            raise ValueError(f"unknown bass style {style!r}")
        prev = root
    return notes


def _approach(key: Key, target: int, rng: random.Random) -> int:
    """A note leading into `target`: the scale step below/above it, or a chromatic neighbour."""
    if rng.random() < 0.5:
        return target - 1 if rng.random() < 0.6 else target + 1
    below = [p for p in range(target - 3, target) if key.contains(p)]
    above = [p for p in range(target + 1, target + 4) if key.contains(p)]
    choices = ([below[-1]] if below else []) + ([above[0]] if above else [])
    return rng.choice(choices) if choices else target - 1


def _walking_bar(rng: random.Random, key: Key, chord: Chord, root: int, next_root: int, t0: float, beats: int,
                 lo: int, hi: int) -> list[Note]:
    """Quarter notes: root on beat 1, chord tones / scale steps heading for the next root, an approach note last."""
    notes = [Note(root, t0, 0.95, human_velocity(rng, 96))]
    current = root
    for beat in range(1, beats - 1):
        remaining = beats - beat
        goal = current + (next_root - current) / remaining
        pool = [p for p in range(lo, hi + 1) if p % 12 in chord.pcs or (key.contains(p) and rng.random() < 0.3)]
        pool = [p for p in pool if p != current] or [current + 2]
        current = min(pool, key=lambda p: (abs(p - goal) + rng.random() * 2.0, p))
        notes.append(Note(current, t0 + beat, 0.95, human_velocity(rng, 86)))
    approach = _approach(key, next_root, rng)
    if approach == current:
        approach = next_root + (1 if next_root + 1 != current else -1)
    notes.append(Note(approach, t0 + beats - 1, 0.95, human_velocity(rng, 84)))
    return notes
