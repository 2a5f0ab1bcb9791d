"""Music theory for the offline corpus: keys and modes, diatonic chords, voicings.

Everything works on pitch classes (0 = C) and MIDI note numbers. The spelling of pitch
classes is the toolkit's one spelling (the same as `magnet_eval.mir`), so a key label written
here ("Eb major", "F# minor") is directly comparable with what a key estimator reports.
"""

from __future__ import annotations

from dataclasses import dataclass

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Semitones of each mode above its tonic.
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

# The major/minor family a mode belongs to (its third decides), for 24-key labels.
MODE_FAMILY: dict[str, str] = {
    "major": "major", "lydian": "major", "mixolydian": "major",
    "minor": "minor", "harmonic minor": "minor", "dorian": "minor", "phrygian": "minor",
}

# Chord qualities by their intervals above the root: (symbol suffix, roman-numeral case, roman suffix).
QUALITIES: dict[tuple[int, ...], tuple[str, str, str]] = {
    (0, 4, 7): ("", "upper", ""),
    (0, 3, 7): ("m", "lower", ""),
    (0, 3, 6): ("dim", "lower", "°"),
    (0, 4, 8): ("aug", "upper", "+"),
    (0, 4, 7, 11): ("maj7", "upper", "maj7"),
    (0, 3, 7, 10): ("m7", "lower", "7"),
    (0, 4, 7, 10): ("7", "upper", "7"),
    (0, 3, 6, 10): ("m7b5", "lower", "ø7"),
    (0, 3, 6, 9): ("dim7", "lower", "°7"),
    (0, 3, 7, 11): ("mMaj7", "lower", "maj7"),
    (0, 4, 8, 11): ("maj7#5", "upper", "+maj7"),
}

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")

# Pentatonic subsets (scale degrees, 1-based) of the two mode families: always inside the scale.
PENTATONIC_DEGREES = {"major": (1, 2, 3, 5, 6), "minor": (1, 3, 4, 5, 7)}


def pc_name(pc: int) -> str:
    return PITCH_CLASSES[pc % 12]


def pc_of(name: str) -> int:
    """Pitch class of a note name in the toolkit spelling (also accepts the enharmonic spellings)."""
    enharmonic = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "B#": "C", "Fb": "E", "E#": "F"}
    name = enharmonic.get(name, name)
    if name not in PITCH_CLASSES:
        raise ValueError(f"unknown pitch name {name!r}")
    return PITCH_CLASSES.index(name)


@dataclass(frozen=True)
class Key:
    """A tonic and a mode; `scale` gives its seven pitch classes, tonic first."""

    tonic: int
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(MODES)}")

    @property
    def scale(self) -> tuple[int, ...]:
        return tuple((self.tonic + s) % 12 for s in MODES[self.mode])

    @property
    def family(self) -> str:
        return MODE_FAMILY[self.mode]

    @property
    def label(self) -> str:
        """The 24-key label a key estimator would give ("E minor" for E dorian)."""
        return f"{pc_name(self.tonic)} {self.family}"

    @property
    def name(self) -> str:
        """The exact name ("E dorian", "A harmonic minor")."""
        return f"{pc_name(self.tonic)} {self.mode}"

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.scale

    def pentatonic(self) -> tuple[int, ...]:
        """The five-note subset (major or minor pentatonic) of the scale."""
        return tuple(self.scale[d - 1] for d in PENTATONIC_DEGREES[self.family])

    def degree_pc(self, degree: int) -> int:
        """Pitch class of a 1-based scale degree (wraps: degree 8 = degree 1)."""
        return self.scale[(degree - 1) % 7]


@dataclass(frozen=True)
class Chord:
    """A chord as a root pitch class and intervals above it, with its function in the key."""

    root: int
    intervals: tuple[int, ...]
    degree: int  # 1-based scale degree of the root
    diatonic: bool = True  # False for borrowed chords (e.g. the blues IV7)

    @property
    def pcs(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def third(self) -> int:
        return (self.root + self.intervals[1]) % 12

    @property
    def fifth(self) -> int:
        return (self.root + self.intervals[2]) % 12

    @property
    def symbol(self) -> str:
        """Lead-sheet symbol: "Em7", "Cmaj7", "Bdim", "G7"."""
        return pc_name(self.root) + QUALITIES[self.intervals][0]

    @property
    def triad_symbol(self) -> str:
        """The major/minor triad label chord recognisers use ("E" / "Em"; diminished counts as minor)."""
        return pc_name(self.root) + ("m" if self.intervals[1] == 3 else "")

    @property
    def roman(self) -> str:
        _, case, suffix = QUALITIES[self.intervals]
        numeral = ROMAN[self.degree - 1]
        return (numeral if case == "upper" else numeral.lower()) + suffix


def diatonic_chord(key: Key, degree: int, seventh: bool = False) -> Chord:
    """The chord on a scale degree (1-7) built by stacking thirds of the key's scale: always in the key."""
    if not 1 <= degree <= 7:
        raise ValueError(f"scale degree must be 1..7, got {degree}")
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    pcs = [key.scale[(degree - 1 + s) % 7] for s in steps]
    root = pcs[0]
    intervals = tuple((p - root) % 12 for p in pcs)
    if intervals not in QUALITIES:  # e.g. the augmented-major seventh is named; anything else is a bug
        raise ValueError(f"unnamed chord quality {intervals} on degree {degree} of {key.name}")
    return Chord(root=root, intervals=intervals, degree=degree)


def dominant_seventh(key: Key, degree: int) -> Chord:
    """A dominant seventh on a scale degree whatever the mode (the blues I7 / IV7 / V7)."""
    return Chord(root=key.degree_pc(degree), intervals=(0, 4, 7, 10), degree=degree,
                 diatonic=all(p in key.scale for p in ((key.degree_pc(degree) + i) % 12 for i in (0, 4, 7, 10))))


def nearest_pitch(pc: int, target: int) -> int:
    """The MIDI pitch with pitch class `pc` closest to `target` (ties go down)."""
    below = target - ((target - pc) % 12)
    return below if target - below <= 6 else below + 12


def pitch_in_range(pc: int, low: int, high: int, near: int) -> int:
    """The pitch of class `pc` nearest to `near` that lies in [low, high] (octave-folded if needed)."""
    p = nearest_pitch(pc, near)
    while p < low:
        p += 12
    while p > high:
        p -= 12
    return p


def close_voicings(chord: Chord, low: int, high: int) -> list[tuple[int, ...]]:
    """Every close-position voicing (each inversion, each octave) of the chord within [low, high]."""
    out = []
    n = len(chord.pcs)
    for inversion in range(n):
        order = chord.pcs[inversion:] + chord.pcs[:inversion]
        for bottom in range(low, high + 1):
            if bottom % 12 != order[0]:
                continue
            notes = [bottom]
            for pc in order[1:]:
                notes.append(notes[-1] + ((pc - notes[-1]) % 12 or 12))
            if notes[-1] <= high:
                out.append(tuple(notes))
    return out


def voice_lead(chord: Chord, previous: tuple[int, ...] | None, low: int, high: int, center: int) -> tuple[int, ...]:
    """The close voicing that moves least from `previous` (or sits nearest `center` for the first chord)."""
    candidates = close_voicings(chord, low, high)
    if not candidates:
        raise ValueError(f"no voicing of {chord.symbol} fits in [{low}, {high}]")

    def cost(v: tuple[int, ...]) -> tuple[float, tuple[int, ...]]:
        if previous is None:
            return (abs(sum(v) / len(v) - center), v)
        movement = sum(min(abs(p - q) for q in previous) for p in v) + sum(min(abs(p - q) for p in v) for q in previous)
        return (movement + 0.1 * abs(sum(v) / len(v) - center), v)

    return min(candidates, key=cost)
