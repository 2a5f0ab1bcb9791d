"""How the written notes are played: humanised velocities, swing, timing jitter, clean overlaps.

Every part is composed on a straight grid and then passed through `finish_notes`, so the
feel (swing, looseness) is one decision per piece rather than per part.
"""

from __future__ import annotations

import math
import random

from .score import Note


def human_velocity(rng: random.Random, base: float, spread: float = 5.0) -> int:
    """A humanised MIDI velocity around `base`."""
    return int(min(127, max(1, round(base + rng.gauss(0.0, spread)))))


def swing_time(t: float, swing: float) -> float:
    """Move off-beat eighths (and the sixteenths around them) later within the beat."""
    if swing == 0.5:
        return t
    beat = math.floor(t + 1e-9)
    f = t - beat
    if f <= 0.5:
        f = f * 2 * swing
    else:
        f = swing + (f - 0.5) * 2 * (1 - swing)
    return beat + f


def finish_notes(notes: list[Note], rng: random.Random, swing: float, jitter: float, total_beats: float) -> list[Note]:
    """Swing, jitter start times, keep notes inside the piece and stop same-pitch notes from overlapping."""
    out = []
    for n in notes:
        start = swing_time(n.start, swing)
        end = swing_time(n.start + n.duration, swing)
        if jitter:
            start = max(0.0, start + rng.gauss(0.0, jitter))
        if start >= total_beats:
            continue
        out.append(Note(n.pitch, round(start, 4), round(max(0.05, min(end, total_beats + 1.0) - start), 4), n.velocity))
    out.sort(key=lambda n: (n.start, n.pitch))
    last: dict[int, int] = {}
    for i, n in enumerate(out):
        j = last.get(n.pitch)
        if j is not None and out[j].start + out[j].duration > n.start - 0.01:
            prev = out[j]
            out[j] = Note(prev.pitch, prev.start, max(0.02, round(n.start - prev.start - 0.01, 4)), prev.velocity)
        last[n.pitch] = i
    return out
