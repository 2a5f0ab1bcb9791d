"""`magnet-eval train ...` end to end on a fabricated mini corpus: exports load in `generate`,
a killed run resumes to the same weights, and two torchrun processes (gloo) stay identical."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from magnet_eval.cli import app
from magnet_eval.manifest import Manifest, ManifestEntry
from magnet_eval.solvers.base import KILL_ENV, load_checkpoint

SR = 32000
VENV_BIN = Path(sys.executable).parent
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private cache for the module's token/condition files; restored afterwards."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("MAGNET_EVAL_CACHE")
    os.environ["MAGNET_EVAL_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("MAGNET_EVAL_CACHE", None)
    else:
        os.environ["MAGNET_EVAL_CACHE"] = old


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env) -> Path:
    """8 clips of 1.2 s (two-note chords with a pulse), 6 train / 2 valid, with captions."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * 1.2)) / SR
    entries = []
    for i in range(8):
        f1, f2 = rng.uniform(150, 600, size=2)
        pulse = (np.sin(2 * np.pi * 4 * t) > 0).astype(np.float32)
        wav = 0.2 * (np.sin(2 * np.pi * f1 * t) + 0.5 * np.sin(2 * np.pi * f2 * t)) * (0.4 + 0.6 * pulse)
        path = root / f"clip{i}.wav"
        sf.write(path, wav.astype(np.float32), SR, subtype="PCM_16")
        entries.append(ManifestEntry(f"clip{i}", f"a chord of {int(f1)} and {int(f2)} hertz", str(path), 1.2,
                                     labels={"split": "train" if i < 6 else "valid"}))
    return Manifest(entries).write(root / "manifest.jsonl")


def _ok(result) -> None:
    if result.exit_code != 0:
        raise AssertionError(f"exit {result.exit_code}\n{result.output}\n{result.exception!r}")


SMALL = ["--dim", "32", "--num-layers", "1", "--num-heads", "2", "--text-encoder", "random", "--threads", "1"]
LM_ARGS = ["--steps", "4", "--batch-size", "2", "--segment-seconds", "0.5", "--checkpoint-every", "2", "--valid-every", "2",
           "--log-every", "1", *SMALL]


@pytest.fixture(scope="module")
def codec_ckpt(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("codec_run")
    res = runner.invoke(app, ["train", "codec", "--data", str(corpus), "--out", str(out), "--steps", "3",
                              "--batch-size", "2", "--segment-seconds", "0.5", "--kmeans-iters", "1",
                              "--checkpoint-every", "3", "--valid-every", "3", "--log-every", "1", "--threads", "1"])
    _ok(res)
    return out / "compression_state_dict.bin"


def test_codec_command_exports_a_loadable_codec(codec_ckpt):
    from magnet_eval.models.codec import load_codec

    out = codec_ckpt.parent
    codec = load_codec(codec_ckpt)
    assert codec.sample_rate == SR and codec.n_q == 4 and codec.frame_rate == 50
    log = pd.read_csv(out / "train_log.csv")
    assert list(log.query("phase == 'train'").step) == [1, 2, 3]
    v = log.query("phase == 'valid'")
    assert list(v.step) == [3] and np.isfinite(v.valid_si_snr_db).all() and (v.valid_mel_distance > 0).all()
    assert (out / "loss_curve.png").stat().st_size > 1000
    # the trained codec is the exported one, not the random start
    from magnet_eval.models.codec import build_codec

    assert any(not torch.equal(a, b) for a, b in zip(codec.state_dict().values(), build_codec("tiny").state_dict().values()))


def test_magnet_command_trains_and_generate_loads_it(corpus, codec_ckpt, tmp_path, env):
    out = tmp_path / "magnet"
    res = runner.invoke(app, ["train", "magnet", "--data", str(corpus), "--out", str(out), "--codec", str(codec_ckpt), *LM_ARGS])
    _ok(res)
    assert (out / "state_dict.bin").exists() and (out / "compression_state_dict.bin").exists()
    log = pd.read_csv(out / "train_log.csv")
    v = log.query("phase == 'valid'")
    assert list(v.step) == [0, 2, 4]
    assert {"valid_accuracy", "valid_unigram_accuracy", "valid_chance_accuracy", "valid_accuracy_stage3"} <= set(v.columns)
    t = log.query("phase == 'train'")
    assert (t.tokens_per_s > 0).all() and set(t.stage.dropna().astype(int)) <= {0, 1, 2, 3}
    # tokens were cached once, keyed by the codec checkpoint
    assert len(list((env / "tokens").rglob("*.npy"))) >= 8

    from magnet_eval.models.generator import load_generator

    gen = load_generator(out)
    assert gen.kind == "magnet" and gen.lm.cfg.segment_duration == 0.5 and gen.lm.cfg.dim == 32
    codes, wav, sr = gen.generate(["a chord"], duration=0.3, decoding_steps=[2, 1, 1, 1])
    assert sr == SR and np.isfinite(wav).all() and codes.shape[1] == 4

    # the same command again reuses the finished run
    again = runner.invoke(app, ["train", "magnet", "--data", str(corpus), "--out", str(out), "--codec", str(codec_ckpt), *LM_ARGS])
    _ok(again)
    assert "reusing" in again.output
    # other settings in the same folder are refused with a clear message, and the run is kept
    other = runner.invoke(app, ["train", "magnet", "--data", str(corpus), "--out", str(out), "--codec", str(codec_ckpt),
                                *LM_ARGS, "--lr", "0.01"])
    assert other.exit_code != 0 and "other settings" in str(other.exception)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 4


def test_musicgen_command(corpus, codec_ckpt, tmp_path):
    out = tmp_path / "musicgen"
    _ok(runner.invoke(app, ["train", "musicgen", "--data", str(corpus), "--out", str(out), "--codec", str(codec_ckpt), *LM_ARGS]))
    from magnet_eval.models.checkpoints import load_lm

    lm = load_lm(out / "state_dict.bin")
    assert lm.cfg.kind == "musicgen" and lm.cfg.pattern == "delay"
    v = pd.read_csv(out / "train_log.csv").query("phase == 'valid'")
    assert "valid_accuracy_cb0" in v.columns and list(v.step) == [0, 2, 4]


def test_missing_codec_is_a_clear_error(corpus, tmp_path):
    res = runner.invoke(app, ["train", "magnet", "--data", str(corpus), "--out", str(tmp_path / "x"),
                              "--codec", str(tmp_path / "nope.bin"), *LM_ARGS])
    assert res.exit_code != 0 and "train codec" in str(res.exception)


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MAGNET_EVAL_NO_PROGRESS="1", HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run([str(VENV_BIN / "magnet-eval"), *args], env=env, capture_output=True, text=True, timeout=600)


def test_killed_run_resumes_to_the_same_weights(corpus, codec_ckpt, tmp_path):
    args = ["train", "magnet", "--data", str(corpus), "--codec", str(codec_ckpt), "--steps", "6", "--batch-size", "2",
            "--segment-seconds", "0.5", "--checkpoint-every", "2", "--valid-every", "3", "--log-every", "1", *SMALL]
    killed = tmp_path / "killed"
    first = _cli(*args, "--out", str(killed), env_extra={KILL_ENV: "5"})
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 4  # step 5 was lost with the process
    second = _cli(*args, "--out", str(killed))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming magnet" in second.stderr and "at step 4" in second.stderr

    straight = tmp_path / "straight"
    _ok(runner.invoke(app, [*args, "--out", str(straight)]))
    a = torch.load(killed / "state_dict.bin", weights_only=False)["best_state"]
    b = torch.load(straight / "state_dict.bin", weights_only=False)["best_state"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = pd.read_csv(killed / "train_log.csv")
    assert list(log.query("phase == 'train'").step) == [1, 2, 3, 4, 5, 6]


def test_torchrun_two_cpu_processes_hold_identical_weights(corpus, codec_ckpt, tmp_path):
    out = tmp_path / "ddp"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nnodes", "1", "--nproc_per_node", "2", "--no-python",
           str(VENV_BIN / "magnet-eval"), "train", "magnet", "--data", str(corpus), "--codec", str(codec_ckpt),
           "--out", str(out), "--steps", "3", "--batch-size", "4", "--segment-seconds", "0.5", "--checkpoint-every", "3",
           "--valid-every", "3", "--log-every", "1", *SMALL]
    env = dict(os.environ, MAGNET_EVAL_NO_PROGRESS="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads((out / "train_done.json").read_text())
    assert done["world_size"] == 2
    sums = done["rank_weight_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["world_size"] == 2
    log = pd.read_csv(out / "train_log.csv")
    assert list(log.query("phase == 'train'").step) == [1, 2, 3]  # one log, written by rank 0


def test_tiny_suite_trains_all_three_then_reuses_them(corpus, tmp_path):
    from magnet_eval.solvers.recipes import TinyBudget, train_tiny_suite

    budget = TinyBudget(codec_steps=2, codec_batch=2, codec_segment_seconds=0.5, lm_steps=2, lm_batch=2,
                        lm_segment_seconds=0.5)
    paths = train_tiny_suite(corpus, tmp_path / "suite", budget)
    assert set(paths) == {"codec", "magnet", "musicgen"}
    assert paths["codec"].name == "compression_state_dict.bin"
    assert paths["magnet"] == tmp_path / "suite" / "magnet" / "state_dict.bin"
    stamps = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    for kind in ("magnet", "musicgen"):  # validated untrained and at the last step only (lm_validations=1)
        log = pd.read_csv(tmp_path / "suite" / kind / "train_log.csv")
        assert list(log.loc[log.phase == "valid", "step"]) == [0, 2], kind
    again = train_tiny_suite(corpus, tmp_path / "suite", budget)
    assert again == paths and {k: p.stat().st_mtime_ns for k, p in again.items()} == stamps
    # more steps: only the changed parts train again (the LMs depend on the unchanged codec)
    more = train_tiny_suite(corpus, tmp_path / "suite", TinyBudget(**{**budget.__dict__, "lm_steps": 3}))
    assert more["codec"].stat().st_mtime_ns == stamps["codec"]
    assert more["magnet"].stat().st_mtime_ns != stamps["magnet"]
    # a retrained codec makes the LM runs stale: they are set aside (not deleted) and trained again
    newer = train_tiny_suite(corpus, tmp_path / "suite", TinyBudget(**{**budget.__dict__, "codec_steps": 3, "lm_steps": 3}))
    assert newer["codec"].stat().st_mtime_ns != stamps["codec"]
    stale = sorted(p.name for p in (tmp_path / "suite").iterdir() if ".stale-" in p.name)
    assert len(stale) == 2 and stale[0].startswith("magnet.stale-") and stale[1].startswith("musicgen.stale-")
    assert json.loads((tmp_path / "suite" / "magnet" / "train_done.json").read_text())["step"] == 3


def test_tiny_suite_side_by_side_equals_one_after_the_other(corpus, tmp_path):
    import torch

    from magnet_eval.solvers.recipes import TinyBudget, train_tiny_suite

    budget = TinyBudget(codec_steps=2, codec_batch=2, codec_segment_seconds=0.5, lm_steps=2, lm_batch=2,
                        lm_segment_seconds=0.5)
    seq = train_tiny_suite(corpus, tmp_path / "seq", budget, parallel=False)
    shutil.copytree(tmp_path / "seq" / "codec", tmp_path / "side" / "codec")  # same codec: reused, not retrained
    side = train_tiny_suite(corpus, tmp_path / "side", budget, parallel=True)
    assert side["codec"] == tmp_path / "side" / "codec" / "compression_state_dict.bin"
    for kind in ("magnet", "musicgen"):
        a = torch.load(side[kind], map_location="cpu", weights_only=True)["best_state"]
        b = torch.load(seq[kind], map_location="cpu", weights_only=True)["best_state"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), kind
