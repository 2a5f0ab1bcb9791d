"""The score a composed piece is written into: notes, parts (one instrument each) and the piece.

Times are in beats; `Piece` knows its tempo and metre, so it can turn the chord of every bar
into a timeline in seconds (the ground truth the corpus writes next to the audio).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .genres import GENRES, GenreSpec
from .instruments import DRUM_KITS, PROGRAMS
from .theory import Chord, Key

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
