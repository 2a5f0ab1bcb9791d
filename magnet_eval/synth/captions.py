"""Caption a composed piece the way MusicCaps annotators write: genre, tempo, key, instruments, mood.

Every caption names the true genre (its display name), the true tempo ("112 BPM") and the
true key ("E minor"); the template, synonyms, instrument phrases and their order vary with
the caption's RNG, so a text-to-music model cannot key on one fixed sentence shape.
"""

from __future__ import annotations

import random

from .score import Piece
from .genres import GENRES
from .instruments import PROGRAMS

BASS_WORDS = {
    "eighths": ("driving eighth-note", "steady"), "chug": ("chugging", "palm-muted"),
    "funk": ("syncopated", "popping"), "walking": ("walking",), "sparse": ("laid-back", "round"),
    "offbeat": ("offbeat", "bouncy"), "driving": ("pulsing", "arpeggiated octave"), "halves": ("stately", "sustained"),
    "drone": ("deep droning", "sustained"), "onedrop": ("deep melodic", "heavy"), "bossa": ("gentle", "root-fifth"),
    "boogie": ("boogie", "shuffling"),
}
COMP_WORDS = {
    "power": "power chords", "chug": "palm-muted riffs", "scratch": "choppy rhythm chords", "comp": "jazzy chord comping",
    "pad": "sustained chords", "rhodes": "lush seventh chords", "stabs": "chord stabs", "arpeggio": "arpeggiated chords",
    "skank": "offbeat skank chords", "bubble": "a bubbling offbeat organ", "bossa": "syncopated bossa nova chords",
    "shuffle": "shuffling chord hits", "boogie_riff": "a boogie-woogie rhythm riff",
}
LEAD_WORDS = ("plays the melody", "carries a catchy melody", "plays a melodic lead", "takes the lead", "plays a lyrical melody")
NOUNS = ("track", "piece", "instrumental", "tune", "song")


def _article(word: str) -> str:
    w = word.lower()
    vowel = w[:1] in "aeiou" and not w.startswith(("eu", "uni", "one"))
    return ("an " if vowel or w.startswith("80s") else "a ") + word


def _tempo_word(tempo: int) -> tuple[str, ...]:
    if tempo < 76:
        return ("slow", "slow-paced", "unhurried")
    if tempo < 100:
        return ("mid-tempo", "moderate-tempo", "relaxed")
    if tempo < 126:
        return ("upbeat", "lively", "moderately fast")
    return ("fast", "high-energy", "fast-paced")


def key_phrase(piece: Piece, rng: random.Random) -> str:
    """The key as a caption says it; always contains the 24-key label ("E minor")."""
    if piece.key.mode in ("major", "minor", "harmonic minor"):
        return piece.key.label
    return piece.key.label if rng.random() < 0.5 else f"{piece.key.label} ({piece.key.mode} mode)"


def instrument_phrases(piece: Piece, rng: random.Random) -> dict[str, str]:
    """One descriptive phrase per present part ("slap bass", "tight drums", "jazzy chord comping on piano")."""
    spec = GENRES[piece.genre]
    out = {}
    for name, part in piece.parts.items():
        if part.is_drum:
            out[name] = rng.choice(spec.drum_words)
            continue
        inst = rng.choice(PROGRAMS[part.program][1])
        if name == "bass":
            adj = rng.choice(BASS_WORDS.get(part.style, ("",)))
            out[name] = f"{adj} {inst}".strip() if rng.random() < 0.6 else inst
        elif name == "chords":
            out[name] = inst if rng.random() < 0.5 else f"{COMP_WORDS.get(part.style, 'chords')} on {inst}"
        else:
            out[name] = inst
    return out


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def caption(piece: Piece, rng: random.Random) -> str:
    """A MusicCaps-like caption of the piece, chosen by `rng`."""
    spec = GENRES[piece.genre]
    genre = spec.display
    tempo = piece.tempo
    key = key_phrase(piece, rng)
    mood = piece.mood
    tempo_word = rng.choice(_tempo_word(tempo))
    noun = rng.choice(NOUNS)
    phrases = instrument_phrases(piece, rng)
    order = list(phrases)
    rng.shuffle(order)
    inst_list = _join([phrases[p] for p in order])
    setting = rng.choice(spec.settings)
    meter = " in 3/4 time" if piece.beats_per_bar == 3 else ""
    lead = phrases.get("lead")
    backing = _join([phrases[p] for p in ("chords", "bass", "drums") if p in phrases])

    templates = [
        lambda: f"{_article(mood).capitalize()} {genre} {noun} at {tempo} BPM in {key}{meter} with {inst_list}.",
        lambda: (f"This is {_article(tempo_word)} {genre} {noun} in {key} at {tempo} BPM{meter}. It features {inst_list}. "
                 f"The mood is {mood}."),
        lambda: (f"{genre[0].upper() + genre[1:]} instrumental, {tempo} BPM, {key}{meter}. "
                 f"{inst_list[0].upper() + inst_list[1:]}. {tempo_word.capitalize()} and {mood}."),
        lambda: (f"The song is {_article(tempo_word)} {genre} instrumental in {key} at {tempo} BPM{meter}. "
                 f"It features {inst_list}. This song may be playing {setting}."),
        lambda: (f"This {mood} {genre} {noun} features {inst_list}. It moves at {tempo} BPM in {key}{meter}. "
                 f"There are no vocals. It could be playing {setting}."),
    ]
    if lead:
        templates.append(lambda: (f"The {lead} {rng.choice(LEAD_WORDS)} over {backing} in this {mood} {genre} {noun}. "
                                  f"The tempo is {tempo} BPM and the key is {key}{meter}."))
    else:
        templates.append(lambda: (f"{_article(tempo_word).capitalize()} {genre} {noun} in {key} at {tempo} BPM{meter} "
                                  f"built on {inst_list}, with no lead melody. It sounds {mood}."))
    return rng.choice(templates)()
