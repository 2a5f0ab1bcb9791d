"""Music-theory and composition units of the offline corpus (no rendering: fast)."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.manifest import Manifest, ManifestEntry
from magnet_eval.synth.captions import caption
from magnet_eval.synth.composer import choose_genre, compose, ground_truth
from magnet_eval.synth.corpus import assign_splits, split_of
from magnet_eval.synth.genres import GENRES
from magnet_eval.synth.theory import MODES, Key, close_voicings, diatonic_chord, dominant_seventh, pc_of, voice_lead

SEEDS = range(6)


def pieces():
    for genre in GENRES:
        for seed in SEEDS:
            yield genre, seed, compose(random.Random(f"test:{genre}:{seed}"), genre, 10.0)


ALL = list(pieces())


def _bar_of(piece, t: float) -> int:
    return int((t + 0.05) // piece.beats_per_bar)


# --------------------------------------------------------------------------- theory


def test_chord_symbols_and_numerals_in_c_major_and_a_minor():
    c = Key(pc_of("C"), "major")
    assert [diatonic_chord(c, d).symbol for d in range(1, 8)] == ["C", "Dm", "Em", "F", "G", "Am", "Bdim"]
    assert [diatonic_chord(c, d).roman for d in (1, 2, 5, 7)] == ["I", "ii", "V", "vii°"]
    assert diatonic_chord(c, 5, seventh=True).symbol == "G7"
    assert diatonic_chord(c, 1, seventh=True).symbol == "Cmaj7"
    assert diatonic_chord(c, 7, seventh=True).symbol == "Bm7b5"
    a = Key(pc_of("A"), "minor")
    assert diatonic_chord(a, 5).symbol == "Em"
    assert Key(pc_of("A"), "harmonic minor").scale[-1] == pc_of("G#")
    assert diatonic_chord(Key(pc_of("A"), "harmonic minor"), 5).symbol == "E"
    assert Key(pc_of("E"), "dorian").label == "E minor" and Key(pc_of("G"), "mixolydian").label == "G major"


@pytest.mark.parametrize("mode", list(MODES))
def test_every_diatonic_chord_is_in_its_key(mode):
    for tonic in range(12):
        key = Key(tonic, mode)
        assert len(set(key.scale)) == 7 and key.scale[0] == tonic
        for degree in range(1, 8):
            for seventh in (False, True):
                chord = diatonic_chord(key, degree, seventh)
                assert set(chord.pcs) <= set(key.scale), (key.name, degree, chord.symbol)
                assert chord.root == key.degree_pc(degree)


def test_blues_dominant_sevenths_are_flagged_when_outside_the_mode():
    key = Key(pc_of("C"), "mixolydian")
    assert dominant_seventh(key, 1).diatonic  # C7 is C mixolydian's own tonic chord
    assert not dominant_seventh(key, 4).diatonic  # F7 has Eb
    assert dominant_seventh(key, 4).symbol == "F7"


def test_voice_leading_moves_little_and_keeps_the_chord():
    key = Key(pc_of("C"), "major")
    prev = None
    for degree in (1, 6, 4, 5, 1):
        chord = diatonic_chord(key, degree)
        v = voice_lead(chord, prev, 52, 76, 64)
        assert sorted(p % 12 for p in v) == sorted(chord.pcs)
        assert all(52 <= p <= 76 for p in v)
        if prev is not None:  # closest-voicing choice: never worse than any other voicing in range
            moved = sum(min(abs(p - q) for q in prev) for p in v)
            assert moved <= min(sum(min(abs(p - q) for q in prev) for p in c) for c in close_voicings(chord, 52, 76)) + 2
            assert moved <= 6
        prev = v


# --------------------------------------------------------------------------- composition


def test_same_rng_same_piece_other_rng_other_piece():
    a = compose(random.Random("x:1"), "funk", 8.0)
    b = compose(random.Random("x:1"), "funk", 8.0)
    c = compose(random.Random("x:2"), "funk", 8.0)
    assert a.parts["lead"].notes == b.parts["lead"].notes and a.tempo == b.tempo and a.key == b.key
    assert (a.parts["lead"].notes, a.tempo, a.key) != (c.parts["lead"].notes, c.tempo, c.key)


def test_tempo_meter_and_parts_follow_the_genre():
    for genre, _, piece in ALL:
        spec = GENRES[genre]
        assert spec.tempo[0] <= piece.tempo <= spec.tempo[1] and 60 <= piece.tempo <= 180
        assert piece.beats_per_bar in spec.meters
        assert ("drums" in piece.parts) == bool(spec.drum_kits)
        assert "chords" in piece.parts
        assert piece.bars * piece.beats_per_bar >= piece.total_beats
        for part in piece.parts.values():
            assert part.notes, (genre, part.name)
            assert all(0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and n.duration > 0 for n in part.notes)


def test_progressions_are_diatonic_except_the_blues():
    for genre, _, piece in ALL:
        for chord in piece.progression:
            assert chord.root in piece.key.scale
            if not GENRES[genre].blues:
                assert set(chord.pcs) <= set(piece.key.scale), (genre, piece.key.name, chord.symbol)


def test_bass_starts_every_bar_on_the_chord_root():
    checked = 0
    for genre, _, piece in ALL:
        bass = piece.parts.get("bass")
        if bass is None:
            continue
        first: dict[int, int] = {}
        for n in sorted(bass.notes, key=lambda n: n.start):
            first.setdefault(_bar_of(piece, n.start), n.pitch)
        for bar, pitch in first.items():
            if bar < len(piece.chords):
                assert pitch % 12 == piece.chords[bar].root, (genre, bar, pitch, piece.chords[bar].symbol)
                checked += 1
        in_harmony = sum(1 for n in bass.notes if n.pitch % 12 in piece.chords[min(_bar_of(piece, n.start), piece.bars - 1)].pcs
                         or piece.key.contains(n.pitch))
        assert in_harmony / len(bass.notes) >= 0.75, genre
    assert checked > 200


def test_lead_is_in_the_key_with_chord_tones_on_strong_beats_and_mostly_steps():
    intervals = []
    strong = strong_ok = 0
    for genre, _, piece in ALL:
        lead = piece.parts.get("lead")
        if lead is None:
            continue
        notes = sorted(lead.notes, key=lambda n: n.start)
        for n in notes:
            chord = piece.chords[min(_bar_of(piece, n.start), piece.bars - 1)]
            assert piece.key.contains(n.pitch) or n.pitch % 12 in chord.pcs, (genre, n)
            pos = (n.start + 0.02) % piece.beats_per_bar
            if pos < 0.05 or (piece.beats_per_bar == 4 and abs(pos - 2.0) < 0.05):
                strong += 1
                strong_ok += n.pitch % 12 in chord.pcs
        intervals += [abs(b.pitch - a.pitch) for a, b in zip(notes, notes[1:])]
    assert strong > 100 and strong_ok == strong
    assert statistics.median(intervals) <= 3
    assert sum(i <= 4 for i in intervals) / len(intervals) >= 0.7


def test_drums_play_the_genre_pattern_on_the_gm_map():
    for genre, _, piece in ALL:
        drums = piece.parts.get("drums")
        if drums is None:
            continue
        pitches = Counter(n.pitch for n in drums.notes)
        assert set(pitches) <= set(range(35, 82))
        assert pitches[36] >= piece.total_beats // piece.beats_per_bar or genre == "jazz", genre  # a kick every full bar
        if genre == "house":
            kicks = [n.start for n in drums.notes if n.pitch == 36]
            assert sum(1 for t in kicks if abs(t - round(t)) < 0.05) >= 0.9 * len(kicks)  # four on the floor


def test_ground_truth_labels():
    _, _, piece = ALL[0]
    labels = ground_truth(piece, 10.0)
    for key in ("genre", "tempo", "key", "mode", "instruments", "time_signature", "chord_progression", "chords"):
        assert key in labels
    assert labels["key"] == piece.key.label and labels["tempo"] == piece.tempo
    assert labels["chords"][0][0] == 0.0 and labels["chords"][-1][1] == 10.0
    assert labels["chord_progression"] == [c.symbol for c in piece.progression]


def test_genres_are_balanced_and_stable():
    names = list(GENRES)
    first = [choose_genre(0, i) for i in range(3 * len(names))]
    assert Counter(first) == Counter({g: 3 for g in names})
    assert first[:5] == [choose_genre(0, i) for i in range(5)]
    assert [choose_genre(1, i) for i in range(len(names))] != first[: len(names)]
    assert set(choose_genre(0, i, ["jazz", "rock"]) for i in range(10)) == {"jazz", "rock"}


# --------------------------------------------------------------------------- captions


def test_captions_name_the_true_tempo_key_and_genre_and_vary():
    starts = set()
    for genre, seed, piece in ALL:
        text = caption(piece, random.Random(seed))
        assert f"{piece.tempo} BPM" in text
        assert piece.key.label in text
        assert GENRES[genre].display in text.lower()
        assert text.endswith(".") and "  " not in text
        starts.add(" ".join(text.split()[:2]))
    assert len(starts) >= 5


def test_caption_mentions_the_instruments_it_has():
    from magnet_eval.synth.instruments import PROGRAMS

    for genre, seed, piece in ALL[:30]:
        text = caption(piece, random.Random(seed)).lower()
        for name, part in piece.parts.items():
            if not part.is_drum:
                assert any(p.lower() in text for p in PROGRAMS[part.program][1]), (name, part.program, text)


# --------------------------------------------------------------------------- splits


def test_split_by_id_hash_is_stable_and_near_80_10_10():
    ids = [f"clip{i}" for i in range(3000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    share = Counter(splits)
    assert abs(share["train"] / 3000 - 0.8) < 0.03 and abs(share["test"] / 3000 - 0.1) < 0.02
    assert Counter(split_of(i, (0.5, 0.5, 0.0)) for i in ids)["test"] == 0
    with pytest.raises(MagnetEvalError):
        split_of("x", (0.5, 0.2, 0.2))


def test_assign_splits_keeps_existing_unless_overwritten():
    m = Manifest([ManifestEntry("a", labels={"split": "test"}), ManifestEntry("b")])
    out = assign_splits(m)
    assert out.by_id("a").labels["split"] == "test" and out.by_id("b").labels["split"] == split_of("b")
    assert "split" not in m.by_id("b").labels  # the input is not mutated
    assert assign_splits(m, overwrite=True).by_id("a").labels["split"] == split_of("a")
