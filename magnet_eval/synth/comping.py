"""The chords part: the progression voiced with voice leading and comped in the genre's pattern."""

from __future__ import annotations

import random

from .genres import GenreSpec
from .performance import human_velocity
from .score import Note
from .theory import Chord, pitch_in_range, voice_lead


COMP_RHYTHMS: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {  # (start, duration) within a 4/4 bar
    "comp": (((0.0, 0.75), (1.5, 0.5)), ((1.5, 1.0), (3.0, 0.5)), ((0.0, 1.5), (2.5, 1.0)), ((0.5, 0.5), (2.0, 0.5), (3.5, 0.5))),
    "stabs": (((0.5, 0.25), (1.5, 0.25), (2.5, 0.25), (3.5, 0.25)), ((0.75, 0.25), (1.5, 0.25), (2.75, 0.25), (3.5, 0.5)),
              ((0.0, 0.25), (0.75, 0.25), (1.5, 0.5), (3.0, 0.25))),
    "scratch": (((0.0, 0.2), (0.75, 0.15), (1.5, 0.2), (2.25, 0.15), (2.5, 0.2), (3.25, 0.15), (3.5, 0.2)),
                ((0.5, 0.2), (1.0, 0.15), (1.75, 0.2), (2.5, 0.2), (3.0, 0.15), (3.75, 0.15))),
    "bossa": (((0.0, 0.45), (1.5, 0.45), (2.5, 0.45)), ((0.5, 0.45), (2.0, 0.45), (3.0, 0.45))),
}


def _power_chord(chord: Chord, lo: int) -> tuple[int, ...]:
    root = pitch_in_range(chord.root, lo, lo + 11, lo)
    fifth = root + ((chord.fifth - chord.root) % 12)
    return (root, fifth, root + 12)


def compose_chords(rng: random.Random, spec: GenreSpec, program: int, chords: list[Chord],
                   beats_per_bar: int) -> tuple[list[Note], str]:
    """The progression voiced with voice leading and played in the genre's comping pattern."""
    lo, hi = spec.comp_range
    center = (lo + hi) // 2
    style = spec.comp_style
    if style == "arpeggio" and program in (48, 49):  # bowed strings sustain rather than arpeggiate
        style = "pad"
    if style == "shuffle" and program == 29:
        style = "boogie_riff"
    if style == "skank" and program in (16, 17):
        style = "bubble"
    rhythms = COMP_RHYTHMS.get(style)
    fixed_rhythm = rng.choice(rhythms) if rhythms else None
    power_pattern = rng.choice(("eighths", "sustain", "push"))
    notes: list[Note] = []
    voicing: tuple[int, ...] | None = None
    for bar, chord in enumerate(chords):
        t0 = bar * beats_per_bar
        voicing = voice_lead(chord, voicing, lo, hi, center)
        changed = bar == 0 or chord != chords[bar - 1]
        if style == "power":
            pc = _power_chord(chord, lo)
            if power_pattern == "eighths":
                hits = [(0.5 * i, 0.45, 100 if i % 2 == 0 else 82) for i in range(2 * beats_per_bar)]
            elif power_pattern == "sustain":
                hits = [(0.0, beats_per_bar - 0.1, 100)]
            else:
                hits = [(0.0, 1.4, 102), (1.5, 1.0, 92), (3.0, 0.9, 90)]
            for s, d, v in hits:
                if s < beats_per_bar:
                    notes.extend(Note(p, t0 + s, d, human_velocity(rng, v)) for p in pc)
        elif style == "chug":
            pc = _power_chord(chord, lo)
            for i in range(4 * beats_per_bar):
                if i % 4 == 0 or (i % 2 == 0 and rng.random() < 0.6) or rng.random() < 0.2:
                    dur = 0.9 if (i == 0 and rng.random() < 0.3) else 0.2
                    notes.extend(Note(p, t0 + 0.25 * i, dur, human_velocity(rng, 100 if i % 4 == 0 else 86)) for p in pc[:2])
        elif style in ("pad", "rhodes"):
            if style == "pad" and not changed:
                continue
            length = 1
            while style == "pad" and bar + length < len(chords) and chords[bar + length] == chord:
                length += 1
            for i, p in enumerate(voicing):
                strum = 0.03 * i if style == "rhodes" else 0.0
                notes.append(Note(p, t0 + strum, length * beats_per_bar - 0.15 - strum, human_velocity(rng, 72 if style == "pad" else 66)))
            if style == "rhodes" and rng.random() < 0.4 and beats_per_bar == 4:
                notes.extend(Note(p, t0 + 2.5, 1.3, human_velocity(rng, 56)) for p in voicing[1:])
        elif style == "arpeggio":
            order = (0, 2, 1, 2) if rng.random() < 0.5 else (0, 1, 2, 1)
            span = voicing[:3]
            for i in range(2 * beats_per_bar):
                p = span[order[i % 4]]
                notes.append(Note(p, t0 + 0.5 * i, 0.6, human_velocity(rng, 74 if i % 2 == 0 else 64)))
        elif style == "skank":
            top = voicing[-3:]
            for beat in range(1, beats_per_bar, 2):
                notes.extend(Note(p, t0 + beat, 0.22, human_velocity(rng, 90)) for p in top)
        elif style == "bubble":
            for i in range(2 * beats_per_bar):
                if i % 2 == 1:
                    notes.extend(Note(p, t0 + 0.5 * i, 0.3, human_velocity(rng, 80)) for p in voicing)
        elif style == "shuffle":
            for s, d in ((1.0, 0.35), (1.5, 0.3), (3.0, 0.35), (3.5, 0.3))[: 2 * beats_per_bar]:
                if s < beats_per_bar:
                    notes.extend(Note(p, t0 + s, d, human_velocity(rng, 84)) for p in voicing)
        elif style == "boogie_riff":
            root = pitch_in_range(chord.root, 40, 51, 45)
            for i in range(2 * beats_per_bar):
                upper = root + (7 if (i // 2) % 2 == 0 else 9)
                notes.append(Note(root, t0 + 0.5 * i, 0.45, human_velocity(rng, 90 if i % 2 == 0 else 78)))
                notes.append(Note(upper, t0 + 0.5 * i, 0.45, human_velocity(rng, 86 if i % 2 == 0 else 74)))
        elif fixed_rhythm is not None:  # comp, stabs, scratch, bossa
            bar_rhythm = fixed_rhythm if style != "comp" else rng.choice(rhythms)
            upper = voicing[1:] if style == "comp" and len(voicing) > 3 else voicing
            for s, d in bar_rhythm:
                if s < beats_per_bar:
                    base = 88 if s == int(s) else 80
                    notes.extend(Note(p, t0 + s, d, human_velocity(rng, base)) for p in upper)
        else:
            raise ValueError(f"unknown comping style {style!r}")
    return notes, style
