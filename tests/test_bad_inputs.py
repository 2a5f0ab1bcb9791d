"""The bad-input suite: every CLI command against fabricated bad files and option values.

Each case runs the real console entry point (`magnet_eval.cli.main`, in-process for speed) and
asserts a non-zero exit, no Python traceback, and the offending file or option named in the
message. Validation must fire before any long work, so every case is fast (no model is built,
no audio embedded beyond a toy embedder).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from magnet_eval import cli
from magnet_eval.embedders.base import Embedder

SR = 16000


class _ToyEmbedder(Embedder):
    """A base-class embedder (so the base's checks apply) with one 64-sample analysis window."""

    name = "toy"
    sample_rate = SR
    dim = 4
    min_seconds = 64 / SR

    def _load(self, weights):
        self.model, self.weights_id = object(), "toy-v1"

    def _embed(self, wav):
        n = max(1, len(wav) // 64)
        frames = wav[: n * 64].reshape(n, 64) if len(wav) >= 64 else np.pad(wav, (0, 64 - len(wav)))[None]
        return np.stack([frames.mean(1), frames.std(1), np.abs(frames).max(1), (frames ** 2).mean(1)], 1)


def _wav(path: Path, n: int = SR, value: float | None = None, subtype: str = "PCM_16") -> Path:
    x = 0.1 * np.sin(np.arange(n) * 2 * np.pi * 440 / SR).astype(np.float32)
    if value is not None:
        x[n // 2] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    """A folder of fabricated bad (and a few good) inputs."""
    root = tmp_path_factory.mktemp("bad")
    f: dict[str, Path] = {"root": root}
    f["good_wav"] = _wav(root / "good" / "clip_a.wav")
    _wav(root / "good" / "clip_b.wav", n=SR // 2)
    f["good_dir"] = root / "good"
    f["empty_wav"] = root / "empty" / "empty.wav"
    f["empty_wav"].parent.mkdir()
    f["empty_wav"].write_bytes(b"")
    full = _wav(root / "tmp_full.wav").read_bytes()
    f["trunc_wav"] = root / "trunc" / "truncated.wav"
    f["trunc_wav"].parent.mkdir()
    f["trunc_wav"].write_bytes(full[: len(full) // 2])
    (root / "tmp_full.wav").unlink()
    f["nan_wav"] = _wav(root / "nan" / "nanclip.wav", value=float("nan"), subtype="FLOAT")
    f["short_wav"] = _wav(root / "short" / "onesample.wav", n=1)
    f["dir_as_wav"] = root / "dirwav" / "folder.wav"
    f["dir_as_wav"].mkdir(parents=True)
    # manifests
    f["nonutf8_jsonl"] = root / "latin1.jsonl"
    f["nonutf8_jsonl"].write_bytes('{"id": "a", "caption": "caf\xe9"}\n'.encode("latin-1"))
    f["labels_jsonl"] = root / "labels.jsonl"
    f["labels_jsonl"].write_text(json.dumps({"id": "a", "audio_path": str(f["good_wav"]), "labels": [1, 2]}) + "\n")
    f["nullid_jsonl"] = root / "nullid.jsonl"
    f["nullid_jsonl"].write_text(json.dumps({"id": None, "audio_path": str(f["good_wav"])}) + "\n")
    f["dup_jsonl"] = root / "dup.jsonl"
    f["dup_jsonl"].write_text("".join(json.dumps({"id": i, "audio_path": str(f["good_wav"])}) + "\n" for i in "ab"))
    f["dirwav_jsonl"] = root / "dirwav.jsonl"
    f["dirwav_jsonl"].write_text(json.dumps({"id": "a", "audio_path": str(f["dir_as_wav"])}) + "\n")
    # caption CSVs
    header = "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval\n"
    f["nonutf8_csv"] = root / "latin1.csv"
    f["nonutf8_csv"].write_bytes((header + 'abc,0,10,"[]","[]",caf\xe9,1,False,True\n').encode("latin-1"))
    f["short_csv"] = root / "shortrow.csv"
    f["short_csv"].write_text(header + "abc,0,10\n")
    f["long_csv"] = root / "longrow.csv"
    f["long_csv"].write_text(header + 'abc,0,10,"[]","[]",a caption,1,False,True,extra,fields\n')
    # statistics, results, ledgers
    np.savez(root / "full.npz", mean=np.zeros(4), cov=np.eye(4), count=np.array(3), provenance=np.array("{}"))
    data = (root / "full.npz").read_bytes()
    f["trunc_npz"] = root / "truncated.npz"
    f["trunc_npz"].write_bytes(data[: len(data) // 2])
    f["corrupt_ledger"] = root / "corrupt-ledger.sqlite"
    f["corrupt_ledger"].write_bytes(b"this is not a database, just some bytes\n" * 50)
    f["results_csv"] = root / "results.csv"
    f["results_csv"].write_text("system,metric,value\nsys,fad,1.0\n")
    f["nonutf8_results"] = root / "latin1-results.csv"
    f["nonutf8_results"].write_bytes("system,metric,value\nsyst\xe8me,fad,1.0\n".encode("latin-1"))
    f["a_file"] = root / "a-file.txt"
    f["a_file"].write_text("x\n")
    f["prompts_txt"] = root / "prompts.txt"
    f["prompts_txt"].write_text("a piano\n")
    f["latin_prompts"] = root / "latin-prompts.txt"
    f["latin_prompts"].write_bytes("caf\xe9 piano\n".encode("latin-1"))
    return f


@pytest.fixture(autouse=True)
def _toy_embedder(monkeypatch, tmp_path):
    import magnet_eval.evaluation as evaluation

    monkeypatch.setattr(evaluation, "load_embedder", lambda spec, weights=None: _ToyEmbedder().load())
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))


def run(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Run `magnet-eval ARGS` through the console entry point; (exit code, stdout + stderr)."""
    import traceback

    monkeypatch.setattr(sys, "argv", ["magnet-eval", *map(str, args)])
    try:
        cli.main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except Exception:  # noqa: BLE001  an escaped exception is what a user would see as a traceback
        out = capsys.readouterr()
        return 1, out.out + out.err + traceback.format_exc()
    out = capsys.readouterr()
    return (code if isinstance(code, int) else 1), out.out + out.err


def _cases(f: dict[str, Path]) -> list[tuple[list, str]]:
    """(command line, name that the message must contain)."""
    r, o = f["root"], f["root"] / "out"
    good_m = r / "good.jsonl"
    return [
        # data
        (["data", "musiccaps", "--csv", f["nonutf8_csv"], "--out", o / "m.jsonl"], "latin1.csv"),
        (["data", "musiccaps", "--csv", f["short_csv"], "--out", o / "m.jsonl"], "shortrow.csv:2"),
        (["data", "musiccaps", "--csv", f["long_csv"], "--out", o / "m.jsonl"], "longrow.csv:2"),
        (["data", "musiccaps", "--csv", f["empty_wav"], "--out", o / "m.jsonl"], "empty.wav"),
        (["data", "audiocaps", "--csv", f["dir_as_wav"], "--out", o / "m.jsonl"], "folder.wav"),
        (["data", "musiccaps", "--csv", f["short_csv"], "--out", f["good_dir"]], "good"),
        (["data", "check", f["nonutf8_jsonl"]], "latin1.jsonl"),
        (["data", "check", f["labels_jsonl"]], "labels"),
        (["data", "check", f["nullid_jsonl"]], "nullid.jsonl"),
        (["data", "check", f["dup_jsonl"]], "clip_a.wav"),
        (["data", "check", f["trunc_wav"].parent], "truncated.wav"),
        (["data", "check", f["nan_wav"].parent], "nanclip.wav"),
        (["data", "check", f["empty_wav"].parent], "empty.wav"),
        (["data", "check", f["dirwav_jsonl"]], "folder.wav"),
        (["data", "synth", "--out", o / "c", "--n", "0"], "--n"),
        (["data", "synth", "--out", o / "c", "--duration", "nan"], "--duration"),
        (["data", "synth", "--out", f["a_file"], "--n", "1"], "a-file.txt"),
        (["data", "synth", "--out", o / "c", "--genres", "polka-metal"], "--genres"),
        # train
        (["train", "codec", "--data", r / "missing.jsonl", "--out", o / "t"], "missing.jsonl"),
        (["train", "codec", "--data", good_m, "--out", o / "t", "--lr", "-1"], "--lr"),
        (["train", "codec", "--data", good_m, "--out", f["a_file"]], "a-file.txt"),
        (["train", "magnet", "--data", good_m, "--out", o / "t", "--codec", r / "nocodec.bin"], "nocodec.bin"),
        (["train", "musicgen", "--data", good_m, "--out", o / "t", "--codec", good_m, "--cond-dropout", "1.5"],
         "--cond-dropout"),
        (["train", "suite", "--data", good_m, "--out", o / "t", "--lm-steps", "-3"], "--lm-steps"),
        # generate: every check fires before the model is built
        (["generate", "-m", "magnet-tiny", "--prompts", "", "--out", o / "g"], "--prompts"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--temperature", "0", "--out", o / "g"], "--temperature"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--top-p", "1.5", "--out", o / "g"], "--top-p"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--top-k", "-1", "--out", o / "g"], "--top-k"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--max-cfg-coef", "nan", "--out", o / "g"],
         "--max-cfg-coef"),
        (["generate", "-m", "musicgen-tiny", "--prompts", "x", "--cfg-coef", "inf", "--out", o / "g"], "--cfg-coef"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--duration", "inf", "--out", o / "g"], "--duration"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--duration", "100000", "--out", o / "g"], "--duration"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--batch-size", "0", "--out", o / "g"], "--batch-size"),
        (["generate", "-m", "magnet-tiny", "--prompts", "x", "--out", f["a_file"]], "a-file.txt"),
        (["generate", "-m", "magnet-tiny", "--prompts", f["latin_prompts"], "--out", o / "g"], "latin-prompts.txt"),
        (["generate", "-m", "magnet-tiny", "--prompts", f["nonutf8_jsonl"], "--out", o / "g"], "latin1.jsonl"),
        # evaluate
        (["evaluate", "-g", f["good_dir"], "-r", f["good_dir"], "--ci", "1.5", "--no-ledger"], "--ci"),
        (["evaluate", "-g", f["good_dir"], "-r", f["good_dir"], "--ci", "0", "--no-ledger"], "--ci"),
        (["evaluate", "-g", f["good_dir"], "-r", f["good_dir"], "--bootstrap", "-5", "--no-ledger"], "--bootstrap"),
        (["evaluate", "-g", f["good_dir"], "-r", f["good_dir"], "--metrics", " , ", "--no-ledger"], "--metrics"),
        (["evaluate", "-g", r / "nogen", "-r", f["good_dir"], "--no-ledger"], "nogen"),
        (["evaluate", "-g", f["good_dir"], "-r", f["good_dir"], "--out", f["good_dir"], "--no-ledger"], "good"),
        (["evaluate", "-g", f["good_dir"], "-r", f["good_dir"], "--out", o / "r.parquet", "--ledger",
          f["corrupt_ledger"]], "corrupt-ledger.sqlite"),
        (["evaluate", "-g", f["good_dir"], "-r", f["trunc_npz"], "--out", o / "r.parquet", "--no-ledger"],
         "truncated.npz"),
        (["evaluate", "-g", f["trunc_wav"].parent, "-r", f["good_dir"], "--out", o / "r.parquet", "--no-ledger",
          "--bootstrap", "0"], "truncated.wav"),
        (["evaluate", "-g", f["nan_wav"].parent, "-r", f["good_dir"], "--out", o / "r.parquet", "--no-ledger",
          "--bootstrap", "0"], "nanclip.wav"),
        (["evaluate", "-g", f["short_wav"].parent, "-r", f["good_dir"], "--out", o / "r.parquet", "--no-ledger",
          "--bootstrap", "0"], "onesample.wav"),
        (["evaluate", "-g", f["dirwav_jsonl"], "-r", f["good_dir"], "--out", o / "r.parquet", "--no-ledger",
          "--bootstrap", "0"], "folder.wav"),
        (["evaluate", "-g", f["good_dir"], "-r", f["dup_jsonl"], "--out", o / "r.parquet", "--no-ledger"], "dup.jsonl"),
        # stats
        (["stats", "build", "-e", "toy", "--audio", f["trunc_wav"].parent, "--out", o / "s.npz"], "truncated.wav"),
        (["stats", "build", "-e", "toy", "--audio", f["good_dir"], "--out", f["good_dir"]], "good"),
        (["stats", "build", "-e", "toy", "--audio", f["good_dir"], "--out", o / "s.npz", "--max-frames", "0"],
         "--max-frames"),
        (["stats", "show", f["trunc_npz"]], "truncated.npz"),
        (["stats", "show", f["empty_wav"]], "empty.wav"),
        # bench
        (["bench", "latency", "-m", "magnet-tiny", "-b", "0", "--out", o / "b"], "--batch-sizes"),
        (["bench", "latency", "-m", "magnet-tiny", "-b", "1", "-d", "-1", "--out", o / "b"], "--duration"),
        (["bench", "latency", "-m", "magnet-tiny", "-b", "1", "-d", "1", "--out", f["a_file"]], "a-file.txt"),
        (["bench", "latency", "-m", "magnet-tiny", "-b", "1", "-d", "1", "--param", "temperature=-2",
          "--out", o / "b"], "temperature"),
        # report
        (["report", r / "nothere.parquet", "--out", o / "rep"], "nothere.parquet"),
        (["report", f["nonutf8_results"], "--out", o / "rep"], "latin1-results.csv"),
        (["report", f["results_csv"], "--latency", f["nonutf8_csv"], "--out", o / "rep"], "latin1.csv"),
        (["report", f["results_csv"], "--out", f["a_file"]], "a-file.txt"),
        # compare
        (["compare", f["results_csv"], f["results_csv"], "--ci", "2", "--no-ledger"], "--ci"),
        (["compare", f["results_csv"], f["results_csv"], "--bootstrap", "-1", "--no-ledger"], "--bootstrap"),
        (["compare", f["results_csv"], f["results_csv"], "--ledger", f["corrupt_ledger"]], "corrupt-ledger.sqlite"),
        (["compare", f["results_csv"], f["results_csv"], "--out", f["good_dir"], "--no-ledger"], "good"),
        (["compare", f["results_csv"], r / "absent.parquet", "--no-ledger"], "absent.parquet"),
        # reproduce
        (["reproduce", "--preset", "bogus", "--out", o / "rp"], "--preset"),
        (["reproduce", "--preset", "tiny", "--out", f["a_file"]], "a-file.txt"),
        (["reproduce", "--preset", "paper-musiccaps", "--out", o / "rp", "--limit", "0"], "--limit"),
    ]


def test_every_command_refuses_bad_input_by_name(bad, monkeypatch, capsys):
    """Non-zero exit, no traceback, the offending file/option named: for every case."""
    from magnet_eval.manifest import Manifest, ManifestEntry

    Manifest([ManifestEntry(id="a", caption="x", audio_path=str(bad["good_wav"]), labels={"split": "train"})]
             ).write(bad["root"] / "good.jsonl")
    failures = []
    for args, name in _cases(bad):
        code, text = run(monkeypatch, capsys, *args)
        flat = " ".join(text.split())
        if code == 0 or "Traceback" in text or name not in flat:
            failures.append(f"magnet-eval {' '.join(map(str, args))}\n  -> exit {code}: {text.strip()[:400]}")
    assert not failures, f"{len(failures)} cases failed:\n" + "\n".join(failures)


def test_user_errors_exit_2_and_usage_errors_are_click_s(bad, monkeypatch, capsys):
    code, text = run(monkeypatch, capsys, "evaluate", "-g", bad["good_dir"], "--ci", "7", "--no-ledger")
    assert code == 2 and "error:" in text and "--ci must be in (0, 1)" in text
    code, text = run(monkeypatch, capsys, "data", "synth", "--out", bad["root"] / "x", "--n", "abc")
    assert code == 2 and "Traceback" not in text


def test_corrupt_ledger_is_never_appended_to(bad, tmp_path):
    import pandas as pd

    from magnet_eval.errors import LedgerError
    from magnet_eval.ledger import Ledger

    before = bad["corrupt_ledger"].read_bytes()
    with pytest.raises(LedgerError, match="corrupt-ledger.sqlite"):
        Ledger(bad["corrupt_ledger"]).append(pd.DataFrame({"system": ["s"], "metric": ["fad"], "value": [1.0]}),
                                             kind="evaluate")
    assert bad["corrupt_ledger"].read_bytes() == before
    # an SQLite file that is another database (no results table) is refused too
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE something (x INTEGER)")
    with pytest.raises(LedgerError, match="other.sqlite"):
        Ledger(other)
    # a sound ledger still works
    led = Ledger(tmp_path / "ok.sqlite")
    assert led.append(pd.DataFrame({"system": ["s"], "metric": ["fad"], "value": [1.0]}), kind="evaluate") == 1
    assert len(led.read()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_read_only_ledger_is_refused_before_work(tmp_path):
    import pandas as pd

    from magnet_eval.errors import LedgerError
    from magnet_eval.ledger import Ledger

    led = Ledger(tmp_path / "l.sqlite")
    led.append(pd.DataFrame({"system": ["s"], "metric": ["fad"], "value": [1.0]}), kind="evaluate")
    os.chmod(tmp_path / "l.sqlite", 0o444)
    try:
        with pytest.raises(LedgerError, match="not writable"):
            Ledger(tmp_path / "l.sqlite").check_appendable()
        assert len(Ledger(tmp_path / "l.sqlite").read()) == 1  # still readable
    finally:
        os.chmod(tmp_path / "l.sqlite", 0o644)


def test_registry_declares_minimum_durations_and_the_base_enforces_them():
    """A 1-sample clip never reaches an embedder; each minimum is one analysis window of its front end."""
    from magnet_eval.embedders.registry import MIN_SECONDS, get_embedder
    from magnet_eval.errors import AudioError

    for name in ("vggish", "pann", "clap", "encodec", "musicnn", "aisfx"):
        emb = get_embedder(name)  # not loaded: no weights needed to know the minimum
        assert emb.min_seconds == pytest.approx(max(MIN_SECONDS[name], type(emb).min_seconds)) and emb.min_seconds > 0
    assert get_embedder("vggish").min_seconds == pytest.approx(0.025)
    toy = _ToyEmbedder().load()
    assert toy.embed(np.ones(64, dtype=np.float32) * 0.1, SR).shape == (1, 4)
    with pytest.raises(AudioError, match="1 samples .* shorter than the toy embedder's minimum"):
        toy.embed(np.ones(1, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="63 samples"):
        toy.embed(np.ones(63, dtype=np.float32), SR)


def test_kl_short_clip_error_names_the_file(tmp_path):
    from magnet_eval.errors import AudioError
    from magnet_eval.evaluation import evaluate
    from magnet_eval.manifest import Manifest, ManifestEntry

    from test_evaluate_fixtures import BandClassifier

    gen = Manifest([ManifestEntry(id="a", audio_path=str(_wav(tmp_path / "g" / "tiny_clip.wav", n=800)))])
    ref = Manifest([ManifestEntry(id="a", audio_path=str(_wav(tmp_path / "r" / "ref.wav")))])
    with pytest.raises(AudioError, match=r"tiny_clip.wav \(id a\): 0.05 s of audio is shorter than the KL protocol's minimum"):
        evaluate(gen, ref, ["kl"], "toy", "s", kl_classifier=BandClassifier(), n_bootstrap=0)


def test_validation_helpers_ranges(tmp_path):
    from magnet_eval.errors import InvalidOptionError, OutputPathError
    from magnet_eval import validate as v

    assert v.probability("--top-p", 1.0) == 1.0 and v.probability("--ci", 0.5, high_open=True) == 0.5
    for bad_value in (0.0, 1.0, float("nan"), -0.1, "x"):
        with pytest.raises(InvalidOptionError, match="--ci"):
            v.probability("--ci", bad_value, high_open=True)
    with pytest.raises(InvalidOptionError, match="--top-k must be an integer"):
        v.non_negative_int("--top-k", 2.5)
    assert v.max_generation_seconds() == pytest.approx(2 * np.pi * 10000 / 50)
    v.decoding_options({"temperature": 1.0, "top_p": 0.0, "top_k": 0, "cfg_coef": -1.0, "decoding_steps": "20,10"})
    with pytest.raises(InvalidOptionError, match="--decoding-steps"):
        v.decoding_options({"decoding_steps": "20,0"})
    # output paths: an existing folder where a file is expected, a file in the way of a folder
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="is an existing folder"):
        v.writable_output(tmp_path, "--out")
    with pytest.raises(OutputPathError, match="f is a file, not a folder"):
        v.writable_output(tmp_path / "f" / "sub" / "out.parquet", "--out")
    assert v.writable_output(tmp_path / "new" / "deeper" / "out.parquet") == tmp_path / "new" / "deeper" / "out.parquet"
    assert not (tmp_path / "new").exists()  # nothing is created by the check
