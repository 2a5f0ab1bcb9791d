"""Compose a multi-track piece (drums, bass, chords, lead) in a genre, from one seeded RNG.

The parts follow the harmony the way players would: a progression of chords diatonic to the
key (one chord per bar or per two bars), a bass that plays the chord roots in the genre's
rhythm (eighths, walking lines, one-drop, offbeat house bass...), chords voiced with smooth
voice leading and comped in the genre's pattern, a lead melody that puts chord tones on the
strong beats and moves by scale steps in between, built from a repeated two-bar motif, and
drums from the genre's patterns with fills and crashes at phrase boundaries. Velocities and
timing are humanised and swing is applied where the genre swings. Times are in beats.

The piece-level choices (tempo, key, metre, progression, which parts play, on which
instruments) are made here; each part is written by its own module (`drums`, `bass`,
`comping`, `melody`), the score types live in `score` and the playing feel in `performance`.
"""

from __future__ import annotations

import math
import random

from .bass import compose_bass
from .comping import compose_chords
from .drums import compose_drums
from .genres import GENRES
from .melody import compose_lead
from .performance import finish_notes
from .score import PARTS, Part, Piece
from .theory import Key, diatonic_chord, dominant_seventh, pc_name

__all__ = ["choose_genre", "compose", "ground_truth"]


def choose_genre(seed: int, index: int, genres: list[str] | None = None) -> str:
    """Genres cycle in seeded random blocks so any N is balanced and a clip's genre does not depend on N."""
    names = list(genres) if genres else list(GENRES)
    block = index // len(names)
    order = names[:]
    random.Random(f"genre-order:{seed}:{block}").shuffle(order)
    return order[index % len(names)]


def compose(rng: random.Random, genre: str, duration: float) -> Piece:
    """A complete piece of at least `duration` seconds in `genre`, every choice drawn from `rng`."""
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; known: {', '.join(GENRES)}")
    spec = GENRES[genre]
    tempo = rng.randint(*spec.tempo)
    key = Key(rng.randrange(12), rng.choice(spec.modes))
    beats_per_bar = rng.choice(spec.meters)
    progressions = [p for p in spec.progressions if not (key.mode == "harmonic minor" and 3 in p)]
    degrees = rng.choice(progressions)
    sevenths = rng.random() < spec.sevenths
    if spec.blues:
        progression = [dominant_seventh(key, d) for d in degrees]
    else:
        progression = [diatonic_chord(key, d, seventh=sevenths) for d in degrees]
    bars_per_chord = rng.choice(spec.bars_per_chord)
    total_beats = duration * tempo / 60.0
    bars = max(1, math.ceil(total_beats / beats_per_bar - 1e-9))
    chords = [progression[(bar // bars_per_chord) % len(progression)] for bar in range(bars)]
    swing = round(rng.uniform(*spec.swing), 3) if spec.swing[1] > 0.5 else 0.5
    mood = rng.choice(spec.moods)

    has_bass = rng.random() < spec.bass_prob
    has_lead = rng.random() < spec.lead_prob
    parts: dict[str, Part] = {}
    if spec.drum_kits:
        kit = rng.choice(spec.drum_kits)
        drum_notes, _ = compose_drums(rng, spec, bars, beats_per_bar)
        parts["drums"] = Part("drums", kit, True, "pattern", finish_notes(drum_notes, rng, swing, 0.004, total_beats))
    if has_bass:
        program = rng.choice(spec.bass_programs)
        parts["bass"] = Part("bass", program, False, spec.bass_style,
                             finish_notes(compose_bass(rng, spec, key, chords, beats_per_bar), rng, swing, 0.006, total_beats))
    program = rng.choice(spec.comp_programs)
    comp_notes, comp_style = compose_chords(rng, spec, program, chords, beats_per_bar)
    parts["chords"] = Part("chords", program, False, comp_style, finish_notes(comp_notes, rng, swing, 0.006, total_beats))
    if has_lead:
        choices = [p for p in spec.lead_programs if p != parts["chords"].program] or list(spec.lead_programs)
        program = rng.choice(choices)
        parts["lead"] = Part("lead", program, False, "melody",
                             finish_notes(compose_lead(rng, spec, key, chords, beats_per_bar), rng, swing, 0.008, total_beats))
    ordered = {name: parts[name] for name in PARTS if name in parts}
    return Piece(genre=genre, tempo=tempo, key=key, beats_per_bar=beats_per_bar, bars=bars, progression=progression,
                 bars_per_chord=bars_per_chord, chords=chords, swing=swing, mood=mood, parts=ordered,
                 total_beats=total_beats)


def ground_truth(piece: Piece, duration: float) -> dict:
    """The labels of a piece: what a listener or an estimator should recover from the audio."""
    return {
        "genre": piece.genre,
        "tempo": piece.tempo,
        "key": piece.key.label,
        "tonic": piece.key.label.split(" ")[0],
        "mode": piece.key.mode,
        "scale": [pc_name(p) for p in piece.key.scale],
        "time_signature": piece.time_signature,
        "beats_per_bar": piece.beats_per_bar,
        "chord_progression": [c.symbol for c in piece.progression],
        "chord_roman": [c.roman for c in piece.progression],
        "bars_per_chord": piece.bars_per_chord,
        "chords": piece.chord_timeline(duration),
        "swing": piece.swing,
        "mood": piece.mood,
        "instruments": {name: part.instrument for name, part in piece.parts.items()},
        "programs": {name: part.program for name, part in piece.parts.items()},
        "styles": {name: part.style for name, part in piece.parts.items()},
        "n_notes": {name: sum(1 for n in part.notes if n.start * piece.seconds_per_beat < duration)
                    for name, part in piece.parts.items()},
    }
