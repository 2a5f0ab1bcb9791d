"""The rendered corpus: determinism byte for byte, manifest contents, stems, resume, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from magnet_eval.errors import MagnetEvalError
from magnet_eval.manifest import Manifest
from magnet_eval.synth.corpus import PEAK, SynthConfig, build_corpus, clip_id, finished_record
from magnet_eval.synth.render import SOUNDFONT_CANDIDATES

pytestmark = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not any(Path(p).is_file() for p in SOUNDFONT_CANDIDATES),
    reason="fluidsynth and the FluidR3_GM soundfont are needed (make setup)",
)

N, DURATION = 3, 2.0
SHARED = Path(__file__).resolve().parents[2] / "shared"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    build_corpus(out, n=N, duration=DURATION, seed=7, workers=2)
    return out


def test_same_seed_same_bytes_whatever_the_worker_count(corpus, tmp_path):
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    other = tmp_path / "b"
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(other), "--n", str(N), "--duration", str(DURATION),
                                      "--seed", "7", "--workers", "1"])
    assert result.exit_code == 0, result.output
    a, b = _files(corpus), _files(other)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.endswith(".wav")]) >= N * 3
    for name in a:
        assert a[name] == b[name], name


def test_another_seed_gives_other_music(corpus, tmp_path):
    build_corpus(tmp_path, n=1, duration=DURATION, seed=8, workers=1)
    assert (tmp_path / "audio" / "synth8_00000.wav").read_bytes() != (corpus / "audio" / "synth7_00000.wav").read_bytes()


def test_manifest_contents(corpus):
    m = Manifest.read(corpus / "manifest.jsonl")
    assert m.ids() == [clip_id(7, i) for i in range(N)]
    m.validate()
    for e in m:
        assert e.caption and f"{e.labels['tempo']} BPM" in e.caption and e.labels["key"] in e.caption
        assert e.duration == DURATION
        info = sf.info(e.audio_path)
        assert (info.samplerate, info.channels, info.frames) == (32000, 1, int(DURATION * 32000))
        for key in ("genre", "tempo", "key", "mode", "instruments", "time_signature", "chord_progression", "split"):
            assert key in e.labels, key
        assert e.labels["split"] in ("train", "valid", "test")
        assert set(e.stems) == set(e.labels["stems_present"]) == set(e.labels["instruments"])
        assert set(e.stems) | set(e.labels["absent_stems"]) == {"drums", "bass", "chords", "lead"}
        assert (corpus / e.labels["midi"]).is_file()
        assert os.path.isabs(e.audio_path)
    line = json.loads((corpus / "manifest.jsonl").read_text().splitlines()[0])
    assert line["audio_path"] == f"audio/{clip_id(7, 0)}.wav"  # relative on disk: the folder can move


def test_stems_are_real_parts_and_sum_to_the_mix(corpus):
    for e in Manifest.read(corpus / "manifest.jsonl"):
        mix, sr = sf.read(e.audio_path, dtype="float32")
        assert abs(float(np.abs(mix).max()) - PEAK) < 0.01  # peak normalised to -1 dBFS
        frames = mix[: len(mix) // 1600 * 1600].reshape(-1, 1600)
        assert np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 10 ** (-50 / 20)) > 0.9  # sound, not silence
        stems = {k: sf.read(p, dtype="float32")[0] for k, p in e.stems.items()}
        total = np.zeros_like(mix)
        for name, s in stems.items():
            assert s.shape == mix.shape, name
            rms_db = 20 * np.log10(np.sqrt(np.mean(s.astype(np.float64) ** 2)) + 1e-12)
            assert rms_db > -45, (e.id, name, rms_db)
            total += s
        assert np.corrcoef(mix, total)[0, 1] > 0.999
        assert float(np.abs(mix - total).max()) < 1e-3  # only 16-bit rounding apart
        # each stem is its own part, not a copy of the mix
        for name, s in stems.items():
            if len(stems) > 1:
                assert np.corrcoef(mix, s)[0, 1] < 0.99, name


def test_genre_without_drums_records_them_absent(tmp_path):
    m = build_corpus(tmp_path, n=1, duration=1.5, seed=3, workers=1, genres=["classical"])
    e = m[0]
    assert e.labels["genre"] == "classical"
    assert "drums" not in e.stems and e.labels["absent_stems"]["drums"] == "no drums in classical"
    assert not (tmp_path / "stems" / e.id / "drums.wav").exists()


def test_resume_skips_finished_clips_and_redoes_broken_ones(corpus, tmp_path):
    work = tmp_path / "c"
    shutil.copytree(corpus, work)
    before = {p: p.stat().st_mtime_ns for p in work.rglob("*.wav")}
    build_corpus(work, n=N, duration=DURATION, seed=7, workers=2)
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*.wav")} == before  # nothing re-rendered

    victim = work / "stems" / clip_id(7, 1) / "chords.wav"
    old = victim.read_bytes()
    victim.unlink()
    (work / "records" / f"{clip_id(7, 2)}.json").write_text('{"id": "synth7_00002", "capt')  # a torn record
    m = build_corpus(work, n=N + 1, duration=DURATION, seed=7, workers=2)
    assert len(m) == N + 1
    assert victim.read_bytes() == old  # re-rendered identically
    after = {p: p.stat().st_mtime_ns for p in work.rglob("*.wav")}
    clip0 = [p for p in before if clip_id(7, 0) in p.name or clip_id(7, 0) in p.parent.name]
    assert clip0 and all(after[p] == before[p] for p in clip0)  # clip 0 untouched
    clip2 = work / "audio" / f"{clip_id(7, 2)}.wav"
    assert after[clip2] != before[clip2]
    assert finished_record(work, N, SynthConfig(duration=DURATION, seed=7)) is not None
    # another duration is another corpus: the old clips do not count as finished
    assert finished_record(work, 0, SynthConfig(duration=1.0, seed=7)) is None


def test_sample_rate_outside_fluidsynth_range_is_resampled(tmp_path):
    m = build_corpus(tmp_path, n=1, duration=1.0, seed=1, workers=1, sample_rate=16000)
    for path in [m[0].audio_path, *m[0].stems.values()]:
        info = sf.info(path)
        assert (info.samplerate, info.frames) == (16000, 16000)


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(MagnetEvalError, match="--n"):
        build_corpus(tmp_path, n=0)
    with pytest.raises(MagnetEvalError, match="--duration"):
        build_corpus(tmp_path, n=1, duration=0)
    with pytest.raises(MagnetEvalError, match="polka"):
        build_corpus(tmp_path, n=1, genres=["polka"])


def test_missing_soundfont_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGNET_EVAL_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(MagnetEvalError, match="nope.sf2"):
        build_corpus(tmp_path / "out", n=1, duration=1.0)


def test_missing_fluidsynth_cli_error_names_the_fix(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), MAGNET_EVAL_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, "-c", "from magnet_eval.cli import main; main()", "data", "synth",
                           "--out", str(tmp_path / "out"), "--n", "1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "fluidsynth" in text and "make setup" in text and "Traceback" not in text


def test_real_musiccaps_manifest_gets_disjoint_splits():
    csv = SHARED / "data" / "musiccaps" / "musiccaps-public-openai.csv"
    if not csv.is_file():
        pytest.skip(f"{csv} not present")
    from magnet_eval.manifest import read_musiccaps
    from magnet_eval.synth.corpus import assign_splits

    m = assign_splits(read_musiccaps(csv).manifest)
    counts = {s: len(m.split(s)) for s in ("train", "valid", "test")}
    assert sum(counts.values()) == len(m)
    assert 0.77 < counts["train"] / len(m) < 0.83 and 0.08 < counts["test"] / len(m) < 0.12
    assert not set(m.split("train").ids()) & set(m.split("test").ids())
