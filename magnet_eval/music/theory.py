"""Just enough music theory to write real pieces: keys, modes, diatonic chords, roman-numeral progressions."""

from __future__ import annotations

from dataclasses import dataclass

PITCH_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]

# semitone steps of each mode above the tonic
MODES: dict[str, list[int]] = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
}

ROMAN = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> list[int]:
        """Pitch classes of the scale, tonic first."""
        return [(self.tonic + s) % 12 for s in MODES[self.mode]]

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.scale

    def degree_pitch(self, degree: int, octave_base: int = 48) -> int:
        """MIDI pitch of scale degree `degree` (0-based, may exceed 6 or be negative) above `octave_base` + tonic."""
        octave, step = divmod(degree, 7)
        return octave_base + self.tonic + 12 * octave + MODES[self.mode][step]


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class
    quality: str  # "maj", "min", "dim", "aug" (+ "7" suffix for sevenths)
    pitch_classes: tuple[int, ...]
    numeral: str

    @property
    def label(self) -> str:
        """Triad label like 'A:min' (the vocabulary of chord-recognition tools)."""
        return f"{PITCH_NAMES[self.root]}:{self.quality.rstrip('7')}"


def _quality(intervals: tuple[int, ...]) -> str:
    third, fifth = intervals[1], intervals[2]
    if third == 4 and fifth == 7:
        return "maj"
    if third == 3 and fifth == 7:
        return "min"
    if third == 3 and fifth == 6:
        return "dim"
    return "aug"


def diatonic_chord(key: Key, numeral: str, seventh: bool = False) -> Chord:
    """The chord on a roman numeral, built by stacking scale thirds (so it is always in the key).

    Upper/lower case in the numeral is ignored: the key's mode decides the quality, except that a
    trailing 'M' forces a major triad (e.g. 'vM' for the harmonic-minor dominant).
    """
    force_major = numeral.endswith("M")
    base = numeral.rstrip("M").lower()
    if base not in ROMAN:
        raise ValueError(f"unknown roman numeral {numeral!r}")
    d = ROMAN[base]
    degrees = [d, d + 2, d + 4] + ([d + 6] if seventh else [])
    pcs = [key.degree_pitch(x, 0) % 12 for x in degrees]
    root = pcs[0]
    if force_major:
        pcs[1] = (root + 4) % 12
    intervals = tuple((p - root) % 12 for p in pcs)
    quality = _quality(intervals) + ("7" if seventh else "")
    return Chord(root=root, quality=quality, pitch_classes=tuple(pcs), numeral=numeral)


def nearest_pitch(pitch_class: int, target: int) -> int:
    """The MIDI pitch of `pitch_class` closest to `target`."""
    base = target - ((target - pitch_class) % 12)
    return base if target - base <= 6 else base + 12


def voice_chord(chord: Chord, center: int = 60) -> list[int]:
    """A close-position voicing of the chord around `center` (root in the voicing, sorted)."""
    return sorted(nearest_pitch(pc, center + 4 * i - 4) for i, pc in enumerate(chord.pitch_classes))
