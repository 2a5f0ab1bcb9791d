"""What each genre of the corpus is made of: tempi, modes, progressions, drum patterns, styles, instruments.

Drum patterns are one bar of sixteenth-note steps per drum (letters in
`instruments.DRUM_LETTERS`): "X" accent, "x" normal, "g" ghost note, "r" a ghost note played
with probability 0.35 (for jazz comping and funk ghosting), "." nothing. Progressions are
scale degrees (1-7) of the key; a degree's chord quality follows from the mode, so every
chord is diatonic (the blues 12-bar form, with its dominant sevenths, is the one exception).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Pattern = dict[str, str]


@dataclass(frozen=True)
class GenreSpec:
    name: str  # the label
    display: str  # how captions name it (always present in a caption)
    tempo: tuple[int, int]
    modes: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]
    bass_style: str
    bass_programs: tuple[int, ...]
    comp_style: str
    comp_programs: tuple[int, ...]
    lead_programs: tuple[int, ...]
    moods: tuple[str, ...]
    settings: tuple[str, ...]
    drum_kits: tuple[int, ...] = ()  # empty: the genre has no drums
    drum_patterns: tuple[Pattern, ...] = ()
    drum_patterns_3: tuple[Pattern, ...] = ()  # 3/4 patterns, for genres that allow waltz time
    drum_words: tuple[str, ...] = ()
    meters: tuple[int, ...] = (4,)
    sevenths: float = 0.0  # probability that the piece uses seventh chords
    bars_per_chord: tuple[int, ...] = (1,)
    swing: tuple[float, float] = (0.5, 0.5)  # position of the off-beat eighth within the beat
    comp_range: tuple[int, int] = (52, 76)
    bass_range: tuple[int, int] = (28, 52)
    lead_range: tuple[int, int] = (62, 86)
    lead_grid: float = 0.5  # shortest lead note, in beats
    lead_density: float = 0.55  # chance of an onset on a weak grid slot
    lead_scale: str = "key"  # "key" or "pentatonic"
    lead_prob: float = 1.0  # chance that the piece has a lead at all
    bass_prob: float = 1.0
    reverb: int = 40  # CC91 send, 0-127
    blues: bool = False
    mix_db: dict = field(default_factory=lambda: {"drums": 0.0, "bass": -2.0, "chords": -5.0, "lead": -2.0})


GENRES: dict[str, GenreSpec] = {}


def _add(spec: GenreSpec) -> None:
    GENRES[spec.name] = spec


_add(GenreSpec(
    name="rock", display="rock", tempo=(100, 150), modes=("major", "minor", "mixolydian"),
    progressions=((1, 5, 6, 4), (1, 4, 5, 4), (6, 4, 1, 5), (1, 4, 1, 5), (1, 6, 4, 5)),
    bass_style="eighths", bass_programs=(33, 34), comp_style="power", comp_programs=(29, 30),
    lead_programs=(27, 29, 16), lead_scale="pentatonic", lead_density=0.5, lead_range=(60, 84),
    comp_range=(40, 64),
    moods=("energetic", "driving", "upbeat", "rebellious"),
    settings=("at a rock concert", "in a garage band rehearsal", "in a sports video", "on a road trip playlist"),
    drum_kits=(0, 16, 8),
    drum_patterns=(
        {"K": "x.......x.x.....", "S": "....X.......X...", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x......xx.......", "S": "....X.......X...", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x.....x.x.....x.", "S": "....X.......X...", "Y": "x.x.x.x.x.x.x.x."},
    ),
    drum_words=("punchy rock drums", "a steady backbeat", "hard-hitting drums"),
))

_add(GenreSpec(
    name="metal", display="metal", tempo=(140, 180), modes=("minor", "phrygian"),
    progressions=((1, 6, 7, 1), (1, 2, 1, 7), (1, 6, 3, 7), (1, 1, 6, 7)),
    bass_style="chug", bass_programs=(34, 33), comp_style="chug", comp_programs=(30,),
    lead_programs=(30, 81), lead_scale="pentatonic", lead_grid=0.25, lead_density=0.45, lead_range=(64, 88),
    comp_range=(38, 60), bass_range=(28, 45),
    moods=("aggressive", "heavy", "intense", "dark"),
    settings=("at a metal festival", "in a video game boss fight", "in a mosh pit"),
    drum_kits=(16, 0),
    drum_patterns=(
        {"K": "xxxxxxxxxxxxxxxx", "S": "....X.......X...", "Y": "x...x...x...x..."},
        {"K": "x.x.x.x.x.x.x.x.", "S": "..X...X...X...X.", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x.xx....x.xx....", "S": "........X.......", "Y": "x.x.x.x.x.x.x.x."},
    ),
    drum_words=("double-kick drums", "pounding drums", "blast-beat drums"),
    mix_db={"drums": 0.0, "bass": -3.0, "chords": -1.0, "lead": -2.0},
))

_add(GenreSpec(
    name="funk", display="funk", tempo=(96, 120), modes=("dorian", "mixolydian", "minor"),
    progressions=((1, 4), (1, 1, 4, 4), (1, 4, 1, 5), (2, 5, 1, 1), (1, 7, 1, 4)),
    bass_style="funk", bass_programs=(36, 37, 33), comp_style="scratch", comp_programs=(28, 7, 27),
    lead_programs=(61, 65, 62), lead_grid=0.25, lead_density=0.4, lead_range=(60, 82),
    sevenths=0.8, comp_range=(55, 74),
    moods=("groovy", "upbeat", "danceable", "playful"),
    settings=("at a house party", "in a 70s cop show", "on a dance floor"),
    drum_kits=(0, 8),
    drum_patterns=(
        {"K": "x......x..x..x..", "S": "....X..r.r..X..r", "H": "XxXxXxXxXxXxXxXx"},
        {"K": "x..x......x.x...", "S": "....X..g.r..X...", "H": "x.x.x.x.x.x.x...", "O": "..............x."},
        {"K": "x.x...x...x..x..", "S": "....X.r.....X.r.", "H": "xxxxxxxxxxxxxxxx"},
    ),
    drum_words=("tight drums", "syncopated drums with ghost notes", "a tight funky beat"),
))

_add(GenreSpec(
    name="jazz", display="jazz", tempo=(100, 180), modes=("major", "dorian"),
    progressions=((2, 5, 1, 1), (2, 5, 1, 6), (1, 6, 2, 5), (3, 6, 2, 5), (1, 4, 3, 6, 2, 5, 1, 1)),
    bass_style="walking", bass_programs=(32,), comp_style="comp", comp_programs=(0, 26),
    lead_programs=(66, 65, 56, 11, 59), lead_density=0.6, lead_range=(58, 82),
    sevenths=1.0, swing=(0.62, 0.68), meters=(4, 4, 3), comp_range=(52, 72), bass_range=(28, 50),
    moods=("relaxed", "swinging", "smooth", "sophisticated"),
    settings=("in a jazz club", "in a hotel lounge", "in a late-night bar"),
    drum_kits=(32, 40),
    drum_patterns=(
        {"Y": "x...x.x.x...x.x.", "P": "....x.......x...", "K": "g.......g.......", "S": "......r.....r..r"},
        {"Y": "x...x.x.x...x.x.", "P": "....x.......x...", "S": "..r.....r....r.."},
    ),
    drum_patterns_3=(
        {"Y": "x...x.x.x...", "P": "....x...x...", "K": "g...........", "S": "......r....r"},
    ),
    drum_words=("swinging ride cymbal", "brushed drums", "light swing drums"),
    mix_db={"drums": -3.0, "bass": -1.0, "chords": -5.0, "lead": -1.0},
    reverb=50,
))

_add(GenreSpec(
    name="blues", display="blues", tempo=(70, 130), modes=("mixolydian",),
    progressions=((1, 4, 1, 1, 4, 4, 1, 1, 5, 4, 1, 5), (1, 1, 1, 1, 4, 4, 1, 1, 5, 4, 1, 5)),
    bass_style="boogie", bass_programs=(33, 32), comp_style="shuffle", comp_programs=(0, 29, 16),
    lead_programs=(29, 22, 66), lead_scale="pentatonic", lead_density=0.5, lead_range=(60, 84),
    swing=(0.64, 0.68), blues=True, comp_range=(50, 72),
    moods=("soulful", "gritty", "laid-back", "melancholic"),
    settings=("in a smoky blues bar", "at a roadhouse", "on a Sunday afternoon porch"),
    drum_kits=(0, 8),
    drum_patterns=(
        {"K": "x.......x.......", "S": "....x.......x..r", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x.....x.x.......", "S": "....x.......x...", "Y": "x.x.x.x.x.x.x.x."},
    ),
    drum_words=("shuffle drums", "a loping shuffle beat"),
))

_add(GenreSpec(
    name="lofi hip-hop", display="lo-fi hip-hop", tempo=(70, 92), modes=("minor", "dorian", "major"),
    progressions=((2, 5, 1, 6), (1, 6, 4, 5), (4, 3, 2, 1), (1, 4), (6, 4, 1, 5)),
    bass_style="sparse", bass_programs=(33, 32, 35), comp_style="rhodes", comp_programs=(4, 0, 5),
    lead_programs=(11, 73, 59, 27), lead_density=0.35, lead_range=(62, 84),
    sevenths=1.0, swing=(0.58, 0.64), comp_range=(50, 72),
    moods=("chill", "mellow", "laid-back", "nostalgic", "dreamy"),
    settings=("in a coffee shop", "as study music", "on a rainy evening"),
    drum_kits=(8, 32, 0),
    drum_patterns=(
        {"K": "x......x.x......", "S": "....x.......x...", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x.........x.....", "S": "....x.......x..r", "H": "x.xgx.xgx.xgx.xg"},
        {"K": "x......x..x.....", "S": "....x.......x...", "M": "x.x.x.x.x.x.x.x."},
    ),
    drum_words=("dusty boom-bap drums", "a lazy hip-hop beat", "soft lo-fi drums"),
    mix_db={"drums": 0.0, "bass": -2.0, "chords": -3.0, "lead": -3.0},
    reverb=45,
))

_add(GenreSpec(
    name="house", display="house", tempo=(118, 128), modes=("minor", "dorian"),
    progressions=((1, 6, 7, 5), (1, 4), (6, 4, 1, 5), (1, 7, 6, 7), (1, 3, 4, 4)),
    bass_style="offbeat", bass_programs=(38, 39), comp_style="stabs", comp_programs=(0, 81, 90),
    lead_programs=(81, 80, 62), lead_grid=0.25, lead_density=0.35, lead_range=(62, 84),
    sevenths=0.4, comp_range=(55, 76), bass_range=(31, 50),
    moods=("danceable", "energetic", "hypnotic", "euphoric"),
    settings=("in a nightclub", "at a rave", "in a fitness class"),
    drum_kits=(25, 24),
    drum_patterns=(
        {"K": "X...X...X...X...", "C": "....x.......x...", "O": "..x...x...x...x.", "H": "g.g.g.g.g.g.g.g."},
        {"K": "X...X...X...X...", "C": "....x.......x...", "H": "xxxxxxxxxxxxxxxx", "O": "..x...x...x...x."},
        {"K": "X...X...X...X...", "S": "....x.......x...", "O": "..x...x...x...x.", "M": "xxxxxxxxxxxxxxxx"},
    ),
    drum_words=("a four-on-the-floor kick", "electronic drums", "drum-machine beat with claps"),
))

_add(GenreSpec(
    name="synthwave", display="synthwave", tempo=(84, 118), modes=("minor",),
    progressions=((1, 6, 3, 7), (6, 4, 1, 5), (1, 7, 6, 7), (1, 4, 6, 5)),
    bass_style="driving", bass_programs=(38, 39), comp_style="pad", comp_programs=(90, 89, 62),
    lead_programs=(81, 80, 62), lead_density=0.45, lead_range=(62, 86),
    comp_range=(52, 76), bass_range=(31, 50),
    moods=("nostalgic", "retro", "cinematic", "neon-lit"),
    settings=("in an 80s movie chase scene", "on a night drive", "in a retro video game"),
    drum_kits=(24, 25),
    drum_patterns=(
        {"K": "x.......x.......", "S": "....X.......X...", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x.....x.x.......", "S": "....X.......X...", "H": "xxxxxxxxxxxxxxxx"},
    ),
    drum_words=("gated-reverb drums", "an 80s drum machine", "punchy electronic drums"),
    reverb=60,
))

_add(GenreSpec(
    name="classical", display="classical", tempo=(60, 110), modes=("major", "harmonic minor"),
    progressions=((1, 4, 5, 1), (1, 6, 4, 5), (1, 2, 5, 1), (6, 2, 5, 1), (1, 5, 6, 3, 4, 1, 4, 5)),
    bass_style="halves", bass_programs=(42, 43, 70), comp_style="arpeggio", comp_programs=(48, 0, 46, 49),
    lead_programs=(40, 73, 68, 71, 60), lead_density=0.55, lead_range=(62, 88),
    meters=(4, 4, 3), bars_per_chord=(1, 1, 2), comp_range=(50, 74), bass_range=(31, 55),
    moods=("elegant", "emotional", "calm", "graceful"),
    settings=("in a concert hall", "in a period drama", "at a wedding ceremony"),
    mix_db={"bass": -3.0, "chords": -3.0, "lead": 0.0},
    reverb=70,
))

_add(GenreSpec(
    name="reggae", display="reggae", tempo=(64, 90), modes=("major", "minor"),
    progressions=((1, 4), (1, 5, 4, 5), (1, 6, 4, 5), (2, 5), (1, 4, 5, 4)),
    bass_style="onedrop", bass_programs=(33, 34), comp_style="skank", comp_programs=(27, 16, 17),
    lead_programs=(56, 65, 16, 22), lead_density=0.4, lead_range=(60, 82),
    swing=(0.5, 0.6), comp_range=(57, 76), bass_range=(28, 50),
    moods=("laid-back", "sunny", "uplifting", "relaxed"),
    settings=("at a beach bar", "at a summer festival", "on a tropical island"),
    drum_kits=(0, 8),
    drum_patterns=(
        {"K": "........x.......", "R": "........x.......", "H": "x.x.x.x.x.x.x.x."},
        {"K": "x...x...x...x...", "R": "........x.......", "H": "..x...x...x...x."},
    ),
    drum_words=("a one-drop reggae beat", "relaxed reggae drums with rimshots"),
    mix_db={"drums": 0.0, "bass": 0.0, "chords": -6.0, "lead": -2.0},
))

_add(GenreSpec(
    name="bossa nova", display="bossa nova", tempo=(110, 145), modes=("major", "dorian"),
    progressions=((1, 2, 5, 1), (2, 5, 1, 6), (1, 1, 2, 5), (1, 4, 3, 6, 2, 5, 1, 1), (1, 4)),
    bass_style="bossa", bass_programs=(32, 33), comp_style="bossa", comp_programs=(24,),
    lead_programs=(73, 66, 11, 0), lead_density=0.5, lead_range=(62, 84),
    sevenths=1.0, comp_range=(52, 72),
    moods=("breezy", "romantic", "smooth", "gentle"),
    settings=("in a Brazilian cafe", "at a seaside restaurant", "as elevator music"),
    drum_kits=(32, 40),
    drum_patterns=(
        {"K": "x..x....x..x....", "R": "x..x..x...x..x..", "M": "xxxxxxxxxxxxxxxx"},
        {"K": "x..x....x..x....", "R": "x..x..x...x..x..", "H": "x.x.x.x.x.x.x.x."},
    ),
    drum_words=("soft bossa nova percussion with rimshots", "a gentle bossa groove with shaker"),
    mix_db={"drums": -4.0, "bass": -2.0, "chords": -2.0, "lead": -1.0},
))

_add(GenreSpec(
    name="ambient", display="ambient", tempo=(60, 84), modes=("major", "lydian", "dorian"),
    progressions=((1, 4), (1, 6, 4, 5), (4, 1), (1, 5, 6, 4), (1, 2)),
    bass_style="drone", bass_programs=(35, 38, 43), comp_style="pad", comp_programs=(88, 89, 92, 94, 95, 91),
    lead_programs=(8, 10, 11, 73, 46), lead_density=0.3, lead_range=(64, 91),
    bars_per_chord=(2,), comp_range=(48, 76),
    lead_prob=0.75, bass_prob=0.6,
    moods=("calm", "ethereal", "meditative", "spacious", "dreamy"),
    settings=("in a meditation session", "in a planetarium", "as background for sleep"),
    mix_db={"bass": -4.0, "chords": 0.0, "lead": -2.0},
    reverb=100,
))


def genre_names() -> list[str]:
    return list(GENRES)
