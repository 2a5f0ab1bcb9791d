"""The drum part: the genre's pattern every bar, fills at phrase ends, a cymbal on phrase starts."""

from __future__ import annotations

import random

from .genres import GenreSpec
from .instruments import CRASH, DRUM_LETTERS, HIGH_TOM, LOW_TOM, MID_TOM, RIDE_BELL, SNARE
from .performance import human_velocity
from .score import Note


def _drum_pattern(rng: random.Random, spec: GenreSpec, beats_per_bar: int) -> dict[str, str]:
    if beats_per_bar == 3 and spec.drum_patterns_3:
        return rng.choice(spec.drum_patterns_3)
    pattern = rng.choice(spec.drum_patterns)
    return {k: v[: 4 * beats_per_bar] for k, v in pattern.items()}


def compose_drums(rng: random.Random, spec: GenreSpec, bars: int, beats_per_bar: int) -> tuple[list[Note], int]:
    """The genre's pattern every bar, a fill at the end of every 4-bar phrase (sometimes), crashes on phrase starts."""
    pattern = _drum_pattern(rng, spec, beats_per_bar)
    steps = 4 * beats_per_bar
    levels = {"X": 112, "x": 92, "g": 50, "r": 46}
    cymbal = RIDE_BELL if spec.name in ("jazz", "bossa nova") else CRASH
    notes: list[Note] = []
    fill_next = False
    for bar in range(bars):
        fill = bar % 4 == 3 and rng.random() < 0.55
        if bar == 0 or fill_next or (bar % 8 == 0):
            notes.append(Note(cymbal, bar * beats_per_bar, 1.0, human_velocity(rng, 100)))
        for letter, row in sorted(pattern.items()):
            for step, ch in enumerate(row):
                if ch == "." or (fill and step >= steps - 4):
                    continue
                if ch == "r" and rng.random() > 0.35:
                    continue
                accent = 6 if step % 4 == 0 else 0
                notes.append(Note(DRUM_LETTERS[letter], bar * beats_per_bar + step * 0.25, 0.25, human_velocity(rng, levels[ch] + accent, 6)))
        if fill:
            kind = rng.choice(("snare", "toms", "mixed"))
            fill_notes = {"snare": (SNARE, SNARE, SNARE, SNARE), "toms": (HIGH_TOM, MID_TOM, LOW_TOM, LOW_TOM),
                          "mixed": (SNARE, SNARE, MID_TOM, LOW_TOM)}[kind]
            for i, pitch in enumerate(fill_notes):
                notes.append(Note(pitch, bar * beats_per_bar + (steps - 4 + i) * 0.25, 0.25, human_velocity(rng, 80 + 8 * i, 5)))
            notes.append(Note(DRUM_LETTERS["K"], bar * beats_per_bar + (steps - 4) * 0.25, 0.25, human_velocity(rng, 95)))
        fill_next = fill
    return notes, DRUM_LETTERS["K"]
