"""Compose a multi-track piece (drums, bass, chords, lead) in a genre, from one seeded RNG.

The parts follow the harmony the way players would: a progression of chords diatonic to the
key (one chord per bar or per two bars), a bass that plays the chord roots in the genre's
rhythm (eighths, walking lines, one-drop, offbeat house bass...), chords voiced with smooth
voice leading and comped in the genre's pattern, a lead melody that puts chord tones on the
strong beats and moves by scale steps in between, built from a repeated two-bar motif, and
drums from the genre's patterns with fills and crashes at phrase boundaries. Velocities and
timing are humanised and swing is applied where the genre swings. Times are in beats.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .genres import GENRES, GenreSpec
from .instruments import (CRASH, DRUM_KITS, DRUM_LETTERS, HIGH_TOM, LOW_TOM, MID_TOM, PROGRAMS, RIDE_BELL,
                          SNARE)
from .theory import Chord, Key, diatonic_chord, dominant_seventh, pc_name, pitch_in_range, voice_lead

PARTS = ("drums", "bass", "chords", "lead")


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float  # beats from the start of the piece
    duration: float  # beats
    velocity: int


@dataclass
class Part:
    name: str
    program: int  # GM program, or the drum-kit program (bank 128) for drums
    is_drum: bool
    style: str
    notes: list[Note] = field(default_factory=list)

    @property
    def instrument(self) -> str:
        """Ground-truth instrument name (GM name, or "<kit> drum kit")."""
        if self.is_drum:
            return f"{DRUM_KITS[self.program]} drum kit"
        return PROGRAMS[self.program][0]


@dataclass
class Piece:
    genre: str
    tempo: int
    key: Key
    beats_per_bar: int
    bars: int
    progression: list[Chord]  # one cycle of the progression
    bars_per_chord: int
    chords: list[Chord]  # the chord of every bar
    swing: float
    mood: str
    parts: dict[str, Part]
    total_beats: float

    @property
    def spec(self) -> GenreSpec:
        return GENRES[self.genre]

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def time_signature(self) -> str:
        return f"{self.beats_per_bar}/4"

    def chord_timeline(self, duration: float) -> list[list]:
        """[start_s, end_s, symbol] for each chord change, cut at `duration` seconds."""
        out: list[list] = []
        bar_s = self.beats_per_bar * self.seconds_per_beat
        for bar, chord in enumerate(self.chords):
            start = bar * bar_s
            if start >= duration:
                break
            end = min((bar + 1) * bar_s, duration)
            if out and out[-1][2] == chord.symbol:
                out[-1][1] = round(end, 4)
            else:
                out.append([round(start, 4), round(end, 4), chord.symbol])
        return out


# --------------------------------------------------------------------------- helpers


def _vel(rng: random.Random, base: float, spread: float = 5.0) -> int:
    """A humanised MIDI velocity around `base`."""
    return int(min(127, max(1, round(base + rng.gauss(0.0, spread)))))


def _swing_time(t: float, swing: float) -> float:
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


def _finish(notes: list[Note], rng: random.Random, swing: float, jitter: float, total_beats: float) -> list[Note]:
    """Swing, jitter start times, keep notes inside the piece and stop same-pitch notes from overlapping."""
    out = []
    for n in notes:
        start = _swing_time(n.start, swing)
        end = _swing_time(n.start + n.duration, swing)
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


# --------------------------------------------------------------------------- drums


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
            notes.append(Note(cymbal, bar * beats_per_bar, 1.0, _vel(rng, 100)))
        for letter, row in sorted(pattern.items()):
            for step, ch in enumerate(row):
                if ch == "." or (fill and step >= steps - 4):
                    continue
                if ch == "r" and rng.random() > 0.35:
                    continue
                accent = 6 if step % 4 == 0 else 0
                notes.append(Note(DRUM_LETTERS[letter], bar * beats_per_bar + step * 0.25, 0.25, _vel(rng, levels[ch] + accent, 6)))
        if fill:
            kind = rng.choice(("snare", "toms", "mixed"))
            fill_notes = {"snare": (SNARE, SNARE, SNARE, SNARE), "toms": (HIGH_TOM, MID_TOM, LOW_TOM, LOW_TOM),
                          "mixed": (SNARE, SNARE, MID_TOM, LOW_TOM)}[kind]
            for i, pitch in enumerate(fill_notes):
                notes.append(Note(pitch, bar * beats_per_bar + (steps - 4 + i) * 0.25, 0.25, _vel(rng, 80 + 8 * i, 5)))
            notes.append(Note(DRUM_LETTERS["K"], bar * beats_per_bar + (steps - 4) * 0.25, 0.25, _vel(rng, 95)))
        fill_next = fill
    return notes, DRUM_LETTERS["K"]


# --------------------------------------------------------------------------- bass


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
                notes.append(Note(tone(token), t0 + start, min(dur, bar_beats - start), _vel(rng, 88 + accent)))
        elif style == "eighths":
            for i in range(2 * bar_beats):
                pitch = root
                if i == 2 * bar_beats - 1 and nxt.root != chord.root and rng.random() < 0.5:
                    pitch = _approach(key, next_root, rng)
                notes.append(Note(pitch, t0 + 0.5 * i, 0.45, _vel(rng, 96 if i % 2 == 0 else 84)))
        elif style == "chug":
            for i in range(4 * bar_beats):
                if chug_mask[i % 16] == "x":
                    notes.append(Note(root, t0 + 0.25 * i, 0.22, _vel(rng, 104 if i % 4 == 0 else 90)))
        elif style == "walking":
            notes.extend(_walking_bar(rng, key, chord, root, next_root, t0, bar_beats, lo, hi + 5))
        elif style == "offbeat":
            for beat in range(bar_beats):
                pitch = root + 12 if (beat == bar_beats - 1 and rng.random() < 0.3) else root
                notes.append(Note(pitch, t0 + beat + 0.5, 0.4, _vel(rng, 100)))
        elif style == "driving":
            for i in range(2 * bar_beats):
                pitch = root + 12 if i % 4 == 3 else root
                notes.append(Note(pitch, t0 + 0.5 * i, 0.42, _vel(rng, 100 if i % 2 == 0 else 86)))
        elif style == "halves":
            if bar_beats == 3:
                notes.append(Note(root, t0, 1.0, _vel(rng, 86)))
                notes.append(Note(tone("5"), t0 + 1, 2.0, _vel(rng, 74)))
            else:
                notes.append(Note(root, t0, 2.0, _vel(rng, 86)))
                notes.append(Note(tone(rng.choice(("5", "3", "R"))), t0 + 2, 2.0, _vel(rng, 76)))
        elif style == "drone":
            if bar == 0 or chord != chords[bar - 1]:
                length = 1
                while bar + length < len(chords) and chords[bar + length] == chord:
                    length += 1
                notes.append(Note(root, t0, length * bar_beats - 0.1, _vel(rng, 80)))
        elif style == "boogie":  # the boogie-woogie line up and down the dominant chord, in (swung) eighths
            line = (0, 4, 7, 9, 10, 9, 7, 4)
            for i in range(2 * bar_beats):
                notes.append(Note(root + line[i % 8], t0 + 0.5 * i, 0.45, _vel(rng, 94 if i % 2 == 0 else 80)))
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
    notes = [Note(root, t0, 0.95, _vel(rng, 96))]
    current = root
    for beat in range(1, beats - 1):
        remaining = beats - beat
        goal = current + (next_root - current) / remaining
        pool = [p for p in range(lo, hi + 1) if p % 12 in chord.pcs or (key.contains(p) and rng.random() < 0.3)]
        pool = [p for p in pool if p != current] or [current + 2]
        current = min(pool, key=lambda p: (abs(p - goal) + rng.random() * 2.0, p))
        notes.append(Note(current, t0 + beat, 0.95, _vel(rng, 86)))
    approach = _approach(key, next_root, rng)
    if approach == current:
        approach = next_root + (1 if next_root + 1 != current else -1)
    notes.append(Note(approach, t0 + beats - 1, 0.95, _vel(rng, 84)))
    return notes


# --------------------------------------------------------------------------- chords (comping)

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
                    notes.extend(Note(p, t0 + s, d, _vel(rng, v)) for p in pc)
        elif style == "chug":
            pc = _power_chord(chord, lo)
            for i in range(4 * beats_per_bar):
                if i % 4 == 0 or (i % 2 == 0 and rng.random() < 0.6) or rng.random() < 0.2:
                    dur = 0.9 if (i == 0 and rng.random() < 0.3) else 0.2
                    notes.extend(Note(p, t0 + 0.25 * i, dur, _vel(rng, 100 if i % 4 == 0 else 86)) for p in pc[:2])
        elif style in ("pad", "rhodes"):
            if style == "pad" and not changed:
                continue
            length = 1
            while style == "pad" and bar + length < len(chords) and chords[bar + length] == chord:
                length += 1
            for i, p in enumerate(voicing):
                strum = 0.03 * i if style == "rhodes" else 0.0
                notes.append(Note(p, t0 + strum, length * beats_per_bar - 0.15 - strum, _vel(rng, 72 if style == "pad" else 66)))
            if style == "rhodes" and rng.random() < 0.4 and beats_per_bar == 4:
                notes.extend(Note(p, t0 + 2.5, 1.3, _vel(rng, 56)) for p in voicing[1:])
        elif style == "arpeggio":
            order = (0, 2, 1, 2) if rng.random() < 0.5 else (0, 1, 2, 1)
            span = voicing[:3]
            for i in range(2 * beats_per_bar):
                p = span[order[i % 4]]
                notes.append(Note(p, t0 + 0.5 * i, 0.6, _vel(rng, 74 if i % 2 == 0 else 64)))
        elif style == "skank":
            top = voicing[-3:]
            for beat in range(1, beats_per_bar, 2):
                notes.extend(Note(p, t0 + beat, 0.22, _vel(rng, 90)) for p in top)
        elif style == "bubble":
            for i in range(2 * beats_per_bar):
                if i % 2 == 1:
                    notes.extend(Note(p, t0 + 0.5 * i, 0.3, _vel(rng, 80)) for p in voicing)
        elif style == "shuffle":
            for s, d in ((1.0, 0.35), (1.5, 0.3), (3.0, 0.35), (3.5, 0.3))[: 2 * beats_per_bar]:
                if s < beats_per_bar:
                    notes.extend(Note(p, t0 + s, d, _vel(rng, 84)) for p in voicing)
        elif style == "boogie_riff":
            root = pitch_in_range(chord.root, 40, 51, 45)
            for i in range(2 * beats_per_bar):
                upper = root + (7 if (i // 2) % 2 == 0 else 9)
                notes.append(Note(root, t0 + 0.5 * i, 0.45, _vel(rng, 90 if i % 2 == 0 else 78)))
                notes.append(Note(upper, t0 + 0.5 * i, 0.45, _vel(rng, 86 if i % 2 == 0 else 74)))
        elif fixed_rhythm is not None:  # comp, stabs, scratch, bossa
            bar_rhythm = fixed_rhythm if style != "comp" else rng.choice(rhythms)
            upper = voicing[1:] if style == "comp" and len(voicing) > 3 else voicing
            for s, d in bar_rhythm:
                if s < beats_per_bar:
                    base = 88 if s == int(s) else 80
                    notes.extend(Note(p, t0 + s, d, _vel(rng, base)) for p in upper)
        else:
            raise ValueError(f"unknown comping style {style!r}")
    return notes, style


# --------------------------------------------------------------------------- lead melody


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
            notes.append(Note(pitch, t, dur, _vel(rng, 86 + accent, 6)))
            prev = pitch
            if rng.random() < 0.15:
                direction = -direction
    return notes


# --------------------------------------------------------------------------- the piece


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
        parts["drums"] = Part("drums", kit, True, "pattern", _finish(drum_notes, rng, swing, 0.004, total_beats))
    if has_bass:
        program = rng.choice(spec.bass_programs)
        parts["bass"] = Part("bass", program, False, spec.bass_style,
                             _finish(compose_bass(rng, spec, key, chords, beats_per_bar), rng, swing, 0.006, total_beats))
    program = rng.choice(spec.comp_programs)
    comp_notes, comp_style = compose_chords(rng, spec, program, chords, beats_per_bar)
    parts["chords"] = Part("chords", program, False, comp_style, _finish(comp_notes, rng, swing, 0.006, total_beats))
    if has_lead:
        choices = [p for p in spec.lead_programs if p != parts["chords"].program] or list(spec.lead_programs)
        program = rng.choice(choices)
        parts["lead"] = Part("lead", program, False, "melody",
                             _finish(compose_lead(rng, spec, key, chords, beats_per_bar), rng, swing, 0.008, total_beats))
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

