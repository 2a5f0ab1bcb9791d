"""The offline corpus: music theory, composition and deterministic FluidSynth rendering."""

import hashlib
import random
import shutil

import numpy as np
import pytest

from magnet_eval.audio import load_audio
from magnet_eval.manifest import Manifest
from magnet_eval.music.compose import GENRES, caption, compose, labels
from magnet_eval.music.theory import Key, diatonic_chord, voice_chord

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed (make setup)")


def test_diatonic_chords():
    c_major = Key(0, "major")
    assert diatonic_chord(c_major, "i").label == "C:maj"
    assert diatonic_chord(c_major, "ii").label == "D:min"
    assert diatonic_chord(c_major, "vii").label == "B:dim"
    assert diatonic_chord(Key(9, "minor"), "i").label == "A:min"
    assert diatonic_chord(Key(9, "minor"), "vM").label == "E:maj"
    assert diatonic_chord(c_major, "v", seventh=True).pitch_classes == (7, 11, 2, 5)
    assert voice_chord(diatonic_chord(c_major, "i"), 60) == [60, 64, 67]


@pytest.mark.parametrize("genre", sorted(GENRES))
def test_pieces_follow_their_harmony(genre):
    piece = compose(random.Random(f"t:{genre}"), 10.0, genre=genre)
    bpb = piece.beats_per_bar
    assert piece.chords and all(all(piece.key.contains(pc) for pc in c.pitch_classes[:3]) for c in piece.chords
                                if not c.numeral.endswith("M"))
    # the bass plays the current chord's root on every downbeat (or a chord tone in walking lines)
    for note in piece.parts["bass"]:
        if note.start == int(note.start) and int(note.start) % bpb == 0:
            chord = piece.chords[int(note.start) // bpb]
            assert note.pitch % 12 == chord.root
    # the lead is in the key, and chord tones sit on the strong beats
    lead = piece.parts["lead"]
    assert len(lead) > 4 and all(piece.key.contains(n.pitch) for n in lead)
    for n in lead:
        bar, in_bar = divmod(n.start, bpb)
        if in_bar == int(in_bar) and int(in_bar) % 2 == 0:
            assert n.pitch % 12 in piece.chords[int(bar)].pitch_classes
    assert ("drums" in piece.parts) == (GENRES[genre].drums is not None)
    # ten seconds of music at the drawn tempo
    last = max(n.start + n.length for part in piece.parts.values() for n in part)
    assert last * 60 / piece.tempo >= 10.0
    assert GENRES[genre].tempo[0] <= piece.tempo <= GENRES[genre].tempo[1]


def test_caption_tells_the_truth():
    rng = random.Random(3)
    for _ in range(20):
        piece = compose(rng, 5.0)
        text = caption(piece, rng)
        lab = labels(piece)
        assert f"{piece.tempo} BPM" in text and piece.genre in text and f"{lab['key']} {lab['mode']}" in text
        assert piece.instruments["lead"][1] in text


@needs_fluidsynth
def test_render_is_deterministic_resumable_and_consistent(tmp_path):
    from magnet_eval.music.render import render_corpus

    a = render_corpus(tmp_path / "a", n=3, duration=2.0, seed=7, workers=2)
    b = render_corpus(tmp_path / "b", n=3, duration=2.0, seed=7, workers=1)

    def digest(root):
        files = sorted(p for p in root.rglob("*") if p.is_file() and "clips" not in p.parts)
        return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in files}

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert len(a) == 3 and Manifest.read(tmp_path / "a" / "manifest.jsonl").ids() == a.ids()
    for e in a:
        wav, sr = load_audio(e.audio_path)
        assert sr == 32000 and len(wav) == 64000 and np.sqrt(np.mean(wav ** 2)) > 0.01
        stems = [load_audio(p)[0] for p in e.stems.values()]
        assert set(e.stems) <= {"drums", "bass", "chords", "lead"} and len(stems) >= 3
        # the mix is the sum of its stems (up to 16-bit rounding)
        assert np.max(np.abs(np.sum(stems, axis=0) - wav)) < 4 * len(stems) / 32768
        assert e.labels["split"] in {"train", "valid", "test"}
    other = render_corpus(tmp_path / "c", n=1, duration=2.0, seed=8, workers=1)
    assert other[0].caption != a[0].caption or digest(tmp_path / "c") != digest(tmp_path / "a")

    # resume: a finished clip is not rendered again (its files keep their mtime), a deleted one is
    first = tmp_path / "a" / "audio" / f"{a[0].id}.wav"
    before = first.stat().st_mtime_ns
    (tmp_path / "a" / "audio" / f"{a[1].id}.wav").unlink()
    again = render_corpus(tmp_path / "a", n=3, duration=2.0, seed=7, workers=1)
    assert first.stat().st_mtime_ns == before and len(again) == 3
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


@needs_fluidsynth
def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    r = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--n", "2", "--duration", "1.5", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert len(Manifest.read(tmp_path / "manifest.jsonl")) == 2
    r = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--n", "0"])
    assert r.exit_code != 0
