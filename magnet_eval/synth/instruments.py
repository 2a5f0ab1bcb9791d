"""General MIDI names of the programs and drum kits the corpus uses, and how captions describe them.

The GM name is the ground-truth label (what the soundfont plays); the phrases are what a
MusicCaps annotator would write, chosen by the caption's RNG.
"""

from __future__ import annotations

# program -> (General MIDI name, caption phrases)
PROGRAMS: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("Acoustic Grand Piano", ("piano", "acoustic piano", "grand piano")),
    4: ("Electric Piano 1", ("electric piano", "Rhodes piano", "mellow electric piano")),
    5: ("Electric Piano 2", ("electric piano", "bright electric piano")),
    7: ("Clavi", ("clavinet", "funky clavinet")),
    8: ("Celesta", ("celesta", "bell-like celesta")),
    10: ("Music Box", ("music box", "twinkling music box")),
    11: ("Vibraphone", ("vibraphone", "vibes")),
    16: ("Drawbar Organ", ("organ", "drawbar organ")),
    17: ("Percussive Organ", ("organ", "percussive organ")),
    19: ("Church Organ", ("church organ", "pipe organ")),
    22: ("Harmonica", ("harmonica", "blues harp")),
    24: ("Acoustic Guitar (nylon)", ("nylon-string guitar", "classical guitar", "acoustic guitar")),
    25: ("Acoustic Guitar (steel)", ("acoustic guitar", "steel-string acoustic guitar")),
    26: ("Electric Guitar (jazz)", ("jazz guitar", "hollow-body guitar")),
    27: ("Electric Guitar (clean)", ("clean electric guitar", "clean guitar")),
    28: ("Electric Guitar (muted)", ("muted electric guitar", "muted guitar")),
    29: ("Overdriven Guitar", ("overdriven guitar", "crunchy electric guitar")),
    30: ("Distortion Guitar", ("distorted guitar", "heavily distorted electric guitar")),
    32: ("Acoustic Bass", ("upright bass", "acoustic bass", "double bass")),
    33: ("Electric Bass (finger)", ("bass guitar", "fingered electric bass", "electric bass")),
    34: ("Electric Bass (pick)", ("picked bass", "electric bass")),
    35: ("Fretless Bass", ("fretless bass", "smooth fretless bass")),
    36: ("Slap Bass 1", ("slap bass", "popping slap bass")),
    37: ("Slap Bass 2", ("slap bass", "funky slap bass")),
    38: ("Synth Bass 1", ("synth bass", "analog synth bass")),
    39: ("Synth Bass 2", ("synth bass", "deep synth bass")),
    40: ("Violin", ("violin", "solo violin")),
    42: ("Cello", ("cello", "cellos")),
    43: ("Contrabass", ("contrabass", "double basses")),
    46: ("Orchestral Harp", ("harp", "orchestral harp")),
    48: ("String Ensemble 1", ("strings", "string ensemble", "string section")),
    49: ("String Ensemble 2", ("strings", "soft string section")),
    52: ("Choir Aahs", ("choir", "wordless choir")),
    56: ("Trumpet", ("trumpet",)),
    59: ("Muted Trumpet", ("muted trumpet",)),
    60: ("French Horn", ("french horn", "horn")),
    61: ("Brass Section", ("brass section", "horn section", "brass stabs")),
    62: ("Synth Brass 1", ("synth brass", "brassy synth")),
    65: ("Alto Sax", ("alto saxophone", "alto sax")),
    66: ("Tenor Sax", ("tenor saxophone", "tenor sax")),
    68: ("Oboe", ("oboe",)),
    70: ("Bassoon", ("bassoon",)),
    71: ("Clarinet", ("clarinet",)),
    73: ("Flute", ("flute",)),
    80: ("Lead 1 (square)", ("square-wave synth lead", "square lead synth", "chiptune-like square lead")),
    81: ("Lead 2 (sawtooth)", ("sawtooth synth lead", "saw lead synth", "bright synth lead")),
    88: ("Pad 1 (new age)", ("new age pad", "shimmering synth pad")),
    89: ("Pad 2 (warm)", ("warm synth pad", "warm pad")),
    90: ("Pad 3 (polysynth)", ("polysynth", "polyphonic synth chords")),
    91: ("Pad 4 (choir)", ("choir pad", "airy choir pad")),
    92: ("Pad 5 (bowed)", ("bowed pad", "bowed glass pad")),
    94: ("Pad 7 (halo)", ("halo pad", "ethereal pad")),
    95: ("Pad 8 (sweep)", ("sweeping pad", "slowly sweeping synth pad")),
}

# drum-kit program (bank 128 of FluidR3_GM) -> kit name
DRUM_KITS: dict[int, str] = {
    0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR-808", 32: "Jazz", 40: "Brush",
}

# General MIDI percussion map (channel 10), the notes the patterns use.
KICK = 36
SIDE_STICK = 37
SNARE = 38
CLAP = 39
LOW_TOM = 45
MID_TOM = 47
HIGH_TOM = 50
CLOSED_HAT = 42
PEDAL_HAT = 44
OPEN_HAT = 46
CRASH = 49
RIDE = 51
RIDE_BELL = 53
TAMBOURINE = 54
COWBELL = 56
SHAKER = 70  # GM "Maracas"
CLAVES = 75

DRUM_LETTERS: dict[str, int] = {
    "K": KICK, "S": SNARE, "R": SIDE_STICK, "C": CLAP, "H": CLOSED_HAT, "P": PEDAL_HAT, "O": OPEN_HAT,
    "Y": RIDE, "B": RIDE_BELL, "T": TAMBOURINE, "M": SHAKER, "L": CLAVES, "W": COWBELL,
}


def gm_name(program: int) -> str:
    return PROGRAMS[program][0]
