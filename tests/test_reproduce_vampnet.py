"""`reproduce --preset vampnet-tiny` at toy sizes: the sweep report, the shared corpus/codec, reuse on a rerun,
and the mel distance metric it reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.metrics.mel_distance import MelDistance
from magnet_eval.reproduce import TinyPreset
from magnet_eval.reproduce_vampnet import VampNetTinyPreset, density_verdict, run_vampnet_tiny
from magnet_eval.solvers.recipes import TinyBudget
from magnet_eval.solvers.vampnet import VampNetBudget

TOY = VampNetTinyPreset(
    tiny=TinyPreset(n_clips=30, clip_seconds=3.0, train=TinyBudget(codec_steps=2, codec_batch=2, codec_segment_seconds=0.5)),
    train=VampNetBudget(steps=2, batch_size=2, lr=1e-3), segment_seconds=0.5, periods=(1, 4, 16), steps_sweep=(1, 12),
    steps_period=4, n_clips=3, clip_seconds=1.0, n_bootstrap=10, audio_examples=1, workers=1)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vampnet_reproduce")
    index = run_vampnet_tiny(root / "report", root / "work", TOY, command="magnet-eval reproduce --preset vampnet-tiny (toy)")
    return root, index


def test_sweep_report_has_every_point_with_bitrate_mel_and_fad(toy_run):
    root, index = toy_run
    t = pd.read_csv(root / "report" / "vampnet_sweep.csv")
    prompt = t[t.sweep == "prompt"]
    assert list(prompt[prompt.kind == "periodic"].period) == [1, 4, 16]
    assert list(prompt[prompt.kind == "compression"].codebooks) == [4, 3, 2, 1]
    assert (prompt.kind == "noise").sum() == 1
    # bitrates: 4 codebooks x 11 bits x 50 Hz kept whole at P=1; codec-only n codebooks = n x 550 bps; noise 0
    per = prompt[prompt.kind == "periodic"].set_index("period")
    assert per.loc[1, "bitrate_bps"] == pytest.approx(2200.0)
    assert per.loc[4, "bitrate_bps"] < per.loc[1, "bitrate_bps"] / 3
    comp = prompt[prompt.kind == "compression"].set_index("codebooks")
    assert comp.bitrate_bps.to_dict() == pytest.approx({4: 2200.0, 3: 1650.0, 2: 1100.0, 1: 550.0})
    # P = 1 keeps every token: the vamp returns the input, i.e. exactly the codec's reconstruction
    assert per.loc[1, "mel_distance"] == pytest.approx(comp.loc[4, "mel_distance"], abs=1e-6)
    assert per.loc[1, "changed_tokens"] == 0 and per.loc[16, "changed_tokens"] > 0
    assert (t.mel_distance > 0).all() and t.fad.notna().all()
    steps = t[t.sweep == "steps"]
    assert sorted(steps.coarse_steps) == [1, 12] and set(steps.period) == {4}
    html = index.read_text()
    assert "Prompt and sampling-step sweeps" in html and "denser prompts" in html and "<audio" in html
    assert (root / "report" / "vampnet_prompt_sweep.png").stat().st_size > 5000
    assert "| system |" in (root / "report" / "vampnet_sweep.md").read_text()
    # the corpus and the codec sit where the tiny preset puts them (shared work folder)
    assert (root / "work" / "corpus" / "manifest.jsonl").is_file()
    assert (root / "work" / "models" / "codec" / "compression_state_dict.bin").is_file()
    from magnet_eval.vamp import load_vamp_system

    system = load_vamp_system(str(root / "work" / "vampnet" / "models" / "vampnet.pt"))  # the trained pair, for `vamp`
    assert system.vampnet.n_codebooks == 4 and system.codec.card == 2048
    logs = [pd.read_csv(root / "work" / "vampnet" / "models" / p / "train_log.csv") for p in ("coarse", "c2f")]
    assert all({"valid_accuracy", "valid_unigram_accuracy"} <= set(log.columns) for log in logs)


def test_rerun_reuses_models_audio_and_metrics(toy_run):
    root, _ = toy_run
    own = root / "work" / "vampnet"
    files = {p: p.stat().st_mtime_ns for p in own.rglob("*") if p.suffix in (".pt", ".wav", ".parquet", ".json")}
    run_vampnet_tiny(root / "report", root / "work", TOY)
    again = {p: p.stat().st_mtime_ns for p in files}
    changed = [p for p in files if files[p] != again[p] and p.name != "first_run_stages.json"]
    assert not changed
    assert "The first complete run" in (root / "report" / "index.html").read_text()


def test_mel_distance_metric():
    sr = 16000
    t = np.arange(sr) / sr
    a = 0.3 * np.sin(2 * np.pi * 440 * t)
    m = MelDistance(sr, n_bootstrap=20)
    assert m.distance(a, a) == 0.0
    near, far = m.distance(a, a * 0.9), m.distance(a, 0.3 * np.sin(2 * np.pi * 1500 * t))
    assert 0 < near < far
    m.update([a, a * 0.9], [a, a], ["x", "y"])
    m.update(m.spectrum(a), m.spectrum(a * 0.5), "z")  # spectra are accepted as they are
    r = m.compute()
    assert r.value == pytest.approx(np.mean([0.0, near, m.distance(a, a * 0.5)]))
    assert set(r.per_sample["mel_distance"]) == {"x", "y", "z"}
    with pytest.raises(MagnetEvalError, match="twice"):
        m.update(a, a, "x")
    with pytest.raises(MagnetEvalError, match="non-finite"):
        m.distance(np.full(100, np.nan), a)


def test_density_verdict_reads_the_numbers():
    base = dict(sweep="prompt", kind="periodic")
    rising = pd.DataFrame([dict(base, period=p, mel_distance=d) for p, d in ((1, 0.1), (4, 0.2), (16, 0.5))])
    assert "yes" in density_verdict(rising)
    falling = rising.assign(mel_distance=[0.5, 0.3, 0.1])
    assert "no" in density_verdict(falling)
