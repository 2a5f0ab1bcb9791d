"""StemGen data: readers for Slakh2100 / MUSDB18-HQ / the rendered corpus on fabricated layouts, and examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from magnet_eval.audio import save_audio
from magnet_eval.errors import AudioError, MagnetEvalError, ManifestError
from magnet_eval.stems import (
    INSTRUMENTS,
    StemExamples,
    gm_family,
    instrument_index,
    make_example,
    read_corpus,
    read_musdb,
    read_slakh,
)

SR = 8000


def _tone(freq: float, n: int = SR, amp: float = 0.2) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def _write_flac(path: Path, wav: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, SR, format="FLAC")


SLAKH_META = """UUID: 0123
normalized: true
overall_gain: 0.3
stems:
  S00:
    audio_rendered: true
    inst_class: Bass
    is_drum: false
    midi_program_name: Electric Bass (finger)
    program_num: 33
  S01:
    audio_rendered: true
    inst_class: Drums
    is_drum: true
    midi_program_name: Drums
    program_num: 0
  S02:
    audio_rendered: true
    inst_class: Strings (continued)
    is_drum: false
    program_num: 48
  S03:
    audio_rendered: false
    inst_class: Piano
    is_drum: false
    program_num: 0
"""


def _slakh_track(root: Path, name: str = "Track00001", meta: str = SLAKH_META, keys=("S00", "S01", "S02")) -> Path:
    folder = root / "train" / name
    folder.mkdir(parents=True)
    (folder / "metadata.yaml").write_text(meta)
    for i, k in enumerate(keys):
        _write_flac(folder / "stems" / f"{k}.flac", _tone(110.0 * (i + 1)))
    (folder / "mix.flac").write_bytes(b"")
    return folder


def test_gm_families_and_vocabulary():
    assert gm_family(0) == "piano" and gm_family(33) == "bass" and gm_family(48) == "ensemble"
    assert gm_family(127) == "sound_effects" and gm_family(5, is_drum=True) == "drums"
    assert instrument_index("Bass") == INSTRUMENTS.index("bass")
    assert instrument_index("synth lead") == INSTRUMENTS.index("synth_lead")
    with pytest.raises(MagnetEvalError, match="kazoo.*known instruments"):
        instrument_index("kazoo")
    with pytest.raises(MagnetEvalError):
        gm_family(128)


def test_slakh_reader(tmp_path):
    _slakh_track(tmp_path)
    tracks = read_slakh(tmp_path)
    assert len(tracks) == 1
    t = tracks[0]
    assert t.id == "Track00001" and t.split == "train"
    assert sorted(t.stems) == ["S00", "S01", "S02"]  # S03 is not rendered: skipped
    assert t.classes == {"S00": "bass", "S01": "drums", "S02": "ensemble"}
    assert t.stems["S00"].name == "S00.flac"


def test_slakh_class_from_inst_class_when_no_program(tmp_path):
    meta = "stems:\n  S00:\n    audio_rendered: true\n    inst_class: Synth Pad\n    is_drum: false\n"
    _slakh_track(tmp_path, meta=meta, keys=("S00",))
    assert read_slakh(tmp_path)[0].classes == {"S00": "synth_pad"}


def test_slakh_unknown_instrument_names_it(tmp_path):
    meta = "stems:\n  S00:\n    audio_rendered: true\n    inst_class: Theremin Choir\n    is_drum: false\n"
    folder = _slakh_track(tmp_path, meta=meta, keys=("S00",))
    with pytest.raises(ManifestError, match=r"metadata.yaml stem S00.*unknown instrument.*Theremin Choir") as e:
        read_slakh(tmp_path)
    assert str(folder) in str(e.value)


def test_slakh_stem_folder_without_stems(tmp_path):
    folder = _slakh_track(tmp_path, meta=SLAKH_META.replace("audio_rendered: true", "audio_rendered: false"), keys=())
    with pytest.raises(ManifestError, match="stem folder without stems") as e:
        read_slakh(tmp_path)
    assert str(folder) in str(e.value)


def test_slakh_missing_rendered_stem_file(tmp_path):
    _slakh_track(tmp_path, keys=("S00", "S01"))  # S02 is rendered in metadata but has no file
    with pytest.raises(ManifestError, match=r"S02.*S02.flac"):
        read_slakh(tmp_path)


def test_slakh_no_tracks(tmp_path):
    with pytest.raises(ManifestError, match="no Track"):
        read_slakh(tmp_path)


def _musdb_track(root: Path, split: str, name: str, stems=("bass", "drums", "other", "vocals")) -> Path:
    folder = root / split / name
    for i, s in enumerate(stems):
        save_audio(folder / f"{s}.wav", _tone(100.0 + 50 * i), SR)
    save_audio(folder / "mixture.wav", _tone(300.0), SR)
    return folder


def test_musdb_reader(tmp_path):
    _musdb_track(tmp_path, "train", "A - One")
    _musdb_track(tmp_path, "test", "B - Two")
    tracks = sorted(read_musdb(tmp_path), key=lambda t: t.id)
    assert [(t.id, t.split) for t in tracks] == [("A - One", "train"), ("B - Two", "test")]
    assert tracks[0].classes == {"bass": "bass", "drums": "drums", "other": "other", "vocals": "vocals"}
    assert "mixture" not in tracks[0].stems


def test_musdb_stem_folder_without_stems(tmp_path):
    folder = _musdb_track(tmp_path, "train", "Empty", stems=())
    with pytest.raises(ManifestError, match="stem folder without stems") as e:
        read_musdb(tmp_path)
    assert str(folder) in str(e.value)


def test_musdb_partial_track(tmp_path):
    _musdb_track(tmp_path, "train", "Half", stems=("bass", "drums"))
    with pytest.raises(ManifestError, match=r"Half: missing MUSDB18-HQ stems other.wav, vocals.wav"):
        read_musdb(tmp_path)


def _corpus(tmp_path: Path) -> Path:
    """A manifest in the rendered corpus's layout: audio/{id}.wav, stems/{id}/{part}.wav, labels.programs."""
    rows = []
    for cid, parts in (("c1", {"drums": 0, "bass": 33, "lead": 81}), ("c2", {"bass": 32, "chords": 4})):
        stems = {}
        for i, p in enumerate(parts):
            rel = f"stems/{cid}/{p}.wav"
            save_audio(tmp_path / rel, _tone(120.0 * (i + 1), n=2 * SR), SR)
            stems[p] = rel
        save_audio(tmp_path / f"audio/{cid}.wav", _tone(99.0, n=2 * SR), SR)
        rows.append({"id": cid, "caption": "x", "audio_path": f"audio/{cid}.wav", "duration": 2.0,
                     "labels": {"programs": parts, "split": "train"}, "stems": stems})
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_corpus_reader_gm_families(tmp_path):
    tracks = read_corpus(_corpus(tmp_path))
    assert [t.id for t in tracks] == ["c1", "c2"]
    assert tracks[0].classes == {"drums": "drums", "bass": "bass", "lead": "synth_lead"}
    assert tracks[1].classes == {"bass": "bass", "chords": "piano"}
    assert tracks[0].stems["bass"].is_file()


def test_make_example_context_is_sum_of_others():
    rng = np.random.default_rng(0)
    stems = {k: rng.standard_normal(1000).astype(np.float32) for k in ("a", "b", "c", "d")}
    ctx, tgt = make_example(stems, "c")
    np.testing.assert_array_equal(tgt, stems["c"])
    np.testing.assert_array_equal(ctx, stems["a"] + stems["b"] + stems["d"])
    ctx0, _ = make_example(stems, "c", silent_context=True)
    assert not ctx0.any()


def test_examples_cover_every_stem_and_context_is_exact_sum(tmp_path):
    tracks = read_corpus(_corpus(tmp_path))
    ex = StemExamples(tracks, SR, segment_s=0.5, silent_context_prob=0.25, seed=3)
    assert len(ex) == 5
    seen, silent = set(), 0
    for step in range(200):
        e = ex.example(step)
        seen.add((e.track_id, e.stem))
        stems = ex._audio([t.id for t in tracks].index(e.track_id))
        n = ex.n_samples
        seg = {k: v[e.offset:e.offset + n] for k, v in stems.items()}
        np.testing.assert_array_equal(e.target, seg[e.stem])
        others = sum(v for k, v in seg.items() if k != e.stem)
        if e.silent_context:
            silent += 1
            assert not e.context.any()
        else:
            np.testing.assert_allclose(e.context, others, atol=0, rtol=0)
        assert INSTRUMENTS[e.instrument] == tracks[[t.id for t in tracks].index(e.track_id)].classes[e.stem]
    assert len(seen) == 5  # every clip and every stem is drawn
    assert 25 <= silent <= 75  # 0.25 of 200 = 50, binomial sd ~ 6
    a, b = ex.example(17), StemExamples(tracks, SR, 0.5, 0.25, seed=3).example(17)
    assert (a.track_id, a.stem, a.offset) == (b.track_id, b.stem, b.offset)
    np.testing.assert_array_equal(a.context, b.context)


def test_undecodable_stem_names_file(tmp_path):
    path = _corpus(tmp_path)
    bad = tmp_path / "stems" / "c2" / "chords.wav"
    bad.write_bytes(b"RIFF\x00\x00not a wav at all")
    tracks = [t for t in read_corpus(path) if t.id == "c2"]
    ex = StemExamples(tracks, SR, segment_s=0.5)
    with pytest.raises(AudioError, match="chords.wav"):
        ex.example(0)


def test_corpus_stem_without_program_is_unknown_instrument(tmp_path):
    path = _corpus(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    del rows[1]["labels"]["programs"]["chords"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ManifestError, match=r"c2 stem 'chords'.*unknown instrument"):
        read_corpus(path)


def test_read_stem_corpus_dispatch_and_split(tmp_path):
    from magnet_eval.stems import read_stem_corpus, split_tracks

    slakh = tmp_path / "slakh"
    _slakh_track(slakh)
    assert read_stem_corpus(slakh)[0].id == "Track00001"
    musdb = tmp_path / "musdb"
    _musdb_track(musdb, "train", "A")
    assert read_stem_corpus(musdb)[0].classes["vocals"] == "vocals"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert [t.id for t in read_stem_corpus(_corpus(corpus))] == ["c1", "c2"]
    assert [t.id for t in read_stem_corpus(corpus)] == ["c1", "c2"]  # a folder with manifest.jsonl
    with pytest.raises(ManifestError, match="does not exist"):
        read_stem_corpus(tmp_path / "nowhere")
    tracks = read_corpus(corpus / "manifest.jsonl")
    tracks[1].split = "valid"
    train, valid = split_tracks(tracks)
    assert [t.id for t in train] == ["c1"] and [t.id for t in valid] == ["c2"]
    for t in tracks:
        t.split = "train"
    train, valid = split_tracks(tracks)  # no validation split: a stable hash picks at least one
    assert valid and not set(t.id for t in train) & set(t.id for t in valid)
    assert split_tracks(tracks) == (train, valid)
