import csv
import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from magnet_eval.cli import app
from magnet_eval.errors import ManifestError
from magnet_eval.manifest import (MUSICCAPS_COLUMNS, Manifest, ManifestEntry, read_any, read_audiocaps,
                                  read_musiccaps)

MC_HEADER = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
             "is_balanced_subset", "is_audioset_eval", "openai_refine"]


def write_wav(path, seconds=0.5, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(sr * seconds), dtype=np.float32) + 0.1, sr)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_jsonl_round_trip_relative_paths(tmp_path):
    write_wav(tmp_path / "audio" / "a.wav")
    m = Manifest([ManifestEntry("a", "a caption", str(tmp_path / "audio" / "a.wav"), 0.5, {"genre": "rock"},
                                {"drums": str(tmp_path / "audio" / "a.wav")})])
    m.write(tmp_path / "m.jsonl")
    line = json.loads((tmp_path / "m.jsonl").read_text())
    assert line["audio_path"] == "audio/a.wav" and line["stems"]["drums"] == "audio/a.wav"
    # moving the folder keeps the manifest valid
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    tmp_path.rename(moved)
    back = Manifest.read(moved / "m.jsonl")
    assert back[0].audio_path == str(moved / "audio" / "a.wav")
    assert back.by_id("a").labels == {"genre": "rock"}
    back.validate()


def test_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="duplicate id"):
        Manifest([ManifestEntry("x"), ManifestEntry("x")])
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:2"):
        Manifest.read(p)
    p.write_text("")
    with pytest.raises(ManifestError, match="empty"):
        Manifest.read(p)
    m = Manifest([ManifestEntry("a", audio_path=str(tmp_path / "gone.wav"))], source="m")
    with pytest.raises(ManifestError, match=r"(?s)does not match its files.*gone.wav"):
        m.validate()
    with pytest.raises(ManifestError, match="not in the manifest"):
        m.by_id("zzz")


def test_read_any_folder(tmp_path):
    write_wav(tmp_path / "b.wav")
    write_wav(tmp_path / "a.flac")
    m = read_any(tmp_path)
    assert m.ids() == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no audio files"):
        read_any(tmp_path / "empty")


def test_musiccaps_reader_small(tmp_path):
    rows = [
        ["vid1", "30", "40", "/m/a,/m/b", "['rock', 'loud']", "A rock song.", "4", "False", "True", "x"],
        ["vid2", "0", "10", "/m/c", "['calm']", "A calm piano.", "2", "True", "False", "y"],
        ["vid3", "5", "15", "", "[]", "Jazz trio.", "1", "False", "False", "z"],
    ]
    write_csv(tmp_path / "mc.csv", MC_HEADER, rows)
    write_wav(tmp_path / "audio" / "vid1.wav")               # ytid alone
    write_wav(tmp_path / "audio" / "sub" / "[vid2]-[0-10].wav")  # with bounds, in a sub-folder
    res = read_musiccaps(tmp_path / "mc.csv", tmp_path / "audio")
    assert res.missing == ["vid3"] and res.n_rows == 3
    e1 = res.manifest.by_id("vid1")
    assert e1.labels["aspect_list"] == ["rock", "loud"] and e1.labels["audioset_positive_labels"] == ["/m/a", "/m/b"]
    assert e1.labels["is_audioset_eval"] is True and e1.labels["extra"] == {"openai_refine": "x"}
    assert e1.duration == 10.0 and e1.audio_path.endswith("vid1.wav")
    assert res.manifest.by_id("vid2").audio_path.endswith("[vid2]-[0-10].wav")
    assert len(res.manifest.with_audio()) == 2


def test_musiccaps_reader_rejects_wrong_columns(tmp_path):
    write_csv(tmp_path / "mc.csv", ["ytid", "caption"], [["a", "b"]])
    with pytest.raises(ManifestError, match="missing columns"):
        read_musiccaps(tmp_path / "mc.csv")


def test_audiocaps_reader_small(tmp_path):
    rows = [["12", "vidA", "30", "Dog barks"], ["10", "vidA", "30", "A dog barking"], ["11", "vidA", "30", "Barking"],
            ["20", "vidB", "0", "Rain falls"]]
    write_csv(tmp_path / "ac.csv", ["audiocap_id", "youtube_id", "start_time", "caption"], rows)
    write_wav(tmp_path / "audio" / "YvidA.wav")
    res = read_audiocaps(tmp_path / "ac.csv", tmp_path / "audio")
    assert len(res.manifest) == 2 and res.missing == ["vidB"]
    a = res.manifest.by_id("vidA")
    assert a.caption == "A dog barking"  # lowest audiocap_id
    assert a.labels["captions"] == ["A dog barking", "Barking", "Dog barks"]
    r1 = read_audiocaps(tmp_path / "ac.csv", caption_choice="random", seed=3).manifest.by_id("vidA").caption
    r2 = read_audiocaps(tmp_path / "ac.csv", caption_choice="random", seed=3).manifest.by_id("vidA").caption
    assert r1 == r2


def test_real_musiccaps_file(shared_dir, tmp_path):
    csv_path = shared_dir / "data" / "musiccaps" / "musiccaps-public-openai.csv"
    write_wav(tmp_path / "audio" / "-0Gj8-vB1q4_30-40.wav")
    res = read_musiccaps(csv_path, tmp_path / "audio")
    assert res.n_rows == 5521 and len(res.manifest) == 5521
    assert len(res.missing) == 5520 and "-0Gj8-vB1q4" not in res.missing
    assert "openai_refine" in res.manifest[0].labels["extra"]
    assert sum(e.labels["is_audioset_eval"] for e in res.manifest) > 0


def test_real_audiocaps_file(shared_dir):
    res = read_audiocaps(shared_dir / "data" / "audiocaps" / "audiocaps-test.csv")
    assert res.n_rows == 4875 and len(res.manifest) == 975
    assert all(len(e.labels["captions"]) == 5 for e in res.manifest)


def test_cli_musiccaps_writes_manifest_and_missing_list(tmp_path):
    write_csv(tmp_path / "mc.csv", MC_HEADER, [["v1", "0", "10", "", "[]", "Song.", "1", "False", "False", ""],
                                               ["v2", "0", "10", "", "[]", "Other.", "1", "False", "False", ""]])
    write_wav(tmp_path / "audio" / "v1.wav")
    out = tmp_path / "out" / "m.jsonl"
    r = CliRunner().invoke(app, ["data", "musiccaps", "--csv", str(tmp_path / "mc.csv"), "--audio-dir",
                                 str(tmp_path / "audio"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(Manifest.read(out)) == 2
    assert (tmp_path / "out" / "m.missing.txt").read_text().split() == ["v2"]
    r = CliRunner().invoke(app, ["data", "check", str(out)])
    assert r.exit_code != 0 and isinstance(r.exception, ManifestError)


def test_wrong_field_types_are_refused_with_file_and_line(tmp_path):
    import json

    cases = {"labels": {"id": "a", "labels": [1]}, "id_null": {"id": None}, "id_obj": {"id": {"x": 1}},
             "stems": {"id": "a", "stems": ["a.wav"]}, "duration": {"id": "a", "duration": "ten"},
             "caption": {"id": "a", "caption": 3}}
    for name, entry in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps({"id": "ok"}) + "\n" + json.dumps(entry) + "\n")
        with pytest.raises(ManifestError, match=rf"{name}.jsonl:2: malformed"):
            Manifest.read(path)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"id": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(ManifestError, match="latin.jsonl: manifest is not UTF-8"):
        Manifest.read(latin)


def test_same_file_under_two_ids_is_flagged(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    m = Manifest([ManifestEntry(id="x", audio_path=str(wav)), ManifestEntry(id="y", audio_path=str(wav))])
    assert m.duplicate_audio() == {str(wav.resolve()): ["x", "y"]}
    path = m.write(tmp_path / "m.jsonl")
    with pytest.raises(ManifestError, match="a.wav under ids x, y"):
        Manifest.read(path)


def test_ids_starting_with_a_dot_survive_a_folder_round_trip(tmp_path):
    """`generate` writes {id}.wav; reading the folder back must give the same ids (AppleDouble files aside)."""
    import numpy as np

    from magnet_eval.audio import save_audio

    ids = [".hidden", "..two", "plain"]
    for i in ids:
        save_audio(tmp_path / f"{i}.wav", np.zeros(160, dtype=np.float32), 16000)
    (tmp_path / "._plain.wav").write_bytes(b"\0" * 10)  # macOS resource fork, not audio
    (tmp_path / ".x.wav.tmp").write_bytes(b"")  # a half-written temp file
    assert sorted(Manifest.from_dir(tmp_path).ids()) == sorted(ids)


def test_malformed_csv_rows_name_file_and_line(tmp_path):
    header = ",".join(MUSICCAPS_COLUMNS) + "\n"
    short = tmp_path / "short.csv"
    short.write_text(header + "abc,0,10\n")
    with pytest.raises(ManifestError, match=r"short.csv:2: malformed row: 3 fields"):
        read_musiccaps(short)
    latin = tmp_path / "latin.csv"
    latin.write_bytes((header + 'abc,0,10,"[]","[]",caf\xe9,1,False,True\n').encode("latin-1"))
    with pytest.raises(ManifestError, match="latin.csv: caption file is not UTF-8"):
        read_musiccaps(latin)


def test_audiocaps_mixed_numeric_and_text_ids_sort(tmp_path):
    csv_path = tmp_path / "ac.csv"
    csv_path.write_text("audiocap_id,youtube_id,start_time,caption\n12,vid,0,second\nx7,vid,0,third\n3,vid,0,first\n")
    entry = read_audiocaps(csv_path).manifest[0]
    assert entry.caption == "first" and entry.labels["audiocap_ids"] == ["3", "12", "x7"]
