"""`generate`, `evaluate` and `stats build` under `torchrun --nproc_per_node 2` (gloo, CPU) give what one
process gives: the same FAD, KAD and per-clip values (1e-9 relative), statistics, ledger rows and audio;
and the logs of a killed sharded generation are taken in by the rerun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from magnet_eval.audio import save_audio
from magnet_eval.manifest import Manifest, ManifestEntry

from helpers import cache_with_wheel, real_wheel

VENV_BIN = Path(sys.executable).parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A toolkit cache with the musicnn wheel, 6 reference and 5 generated clips of 1-2 s, and 5 prompts."""
    root = tmp_path_factory.mktemp("sharded")
    cache = cache_with_wheel(root / "tk", real_wheel("musicnn-0.1.0-*.whl"))
    rng = np.random.default_rng(0)
    sets = {}
    for side, n, shift in (("ref", 6, 0), ("gen", 5, 150)):
        entries = []
        for i in range(n):
            sr, secs = 16000, 1.0 + 0.2 * i
            t = np.arange(int(sr * secs)) / sr
            wav = 0.3 * np.sin(2 * np.pi * (220 + shift + 40 * i) * t) + 0.05 * rng.normal(size=t.size)
            path = save_audio(root / side / f"{side}{i}.wav", wav.astype(np.float32), sr)
            entries.append(ManifestEntry(id=f"{side}{i}", caption=f"clip {i}", audio_path=str(path)))
        sets[side] = Manifest(entries).write(root / side / "manifest.jsonl")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(["lofi piano", "fast drums", "slow strings", "jazz trio", "ambient pad"]) + "\n")
    return {"root": root, "cache": cache, "prompts": prompts, **sets}


def _env(setup) -> dict:
    return dict(os.environ, MAGNET_EVAL_CACHE=str(setup["cache"]), MAGNET_EVAL_NO_PROGRESS="1", HF_HUB_OFFLINE="1",
                OMP_NUM_THREADS="1")


def _one_process(setup, monkeypatch, args: list[str]) -> None:
    from magnet_eval.cli import app

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(setup["cache"]))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output


def _torchrun(setup, args: list[str]) -> subprocess.CompletedProcess:
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nnodes", "1", "--nproc_per_node", "2", "--no-python",
           str(VENV_BIN / "magnet-eval"), *args]
    proc = subprocess.run(cmd, env=_env(setup), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _cached_arrays(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.npy"))


def test_stats_build_sharded_equals_one_process(setup, monkeypatch):
    root = setup["root"]
    common = ["stats", "build", "--embedder", "musicnn", "--audio", str(setup["ref"]), "--max-frames", "5"]
    _one_process(setup, monkeypatch, [*common, "--out", str(root / "one.npz"), "--cache-dir", str(root / "c1")])
    proc = _torchrun(setup, [*common, "--out", str(root / "two.npz"), "--cache-dir", str(root / "c2"),
                             "--batch-size", "2"])
    text = " ".join((proc.stderr + proc.stdout).split())
    assert "rank 0 of 2: 3 of 6 clips" in text and "rank 1 of 2: 3 of 6 clips" in text  # each embedded its shard
    a, b = np.load(root / "one.npz"), np.load(root / "two.npz")
    for key in ("mean", "cov", "kad_bandwidth", "kad_reference_term"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-9, atol=0)
    np.testing.assert_array_equal(b["frames"], a["frames"])  # the same fixed-seed frame subsample
    assert int(a["count"]) == int(b["count"]) == 6  # one 3 s patch per clip
    assert json.loads(str(b["provenance"]))["n_clips"] == 6
    assert _cached_arrays(root / "c2") == _cached_arrays(root / "c1") == 6  # each clip embedded once, by one rank


def test_evaluate_sharded_equals_one_process(setup, monkeypatch):
    root = setup["root"]
    common = ["evaluate", "--generated", str(setup["gen"]), "--reference", str(setup["ref"]), "--metrics", "fad,kad",
              "--embedder", "musicnn", "--bootstrap", "20", "--system", "sys"]
    _one_process(setup, monkeypatch, [*common, "--out", str(root / "one.parquet"), "--cache-dir", str(root / "e1"),
                                      "--ledger", str(root / "one.sqlite")])
    # as a sharded run killed after the reference clips were embedded: the rerun must not embed them again
    _one_process(setup, monkeypatch, ["stats", "build", "--embedder", "musicnn", "--audio", str(setup["ref"]),
                                      "--out", str(root / "partial.npz"), "--cache-dir", str(root / "e2")])
    done = {p: p.stat().st_mtime_ns for p in (root / "e2").rglob("*.npy")}
    assert len(done) == 6
    _torchrun(setup, [*common, "--out", str(root / "two.parquet"), "--cache-dir", str(root / "e2"),
                      "--ledger", str(root / "two.sqlite")])
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    one, two = pd.read_parquet(root / "one.parquet"), pd.read_parquet(root / "two.parquet")
    assert list(one.metric) == list(two.metric) and {"fad", "kad"} <= set(one.metric)
    assert (two.status == "ok").all() and (two.n_generated == 5).all() and (two.n_reference == 6).all()
    for col in ("value", "ci_low", "ci_high"):
        np.testing.assert_allclose(two[col].to_numpy(), one[col].to_numpy(), rtol=1e-9, atol=0)
    p1 = pd.read_parquet(root / "one.per_sample.parquet")
    p2 = pd.read_parquet(root / "two.per_sample.parquet")
    assert list(p1.id) == list(p2.id) and len(p1) >= 10  # per-clip tables in manifest order
    np.testing.assert_allclose(p2.value.to_numpy(), p1.value.to_numpy(), rtol=1e-9, atol=1e-12)
    from magnet_eval.ledger import Ledger

    assert len(Ledger(root / "two.sqlite").read()) == len(Ledger(root / "one.sqlite").read()) == len(one)
    assert _cached_arrays(root / "e2") == _cached_arrays(root / "e1") == 11


def test_generate_sharded_gives_the_same_audio_and_one_log(setup, monkeypatch):
    root = setup["root"]
    common = ["generate", "--model", "magnet-tiny", "--prompts", str(setup["prompts"]), "--duration", "0.5",
              "--batch-size", "2", "--seed", "3", "--text-encoder", "random"]
    _one_process(setup, monkeypatch, [*common, "--out", str(root / "g1")])
    _torchrun(setup, [*common, "--out", str(root / "g2")])
    m1 = [json.loads(x) for x in (root / "g1" / "manifest.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (root / "g2" / "manifest.jsonl").read_text().splitlines()]
    assert [e["id"] for e in m1] == [e["id"] for e in m2] and len(m2) == 5
    for e in m1:
        a, _ = sf.read(root / "g1" / f"{e['id']}.wav", dtype="int16")
        b, _ = sf.read(root / "g2" / f"{e['id']}.wav", dtype="int16")
        np.testing.assert_array_equal(a, b)
    log = [json.loads(x) for x in (root / "g2" / "log.jsonl").read_text().splitlines()]
    assert [r["id"] for r in log] == [e["id"] for e in m1]  # one log, in manifest order
    assert not list((root / "g2").glob("log.rank*.jsonl"))


def _rank_pid(out: Path, rank: int) -> int | None:
    """The pid of the torchrun worker of `rank` writing to `out` (found through /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmd and f"RANK={rank}".encode() in env and any(c.endswith(b"magnet-eval") for c in cmd):
            return int(proc.name)
    return None


def test_a_killed_rank_resumes_without_redoing_finished_clips(setup, tmp_path):
    """Rank 1 is killed (SIGKILL) after its first clip; the same torchrun command then completes the run, the
    clips finished before the kill are not generated again, and the log holds every clip once, in order."""
    import signal
    import time

    out = tmp_path / "g"
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"prompt number {i}" for i in range(8)) + "\n")
    args = ["generate", "--model", "magnet-tiny", "--prompts", str(prompts), "--duration", "0.5", "--batch-size", "1",
            "--seed", "3", "--text-encoder", "random", "--out", str(out)]
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nnodes", "1", "--nproc_per_node", "2", "--no-python",
           str(VENV_BIN / "magnet-eval"), *args]
    proc = subprocess.Popen(cmd, env=_env(setup), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rank_log = out / "log.rank1.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if rank_log.is_file() and rank_log.read_text().count("\n") >= 1:
            pid = _rank_pid(out, 1)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    assert proc.wait(timeout=120) != 0  # torchrun saw its worker die
    finished = {}
    for log in out.glob("log.rank*.jsonl"):
        for line in log.read_text().splitlines():
            try:
                finished[json.loads(line)["id"]] = (out / f"{json.loads(line)['id']}.wav").stat().st_mtime_ns
            except (ValueError, OSError):
                pass  # a line cut by the kill
    assert 1 <= len(finished) < 8
    again = _torchrun(setup, args)
    assert "resuming" in again.stderr + again.stdout
    log = [json.loads(x)["id"] for x in (out / "log.jsonl").read_text().splitlines()]
    manifest = [json.loads(x)["id"] for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert log == manifest and len(log) == 8
    assert all((out / f"{i}.wav").stat().st_mtime_ns == t for i, t in finished.items())  # not generated again
    assert not list(out.glob("log.rank*.jsonl"))


def test_generate_in_parts_then_whole_gives_the_same_audio_and_log(setup, monkeypatch):
    """Two processes outside a process group split a generation (`part`, as the tiny preset's training workers
    do); the whole run that follows generates what is missing, merges their logs and writes the manifest."""
    from magnet_eval.pipeline import generate, read_prompts

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(setup["cache"]))
    root = setup["root"]
    ids = [e.id for e in read_prompts(str(setup["prompts"]))]
    opts = dict(duration=0.5, batch_size=2, seed=3, text_encoder="random")
    generate("magnet-tiny", str(setup["prompts"]), root / "p1", **opts)
    generate("magnet-tiny", str(setup["prompts"]), root / "p2", part=(0, ids[:2]), **opts)
    generate("magnet-tiny", str(setup["prompts"]), root / "p2", part=(1, ids[3:]), batch_size=1,
             **{k: v for k, v in opts.items() if k != "batch_size"})
    assert not (root / "p2" / "manifest.jsonl").exists()
    assert sorted(p.stem for p in (root / "p2").glob("*.wav")) == sorted(ids[:2] + ids[3:])
    generate("magnet-tiny", str(setup["prompts"]), root / "p2", **opts)  # the middle clip, then the manifest
    for i in ids:
        a, _ = sf.read(root / "p1" / f"{i}.wav", dtype="int16")
        b, _ = sf.read(root / "p2" / f"{i}.wav", dtype="int16")
        np.testing.assert_array_equal(a, b)
    log = [json.loads(x) for x in (root / "p2" / "log.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in log) == sorted(ids) and len(log) == len(ids)
    assert not list((root / "p2").glob("log.rank*.jsonl"))
    with pytest.raises(Exception, match="cannot --overwrite"):
        generate("magnet-tiny", str(setup["prompts"]), root / "p2", part=(0, ids), overwrite=True, **opts)


def test_merged_log_is_in_manifest_order_when_a_rank_was_killed_ahead(tmp_path):
    """A rank killed ahead of the others leaves a later clip (p001) merged before an earlier one (p000): the
    resumed run's merge rewrites the whole log in manifest order, a clip generated again keeping its newest
    record, and a line cut by the kill is dropped."""
    from magnet_eval.pipeline import merge_rank_logs

    def rec(clip_id: str, t: float) -> str:
        return json.dumps({"id": clip_id, "batch_time_s": t}) + "\n"

    (tmp_path / "log.jsonl").write_text(rec("p001", 1.0) + rec("p003", 1.0) + '{"id": "p00')
    (tmp_path / "log.rank0.jsonl").write_text(rec("p000", 2.0) + rec("p002", 2.0))
    (tmp_path / "log.rank1.jsonl").write_text(rec("p003", 3.0) + rec("extra", 3.0))
    merge_rank_logs(tmp_path, ["p000", "p001", "p002", "p003"])
    got = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["id"], r["batch_time_s"]) for r in got] == [
        ("p000", 2.0), ("p001", 1.0), ("p002", 2.0), ("p003", 3.0), ("extra", 3.0)]
    assert not list(tmp_path.glob("log.rank*.jsonl"))
