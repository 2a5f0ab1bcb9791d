"""`reproduce`: the tiny pipeline end to end at toy sizes, its reuse of every stage, and the paper presets'
up-front list of missing files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from magnet_eval.reproduce import TinyPreset, paper_requirements, run_tiny
from magnet_eval.solvers.recipes import TinyBudget

TOY = TinyPreset(n_clips=30, clip_seconds=3.0, gen_seconds=3.0, gen_batch=4, n_bootstrap=20,
                 latency_batch_sizes=(1, 2), latency_seconds=0.5, latency_repeats=1, audio_examples=2,
                 train=TinyBudget(codec_steps=2, codec_batch=2, codec_segment_seconds=0.5, lm_steps=2, lm_batch=2,
                                  lm_segment_seconds=1.0))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    index = run_tiny(root / "report", root / "work", TOY, command="magnet-eval reproduce --preset tiny (toy sizes)")
    return root, index


def test_tiny_pipeline_writes_the_report_with_every_system(toy_run):
    root, index = toy_run
    assert index == root / "report" / "index.html" and index.is_file()
    t1 = pd.read_csv(root / "report" / "table1.csv")
    assert list(t1.model) == ["held-out real", "codec reconstruction", "random tokens", "MAGNeT tiny", "MusicGen tiny"]
    # FAD on musicnn is computed; VGGish FAD and CLAP (weights missing here) get no column, only a note
    assert t1["fad_status"].eq("ok").all() and t1["fad"].gt(0).all()
    assert t1["fad_embedder"].eq("musicnn").all()
    assert not any(c.startswith(("fad@", "clap")) for c in t1.columns)
    assert t1["mirdd_status"].eq("ok").all()
    # KL pairs each clip with its held-out original: for the held-out real clips that is the set against itself
    kl_status = t1.set_index("model")["kl_musicnn_status"]
    assert kl_status.drop("held-out real").eq("ok").all()
    assert kl_status["held-out real"].startswith("self-comparison")
    lat = pd.read_csv(root / "report" / "latency.csv")
    assert set(lat.model) == {"MAGNeT tiny", "MusicGen tiny"} and set(lat.batch_size) == {1, 2}
    html = index.read_text()
    assert "FAD [musicnn]" in html and "Command: magnet-eval reproduce" in html
    assert "Not computed for any system" in html and "fad, fad_inf [vggish]: weights not available" in html
    # every system, the held-out real clips included, has audio players in the page
    audio = root / "report" / "audio"
    assert len([p for p in audio.iterdir() if p.is_dir()]) == 5
    stages = json.loads((root / "report" / "stages.json").read_text())
    assert stages[0]["name"].startswith("corpus") and stages[-1]["name"] == "report"


def test_second_run_reuses_every_stage(toy_run):
    root, _ = toy_run
    results = root / "work" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}
    models = {p: p.stat().st_mtime_ns for p in (root / "work" / "models").rglob("*.bin")}
    index = run_tiny(root / "report", root / "work", TOY)
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == before
    html = index.read_text()  # the rerun reports its own (cached) stage times and those of the first run
    assert "Stages of this run" in html and "The first complete run in this work folder" in html
    assert {p: p.stat().st_mtime_ns for p in models} == models


def test_paper_preset_lists_everything_missing_and_runs_nothing(tmp_path):
    missing = paper_requirements("paper-musiccaps", tmp_path / "no.csv", None)
    text = "\n".join(missing)
    for needle in ("caption file", "reference audio folder", "MAGNeT small 10s checkpoint", "t5-base",
                   "vggish weights", "clap weights", "PaSST"):
        assert needle in text, needle
    exe = Path(sys.executable).with_name("magnet-eval")
    res = subprocess.run([str(exe), "reproduce", "--preset", "paper-audiocaps", "--out", str(tmp_path / "r"),
                          "--work-dir", str(tmp_path / "w"), "--audio-dir", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode != 0
    text = " ".join((res.stdout + res.stderr).split())  # rich wraps long lines
    assert "Nothing was run" in text and "Audio-MAGNeT small" in text and "Traceback" not in text
    assert not (tmp_path / "r").exists()


def _results_file(path, values: dict[str, float]):
    rows = [dict(system=s, metric="fad", value=v, ci_low=v - 1, ci_high=v + 1, n_generated=10, n_reference=10,
                 embedder="musicnn", reference="ref", status="ok", details="{}") for s, v in values.items()]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_ordering_check_states_what_holds_and_what_does_not(tmp_path):
    from magnet_eval.report.tables import collect_results
    from magnet_eval.reproduce import ordering_check

    good = {"held-out real": 10, "codec reconstruction": 20, "MAGNeT tiny": 30, "MusicGen tiny": 35, "random tokens": 90}
    text = ordering_check(collect_results([_results_file(tmp_path / "a.csv", good)]))
    assert text.endswith("holds.") and "held-out real 10 < codec reconstruction 20" in text
    bad = {**good, "MusicGen tiny": 15}
    text = ordering_check(collect_results([_results_file(tmp_path / "b.csv", bad)]))
    assert "VIOLATED" in text and "codec reconstruction (20) is not below MusicGen tiny (15)" in text
    partial = {k: v for k, v in good.items() if k != "random tokens"}
    assert "not checked (no value for random tokens)" in ordering_check(collect_results([_results_file(tmp_path / "c.csv", partial)]))


def test_background_descriptors_fill_the_cache_with_what_the_evaluation_computes(tmp_path, monkeypatch):
    """The low-priority extraction started around training writes the cache entries the evaluation then reads:
    the same descriptors as extracting in process; leaving the block stops it."""
    import numpy as np

    from magnet_eval.audio import save_audio
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.mir.extract import describe_file, describe_files
    from magnet_eval.reproduce import descriptors_on_idle_cycles

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))
    sr = 44100
    t = np.arange(sr * 2) / sr
    entries = []
    for i, f in enumerate((220.0, 330.0)):
        wav = (0.3 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)
        entries.append(ManifestEntry(id=f"c{i}", caption="x", audio_path=str(save_audio(tmp_path / f"c{i}.wav", wav, sr))))
    man = Manifest(entries).write(tmp_path / "m.jsonl")
    # leaving the block stops the extraction (here before the spawned child has even imported its modules)
    with descriptors_on_idle_cycles([man]) as proc:
        pass
    assert proc is not None and not proc.is_alive()
    assert not list((tmp_path / "cache").rglob("*.npy"))
    # left to finish (at normal priority, so a loaded machine cannot starve it): it caches both clips
    with descriptors_on_idle_cycles([man], niceness=0) as proc:
        proc.join(timeout=600)
        assert proc.exitcode == 0
    cache = EmbeddingCache()
    got = describe_files([(e.id, e.audio_path) for e in entries], cache=cache, workers=1)
    assert cache.hits == 2 and cache.misses == 0
    for e in entries:
        np.testing.assert_array_equal(got[e.id].to_vector(), describe_file(e.audio_path).to_vector())
