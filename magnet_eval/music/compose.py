"""Compose a multi-track piece (drums, bass, chords, lead) for a genre, and caption it like MusicCaps.

A piece is a list of notes per part, in beats. Every choice is drawn from one seeded
`random.Random`, so a (seed, index) pair always gives the same piece. The parts follow the
harmony: the progression is diatonic to the key, the bass plays chord roots (and fifths or
walking lines) in a genre rhythm, the lead puts chord tones on strong beats and moves by scale
steps in between, and the drums play the genre's pattern with a crash on phrase starts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .theory import PITCH_NAMES, Chord, Key, diatonic_chord, nearest_pitch, voice_chord

# General MIDI drum map (channel 10)
KICK, SNARE, RIM, CLAP, CLOSED_HAT, OPEN_HAT, RIDE, CRASH, SHAKER, LOW_TOM = 36, 38, 37, 39, 42, 46, 51, 49, 70, 45


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float  # beats
    length: float  # beats
    velocity: int


@dataclass(frozen=True)
class Genre:
    name: str
    tempo: tuple[int, int]
    modes: tuple[str, ...]
    progressions: tuple[tuple[str, ...], ...]
    bass: tuple[tuple[int, str], ...]  # (GM program, description)
    chords: tuple[tuple[int, str], ...]
    lead: tuple[tuple[int, str], ...]
    drums: str | None  # pattern name, None for no drums
    bass_style: str
    comp_style: str
    lead_density: float  # probability of a note on an eighth-note slot
    beats_per_bar: int = 4
    sevenths: bool = False
    moods: tuple[str, ...] = ()
    drum_words: tuple[str, ...] = ()


GENRES: dict[str, Genre] = {g.name: g for g in [
    Genre("rock", (100, 150), ("major", "minor", "mixolydian"),
          (("i", "v", "vi", "iv"), ("i", "iv", "v", "iv"), ("vi", "iv", "i", "v")),
          ((34, "electric bass"), (33, "fingered bass")), ((29, "overdriven guitar"), (30, "distorted guitar power chords")),
          ((27, "clean electric guitar lead"), (30, "distorted lead guitar")), "rock", "eighths", "strum", 0.45,
          moods=("energetic", "driving", "upbeat"), drum_words=("punchy rock drums", "a steady backbeat")),
    Genre("funk", (96, 118), ("dorian", "minor", "mixolydian"),
          (("i", "iv"), ("i", "i", "iv", "v"), ("ii", "v", "i", "i")),
          ((36, "slap bass"), (37, "slap bass")), ((28, "muted clean guitar"), (4, "electric piano")),
          ((62, "brass section stabs"), (18, "rock organ")), "funk", "funk", "stabs", 0.5, sevenths=True,
          moods=("groovy", "upbeat", "funky"), drum_words=("tight drums", "syncopated drums")),
    Genre("jazz", (90, 160), ("major", "dorian"),
          (("ii", "v", "i", "vi"), ("i", "vi", "ii", "v"), ("iii", "vi", "ii", "v")),
          ((32, "upright bass"),), ((0, "piano comping"), (26, "jazz guitar chords")),
          ((65, "alto saxophone"), (56, "trumpet"), (66, "tenor saxophone")), "jazz", "walking", "comp", 0.55, sevenths=True,
          moods=("relaxed", "swinging", "smooth"), drum_words=("brushed swing drums", "ride cymbal swing")),
    Genre("lofi hip-hop", (70, 90), ("minor", "dorian", "major"),
          (("ii", "v", "i", "vi"), ("i", "vi", "iii", "vii"), ("iv", "iii", "ii", "i")),
          ((33, "warm bass"),), ((4, "mellow electric piano"), (0, "soft piano")),
          ((11, "vibraphone"), (73, "flute")), "hiphop", "sparse", "pad", 0.3, sevenths=True,
          moods=("chill", "mellow", "laid-back"), drum_words=("dusty boom-bap drums", "lazy hip-hop beat")),
    Genre("house", (118, 128), ("minor", "dorian"),
          (("i", "vi", "vii", "v"), ("i", "iv"), ("vi", "iv", "i", "v")),
          ((38, "synth bass"),), ((81, "saw synth stabs"), (89, "warm synth pad")),
          ((80, "square lead synth"), (81, "saw lead")), "house", "offbeat", "stabs", 0.4,
          moods=("danceable", "energetic", "hypnotic"), drum_words=("four-on-the-floor kick", "electronic drums")),
    Genre("classical", (60, 100), ("major", "minor"),
          (("i", "iv", "v", "i"), ("i", "vi", "iv", "v"), ("i", "v", "vi", "iii"), ("vi", "ii", "v", "i")),
          ((42, "cello"), (43, "contrabass")), ((48, "string ensemble"), (0, "piano")),
          ((40, "violin"), (73, "flute"), (71, "clarinet"), (68, "oboe")), None, "halves", "arpeggio", 0.5,
          moods=("elegant", "emotional", "calm"), drum_words=()),
    Genre("reggae", (70, 90), ("major", "minor"),
          (("i", "iv"), ("i", "v", "iv", "iv"), ("i", "vi", "iv", "v")),
          ((33, "deep bass"),), ((27, "clean guitar skank"), (16, "organ bubble")),
          ((65, "saxophone"), (11, "vibraphone")), "reggae", "reggae", "skank", 0.35,
          moods=("relaxed", "sunny", "laid-back"), drum_words=("one-drop drums", "reggae drums")),
    Genre("bossa nova", (110, 140), ("major", "dorian"),
          (("ii", "v", "i", "i"), ("i", "vi", "ii", "v")),
          ((32, "acoustic bass"),), ((24, "nylon guitar"),), ((73, "flute"), (66, "tenor saxophone")),
          "bossa", "bossa", "comp", 0.45, sevenths=True,
          moods=("gentle", "romantic", "breezy"), drum_words=("soft bossa nova percussion", "rim clicks and shaker")),
    Genre("ambient", (60, 80), ("major", "minor"),
          (("i", "vi", "iv", "v"), ("i", "iii", "iv", "i"), ("vi", "iv", "i", "i")),
          ((38, "deep synth bass"),), ((89, "warm pad"), (91, "choir pad"), (95, "sweep pad")),
          ((88, "soft synth lead"), (10, "music box"), (98, "crystal bells")), None, "whole", "pad", 0.2,
          moods=("dreamy", "calm", "spacious"), drum_words=()),
    Genre("metal", (140, 180), ("minor",),
          (("i", "vi", "vii", "i"), ("i", "iv", "v", "i"), ("i", "ii", "i", "vii")),
          ((34, "picked bass"),), ((30, "distorted rhythm guitar"), (29, "overdriven guitar")),
          ((30, "distorted lead guitar"),), "metal", "gallop", "strum", 0.6,
          moods=("aggressive", "heavy", "intense"), drum_words=("double-kick drums", "blast-beat drums")),
    Genre("country", (90, 130), ("major",),
          (("i", "iv", "v", "i"), ("i", "v", "vi", "iv")),
          ((33, "bass"),), ((25, "steel-string acoustic guitar"),), ((105, "banjo"), (110, "fiddle"), (22, "harmonica")),
          "country", "root5", "strum", 0.45, moods=("cheerful", "twangy", "warm"), drum_words=("train-beat drums", "brushed drums")),
    Genre("waltz", (80, 140), ("major", "minor"),
          (("i", "iv", "v", "i"), ("i", "vi", "ii", "v")),
          ((43, "contrabass"), (32, "acoustic bass")), ((0, "piano"), (21, "accordion")),
          ((40, "violin"), (21, "accordion melody")), "waltz", "waltz", "waltz", 0.4, beats_per_bar=3,
          moods=("graceful", "nostalgic", "lilting"), drum_words=("light brushes", "soft waltz percussion")),
]}

# 16 steps per 4/4 bar (12 per 3/4 bar): drum -> step indices
DRUM_PATTERNS: dict[str, dict[int, list[int]]] = {
    "rock": {KICK: [0, 8, 10], SNARE: [4, 12], CLOSED_HAT: [0, 2, 4, 6, 8, 10, 12, 14]},
    "funk": {KICK: [0, 3, 6, 10], SNARE: [4, 12], CLOSED_HAT: list(range(16)), OPEN_HAT: [14]},
    "jazz": {RIDE: [0, 4, 7, 8, 12, 15], CLOSED_HAT: [4, 12], KICK: [0], SNARE: [11]},
    "hiphop": {KICK: [0, 7, 10], SNARE: [4, 12], CLOSED_HAT: [0, 2, 4, 6, 8, 10, 12, 14]},
    "house": {KICK: [0, 4, 8, 12], CLAP: [4, 12], OPEN_HAT: [2, 6, 10, 14], CLOSED_HAT: [0, 4, 8, 12]},
    "reggae": {KICK: [8], RIM: [8], CLOSED_HAT: [2, 6, 10, 14]},
    "bossa": {KICK: [0, 6, 8, 14], RIM: [0, 6, 12, 3, 10], SHAKER: list(range(0, 16, 2))},
    "metal": {KICK: [0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15], SNARE: [4, 12], CRASH: [0, 8]},
    "country": {KICK: [0, 8], SNARE: [4, 12], CLOSED_HAT: list(range(0, 16, 2))},
    "waltz": {KICK: [0], CLOSED_HAT: [4, 8], RIM: [4, 8]},
}

BASS_RHYTHMS: dict[str, list[tuple[float, float, int]]] = {
    # (beat offset, length, degree of chord: 0 root, 1 third, 2 fifth, 7 octave)
    "eighths": [(i * 0.5, 0.45, 0) for i in range(8)],
    "funk": [(0, 0.4, 0), (0.75, 0.2, 7), (1.5, 0.25, 0), (2.0, 0.4, 0), (2.75, 0.2, 7), (3.25, 0.2, 2), (3.5, 0.4, 0)],
    "sparse": [(0, 1.4, 0), (1.75, 0.5, 0), (2.5, 1.0, 2)],
    "offbeat": [(0.5, 0.4, 0), (1.5, 0.4, 0), (2.5, 0.4, 0), (3.5, 0.4, 7)],
    "halves": [(0, 1.9, 0), (2, 1.9, 2)],
    "reggae": [(0, 0.9, 0), (1.0, 0.4, 2), (2.5, 0.4, 0), (3.0, 0.9, 1)],
    "bossa": [(0, 1.4, 0), (1.5, 0.45, 2), (2, 1.4, 2), (3.5, 0.45, 0)],
    "whole": [(0, 3.9, 0)],
    "gallop": [(0, 0.45, 0), (0.5, 0.2, 0), (0.75, 0.2, 0), (1, 0.45, 0), (1.5, 0.2, 0), (1.75, 0.2, 0),
               (2, 0.45, 0), (2.5, 0.2, 0), (2.75, 0.2, 0), (3, 0.45, 0), (3.5, 0.2, 0), (3.75, 0.2, 0)],
    "root5": [(0, 0.9, 0), (1, 0.9, 2), (2, 0.9, 0), (3, 0.9, 2)],
    "waltz": [(0, 0.95, 0)],
}


@dataclass
class Piece:
    genre: str
    tempo: int
    key: Key
    beats_per_bar: int
    chords: list[Chord]  # one per bar
    instruments: dict[str, tuple[int, str]]  # part -> (GM program, description)
    parts: dict[str, list[Note]] = field(default_factory=dict)
    drum_description: str = ""
    mood: str = ""

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo


def _vel(rng: random.Random, base: int, spread: int = 10) -> int:
    return max(20, min(127, base + rng.randint(-spread, spread)))


def _drums(piece: Piece, pattern: str, n_bars: int, rng: random.Random) -> list[Note]:
    notes = []
    steps = 4 * piece.beats_per_bar
    grid = DRUM_PATTERNS[pattern]
    for bar in range(n_bars):
        for drum, positions in grid.items():
            for s in positions:
                if s >= steps:
                    continue
                accent = 100 if s % 4 == 0 else 80
                if drum in (CLOSED_HAT, SHAKER, RIDE):
                    accent -= 15
                notes.append(Note(drum, bar * piece.beats_per_bar + s / 4, 0.25, _vel(rng, accent)))
        if bar % 4 == 0 and pattern not in ("bossa", "waltz", "reggae"):
            notes.append(Note(CRASH, bar * piece.beats_per_bar, 1.0, _vel(rng, 95)))
        if bar % 4 == 3 and pattern in ("rock", "funk", "metal", "country"):  # a fill into the next phrase
            for i in range(4):
                notes.append(Note(SNARE if i % 2 else LOW_TOM, bar * piece.beats_per_bar + 3 + i / 4, 0.25, _vel(rng, 90)))
    return notes


def _bass(piece: Piece, style: str, rng: random.Random) -> list[Note]:
    notes = []
    if style == "walking":
        for bar, chord in enumerate(piece.chords):
            nxt = piece.chords[(bar + 1) % len(piece.chords)]
            root = nearest_pitch(chord.root, 40)
            line = [root, nearest_pitch(chord.pitch_classes[1], root + 3), nearest_pitch(chord.pitch_classes[2], root + 7)]
            target = nearest_pitch(nxt.root, 40)
            line.append(target + (1 if rng.random() < 0.5 else -1))  # chromatic approach to the next root
            for beat, p in enumerate(line[: piece.beats_per_bar]):
                notes.append(Note(p, bar * piece.beats_per_bar + beat, 0.9, _vel(rng, 85)))
        return notes
    rhythm = BASS_RHYTHMS[style]
    for bar, chord in enumerate(piece.chords):
        root = nearest_pitch(chord.root, 40)
        for offset, length, degree in rhythm:
            if offset >= piece.beats_per_bar:
                continue
            if degree == 7:
                p = root + 12
            elif degree == 0:
                p = root
            else:
                p = nearest_pitch(chord.pitch_classes[degree], root + 4 * degree)
            notes.append(Note(p, bar * piece.beats_per_bar + offset, length, _vel(rng, 90 if offset == 0 else 78)))
    return notes


def _comp(piece: Piece, style: str, rng: random.Random) -> list[Note]:
    notes = []
    bpb = piece.beats_per_bar
    for bar, chord in enumerate(piece.chords):
        voicing = voice_chord(chord, 60)
        t0 = bar * bpb
        if style == "pad":
            hits = [(0.0, bpb - 0.05)]
        elif style == "strum":
            hits = [(i * 0.5, 0.45) for i in range(2 * bpb)]
        elif style == "stabs":
            hits = [(0.5, 0.2), (1.5, 0.2), (2.5, 0.2), (3.25, 0.2), (3.5, 0.2)]
        elif style == "skank":
            hits = [(1.0, 0.3), (3.0, 0.3)]
        elif style == "comp":
            hits = [(0.0, 0.9), (1.5, 0.4), (2.5, 1.0)] if rng.random() < 0.5 else [(0.5, 0.9), (2.0, 0.4), (3.5, 0.4)]
        elif style == "waltz":
            hits = [(1.0, 0.8), (2.0, 0.8)]
        elif style == "arpeggio":
            arp = voicing + [voicing[1] + 12, voicing[0] + 12]
            for i in range(2 * bpb):
                notes.append(Note(arp[i % len(arp)], t0 + i * 0.5, 0.5, _vel(rng, 70)))
            continue
        else:
            raise ValueError(style)
        for offset, length in hits:
            if offset >= bpb:
                continue
            for p in voicing:
                notes.append(Note(p, t0 + offset, length, _vel(rng, 72)))
    return notes


def _lead(piece: Piece, density: float, rng: random.Random) -> list[Note]:
    """A melody: chord tones on strong beats, scale steps between, phrase rests every 2 bars."""
    notes = []
    bpb = piece.beats_per_bar
    scale_pitches = [p for p in range(55, 90) if piece.key.contains(p)]
    current = nearest_pitch(piece.chords[0].pitch_classes[0], 72)
    for bar, chord in enumerate(piece.chords):
        slots = [i * 0.5 for i in range(2 * bpb)]
        for slot in slots:
            if bar % 2 == 1 and slot >= bpb - 1:  # breathe at the end of each 2-bar phrase
                continue
            strong = slot == int(slot) and int(slot) % 2 == 0
            if not strong and rng.random() > density:
                continue
            if strong:
                candidates = [p for p in scale_pitches if p % 12 in chord.pitch_classes]
                current = min(candidates, key=lambda p: (abs(p - current), rng.random()))
            else:
                idx = min(range(len(scale_pitches)), key=lambda i: abs(scale_pitches[i] - current))
                step = rng.choice([-1, 1, 1, -1, 2, -2])
                current = scale_pitches[max(0, min(len(scale_pitches) - 1, idx + step))]
            length = 0.5 if not strong else rng.choice([0.5, 1.0])
            notes.append(Note(current, bar * bpb + slot, length * 0.95, _vel(rng, 88 if strong else 76)))
    # drop overlaps: a note ends where the next begins
    notes.sort(key=lambda n: n.start)
    fixed = []
    for a, b in zip(notes, notes[1:] + [None]):
        end = a.start + a.length if b is None else min(a.start + a.length, b.start)
        fixed.append(Note(a.pitch, a.start, max(0.1, end - a.start), a.velocity))
    return fixed


def compose(rng: random.Random, duration: float, genre: str | None = None) -> Piece:
    """Compose one piece of at least `duration` seconds."""
    g = GENRES[genre] if genre else GENRES[rng.choice(sorted(GENRES))]
    tempo = rng.randint(*g.tempo)
    key = Key(rng.randrange(12), rng.choice(g.modes))
    progression = rng.choice(g.progressions)
    n_beats = math.ceil(duration * tempo / 60.0) + 1
    n_bars = math.ceil(n_beats / g.beats_per_bar)
    chords = [diatonic_chord(key, progression[i % len(progression)], seventh=g.sevenths) for i in range(n_bars)]
    instruments = {"bass": rng.choice(g.bass), "chords": rng.choice(g.chords), "lead": rng.choice(g.lead)}
    piece = Piece(genre=g.name, tempo=tempo, key=key, beats_per_bar=g.beats_per_bar, chords=chords,
                  instruments=instruments, mood=rng.choice(g.moods))
    if g.drums:
        piece.parts["drums"] = _drums(piece, g.drums, n_bars, rng)
        piece.drum_description = rng.choice(g.drum_words)
    piece.parts["bass"] = _bass(piece, g.bass_style, rng)
    piece.parts["chords"] = _comp(piece, g.comp_style, rng)
    piece.parts["lead"] = _lead(piece, g.lead_density, rng)
    return piece


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption(piece: Piece, rng: random.Random) -> str:
    """A MusicCaps-like description from the piece's ground truth (true tempo, key, genre, instruments)."""
    instr = [piece.instruments[p][1] for p in ("bass", "chords", "lead")]
    if piece.drum_description:
        instr.append(piece.drum_description)
    key_text = f"{PITCH_NAMES[piece.key.tonic]} {piece.key.mode}"
    article = "An" if piece.mood[0] in "aeiou" else "A"
    meter = "in 3/4 time " if piece.beats_per_bar == 3 else ""
    templates = [
        f"{article} {piece.mood} {piece.genre} piece at {piece.tempo} BPM in {key_text} {meter}with {_join(instr)}.",
        f"This is a {piece.genre} song in {key_text} {meter}at {piece.tempo} BPM. It features {_join(instr)}. The mood is {piece.mood}.",
        f"{piece.mood.capitalize()} {piece.genre} instrumental: {_join(instr)}, {piece.tempo} BPM, key of {key_text}.",
        f"The recording features {_join(instr)} playing a {piece.mood} {piece.genre} tune {meter}in {key_text} at a tempo of {piece.tempo} BPM.",
    ]
    return rng.choice(templates).replace("  ", " ")


def labels(piece: Piece) -> dict:
    """Ground truth kept with each clip (for MIR checks and per-genre analysis)."""
    return {
        "genre": piece.genre,
        "tempo": piece.tempo,
        "key": PITCH_NAMES[piece.key.tonic],
        "mode": piece.key.mode,
        "time_signature": f"{piece.beats_per_bar}/4",
        "chords": [c.label for c in piece.chords],
        "chord_numerals": [c.numeral for c in piece.chords],
        "instruments": {part: {"program": prog, "name": name} for part, (prog, name) in piece.instruments.items()},
        "has_drums": "drums" in piece.parts,
        "mood": piece.mood,
    }
