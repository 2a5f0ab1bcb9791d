"""The lead part: a melody from repeated two-bar motifs, chord tones on strong beats, scale steps between."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .genres import GenreSpec
from .performance import human_velocity
from .score import Note
from .theory import Chord, Key, pitch_in_range


@dataclass
class _Motif:
    onsets: list[tuple[float, float]]  # (start within the 2-bar unit, duration)
    moves: list[float]  # one random draw per onset, reused when the motif repeats


def _make_motif(rng: random.Random, spec: GenreSpec, beats_per_bar: int) -> _Motif:
    grid = spec.lead_grid
    length = 2 * beats_per_bar
    slots = [round(i * grid, 4) for i in range(int(length / grid))]
    starts = []
    for s in slots:
        in_bar = s % beats_per_bar
        if in_bar == 0:
            p = 0.85
        elif s == int(s):
            p = min(0.9, spec.lead_density + 0.2)
        else:
            p = spec.lead_density * (0.6 if grid < 0.5 and (s * 2) != int(s * 2) else 1.0)
        if rng.random() < p:
            starts.append(s)
    if len(starts) < 3:
        starts = sorted(set(starts) | {0.0, 1.0, float(beats_per_bar)})
    onsets = []
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else length
        gap = end - s
        dur = min(gap * (0.92 if rng.random() < 0.8 else 0.55), 2.5)
        onsets.append((s, max(dur, 0.12)))
    return _Motif(onsets, [rng.random() for _ in onsets])


def compose_lead(rng: random.Random, spec: GenreSpec, key: Key, chords: list[Chord], beats_per_bar: int) -> list[Note]:
    """A melody from two-bar motifs (form A A' B A per 8 bars): chord tones on strong beats, scale steps between."""
    lo, hi = spec.lead_range
    pool = key.pentatonic() if spec.lead_scale == "pentatonic" else key.scale
    scale = [p for p in range(lo, hi + 1) if p % 12 in pool]
    motif_a, motif_b = _make_motif(rng, spec, beats_per_bar), _make_motif(rng, spec, beats_per_bar)
    units = math.ceil(len(chords) / 2)
    notes: list[Note] = []
    prev = pitch_in_range(chords[0].root, lo, hi, (lo + hi) // 2)
    direction = 1
    for unit in range(units):
        form = ("A", "A", "B", "A")[unit % 4]
        motif = motif_a if form == "A" else motif_b
        variation = unit % 4 == 1  # A': same rhythm, fresh pitch choices
        draws = [rng.random() for _ in motif.moves] if variation else motif.moves
        base = unit * 2 * beats_per_bar
        for (s, dur), draw in zip(motif.onsets, draws):
            t = base + s
            bar = int(t // beats_per_bar)
            if bar >= len(chords):
                break
            chord = chords[bar]
            beat_in_bar = s % beats_per_bar
            strong = beat_in_bar == 0 or (beats_per_bar == 4 and beat_in_bar == 2)
            if strong:
                tones = sorted((p for p in range(lo, hi + 1) if p % 12 in chord.pcs), key=lambda p: (abs(p - prev), p))
                pitch = tones[0] if draw < 0.65 or len(tones) < 2 else tones[1]
            else:
                idx = min(range(len(scale)), key=lambda i: abs(scale[i] - prev))
                step = 1 if draw < 0.7 else (2 if draw < 0.9 else 0)
                if idx + direction * step < 0 or idx + direction * step >= len(scale):
                    direction = -direction
                pitch = scale[max(0, min(len(scale) - 1, idx + direction * step))]
                if draw > 0.93:
                    direction = -direction
            phrase_end = unit % 2 == 1 and s == motif.onsets[-1][0]
            if phrase_end:
                tones = sorted((p for p in range(lo, hi + 1) if p % 12 in (chord.root, chord.third)), key=lambda p: abs(p - pitch))
                pitch = tones[0]
                dur = max(dur, min(2.0, 2 * beats_per_bar - s))
            accent = 8 if beat_in_bar == int(beat_in_bar) else 0
            notes.append(Note(pitch, t, dur, human_velocity(rng, 86 + accent, 6)))
            prev = pitch
            if rng.random() < 0.15:
                direction = -direction
    return notes
