"""compare: tolerance parsing, verdicts, paired bootstrap, exit codes (CLI), the results ledger."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from magnet_eval.cli import app
from magnet_eval.compare import (Tolerance, combined_interval, compare_results, direction, exit_code,
                                 find_tolerance, paired_bootstrap_diff, parse_tolerance)
from magnet_eval.errors import MagnetEvalError
from magnet_eval.ledger import Ledger, checkpoint_hash, record_results

N = 40


REF = {"kind": "audio", "sha1": "a" * 40, "n_clips": N}
MODELS = {"musicnn": {"model": "musicnn", "weights_id": "w-musicnn-1", "sample_rate": 16000},
          "clap": {"model": "clap", "weights_id": "w-clap-1", "sample_rate": 48000},
          "essentia": {"model": "essentia", "weights_id": ""}}
PROTOCOL = {"normalize": True, "headroom_db": 14.0}


def provenance(embedder: str, *, reference: dict | None = None, model: dict | None = None,
               protocol: dict | None = None) -> str:
    """The details JSON `evaluate` writes (provenance.stamp), with parts overridable."""
    import json

    rec = {"model": {**MODELS[embedder], **(model or {})}, "protocol": {**PROTOCOL, **(protocol or {})},
           "reference": None if embedder == "clap" else {**REF, **(reference or {})}}
    return json.dumps({"provenance": rec})


def make_results(folder: Path, name: str, *, fad: float = 4.0, kl_shift: float = 0.0, clap_shift: float = 0.0,
                 seed: int = 0, fmt: str = "parquet", clap_status: str = "ok", ids: list[str] | None = None,
                 reference: dict | None = None, model: dict | None = None, protocol: dict | None = None,
                 recorded: bool = True) -> Path:
    """A results file + per-sample file in the agreed schema; KL/CLAP per clip from a fixed draw + shift.

    ids: the prompt ids (default p00..p39); reference / model / protocol: overrides of the recorded
    provenance; recorded=False writes a file as made before provenance was recorded.
    """
    ids = ids if ids is not None else [f"p{i:02d}" for i in range(N)]
    n = len(ids)
    rng = np.random.default_rng(seed)
    kl = rng.gamma(2.0, 0.5, n) + kl_shift
    clap = rng.normal(0.3, 0.05, n) + clap_shift
    rows = [
        dict(system=name, metric="fad", value=fad, ci_low=fad - 0.4, ci_high=fad + 0.5),
        dict(system=name, metric="kl_musicnn", value=kl.mean(), ci_low=math.nan, ci_high=math.nan),
        dict(system=name, metric="clap", value=clap.mean() if clap_status == "ok" else math.nan,
             ci_low=math.nan, ci_high=math.nan),
        dict(system=name, metric="mirdd/tempo", value=2.0, ci_low=math.nan, ci_high=math.nan),
    ]
    res = pd.DataFrame(rows)
    res["n_generated"] = n
    res["n_reference"] = N
    res["embedder"] = ["musicnn", "musicnn", "clap", "essentia"]
    res["reference"] = "ref"
    res["status"] = ["ok", "ok", clap_status, "ok"]
    res["details"] = [provenance(e, reference=reference, model=model, protocol=protocol) if recorded else "{}"
                      for e in res["embedder"]]
    per = pd.DataFrame([dict(system=name, id=i, metric="kl_musicnn", value=v) for i, v in zip(ids, kl)]
                       + [dict(system=name, id=i, metric="clap", value=v) for i, v in zip(ids, clap)]
                       + [dict(system=name, id=i, metric="fad_contribution", value=0.01) for i in ids])
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.{fmt}"
    if fmt == "parquet":
        res.to_parquet(out, index=False)
        per.to_parquet(folder / f"{name}.per_sample.parquet", index=False)
    else:
        res.to_csv(out, index=False)
        per.to_csv(folder / f"{name}.per_sample.csv", index=False)
    return out


def run_cli(*args: str):
    return CliRunner().invoke(app, ["compare", *args])


# ----------------------------------------------------------------------------- tolerances


def test_parse_tolerance():
    t = parse_tolerance("fad:+0.1")
    assert t == Tolerance("fad", 0.1, False) and t.allowed(4.0) == 0.1
    r = parse_tolerance("kl:+5%")
    assert r.relative and r.allowed(2.0) == pytest.approx(0.1)
    assert parse_tolerance("clap:-0.01").amount == 0.01  # higher-is-better: the drop allowed
    assert parse_tolerance("fad:0.2").amount == 0.2
    assert parse_tolerance("mirdd*:+10%").pattern == "mirdd*"
    for bad in ("fad", "fad:+x", "fad:-0.1", "clap:+0.1", ":0.1", "fad:+0.1%%"):
        with pytest.raises(MagnetEvalError):
            parse_tolerance(bad)
    tols = [parse_tolerance("mirdd*:+10%"), parse_tolerance("mirdd/tempo:+1")]
    assert find_tolerance("mirdd/tempo", tols).amount == 1  # exact name beats the glob
    assert find_tolerance("mirdd/key", tols).relative
    assert find_tolerance("fad", tols) is None


def test_directions():
    assert direction("fad") == direction("kl_musicnn_rev") == direction("mirdd/tempo") == direction("kad") == -1
    assert direction("clap") == direction("chroma_cosine") == 1
    assert direction("something_else") == 0


def test_intervals():
    lo, hi = combined_interval(4.0, 3.6, 4.5, 5.0, 4.6, 5.5)
    assert lo == pytest.approx(1.0 - math.hypot(0.4, 0.5)) and hi == pytest.approx(1.0 + math.hypot(0.5, 0.4))
    assert all(math.isnan(x) for x in combined_interval(4.0, math.nan, 4.5, 5.0, 4.6, 5.5))
    base = {str(i): float(i) for i in range(30)}
    lo, hi, n = paired_bootstrap_diff(base, {k: v + 0.5 for k, v in base.items()})
    assert n == 30 and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)  # a constant shift is certain
    lo, hi, _ = paired_bootstrap_diff(base, {k: v + (1 if int(k) % 2 else -1) for k, v in base.items()})
    assert lo < 0 < hi


# ----------------------------------------------------------------------------- verdicts and exit codes


def test_identical_results_exit_0(tmp_path):
    a = make_results(tmp_path / "a", "sys")
    b = make_results(tmp_path / "b", "sys", fmt="csv")  # same numbers through CSV: float round-off is no change
    frame = compare_results(a, b)
    assert set(frame.verdict) == {"same"} and exit_code(frame) == 0
    res = run_cli(str(a), str(b), "--ledger", str(tmp_path / "l.sqlite"))
    assert res.exit_code == 0, res.output


def test_fabricated_regression_exit_1(tmp_path):
    a = make_results(tmp_path, "base")
    b = make_results(tmp_path, "new", fad=4.3)
    frame = compare_results(a, b, ["fad:+0.1"]).set_index("metric")
    assert frame.loc["fad", "diff"] == pytest.approx(0.3) and frame.loc["fad", "regressed"]
    assert frame.loc["fad", "ci_method"].startswith("from the two intervals")
    assert frame.loc["kl_musicnn", "verdict"] == "same"
    res = run_cli(str(a), str(b), "--metric", "fad:+0.1", "--ledger", str(tmp_path / "l.sqlite"))
    assert res.exit_code == 1, res.output
    assert "REGRESSION" in res.output
    # inside the tolerance: absolute, then relative (0.3 <= 10% of 4.0)
    assert run_cli(str(a), str(b), "-m", "fad:+0.5", "--no-ledger").exit_code == 0
    assert run_cli(str(a), str(b), "-m", "fad:+10%", "--no-ledger").exit_code == 0
    assert run_cli(str(a), str(b), "-m", "fad:+5%", "--no-ledger").exit_code == 1
    # without a tolerance the FAD change is inside the combined interval: not significant, no failure
    assert run_cli(str(a), str(b), "--no-ledger").exit_code == 0


def test_paired_bootstrap_catches_small_consistent_shift(tmp_path):
    a = make_results(tmp_path, "base")
    b = make_results(tmp_path, "new", kl_shift=0.05)  # every clip 0.05 worse: tiny but certain
    frame = compare_results(a, b).set_index("metric")
    row = frame.loc["kl_musicnn"]
    assert row.ci_method.startswith("paired bootstrap over 40 ids")
    assert row.ci_low == pytest.approx(0.05) and row.ci_high == pytest.approx(0.05)
    assert row.verdict == "worse" and row.regressed
    assert exit_code(compare_results(a, b)) == 1
    assert exit_code(compare_results(a, b, ["kl_musicnn:+0.1"])) == 0
    # --only-listed: an unlisted metric never fails the gate
    assert exit_code(compare_results(a, b, ["fad:+0.1"], only_listed=True)) == 0


def test_higher_is_better_and_unavailable_metrics(tmp_path):
    a = make_results(tmp_path, "base")
    better = make_results(tmp_path, "better", clap_shift=0.02)
    worse = make_results(tmp_path, "worse", clap_shift=-0.02)
    assert compare_results(a, better).set_index("metric").loc["clap", "verdict"] == "better"
    assert exit_code(compare_results(a, better)) == 0
    assert compare_results(a, worse).set_index("metric").loc["clap", "verdict"] == "worse"
    assert run_cli(str(a), str(worse), "--no-ledger").exit_code == 1
    assert run_cli(str(a), str(worse), "-m", "clap:-0.05", "--no-ledger").exit_code == 0
    lost = make_results(tmp_path, "lost", clap_status="weights not available")
    frame = compare_results(a, lost).set_index("metric")
    assert frame.loc["clap", "verdict"] == "not comparable"
    assert "weights not available" in frame.loc["clap", "note"]
    assert exit_code(frame) == 0
    assert exit_code(compare_results(a, lost, strict=True)) == 1


def test_metric_with_two_embedders_is_compared_per_embedder(tmp_path):
    frames = []
    for name, vgg in (("base", 5.0), ("new", 6.0)):
        res = pd.read_parquet(make_results(tmp_path / name, name))
        extra = res[res.metric == "fad"].assign(embedder="vggish", value=vgg, ci_low=vgg - 0.1, ci_high=vgg + 0.1)
        frames.append(pd.concat([res, extra], ignore_index=True))
    pers = [pd.read_parquet(tmp_path / name / f"{name}.per_sample.parquet") for name in ("base", "new")]
    frame = compare_results(frames[0], frames[1], ["fad:+0.5"], baseline_per_sample=pers[0],
                            new_per_sample=pers[1]).set_index("metric")
    assert frame.loc["fad (musicnn)", "verdict"] == "same" and not frame.loc["fad (musicnn)", "regressed"]
    assert frame.loc["fad (vggish)", "diff"] == pytest.approx(1.0)
    assert frame.loc["fad (vggish)", "verdict"] == "worse" and frame.loc["fad (vggish)", "regressed"]
    assert frame.loc["fad (vggish)", "tolerance"] == "fad:+0.5"


def test_bad_inputs_exit_2(tmp_path):
    a = make_results(tmp_path, "base")
    res = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "missing.parquet"), "--no-ledger"])
    assert res.exit_code != 0
    with pytest.raises(MagnetEvalError, match="does not exist"):
        compare_results(a, tmp_path / "missing.parquet")
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    with pytest.raises(MagnetEvalError, match="not a results table"):
        compare_results(a, junk)


# ----------------------------------------------------------------------------- ledger


def test_ledger_history(tmp_path):
    led = tmp_path / "ledger.sqlite"
    a = make_results(tmp_path, "base")
    b = make_results(tmp_path, "new", fad=4.3)
    assert run_cli(str(a), str(b), "-m", "fad:+0.1", "--ledger", str(led), "--name-new", "ckpt-v2").exit_code == 1
    assert run_cli(str(a), str(a), "--ledger", str(led), "--name-new", "ckpt-v1").exit_code == 0
    hist = Ledger(led).history("ckpt-v2")
    assert set(hist.kind) == {"compare", "compare-diff"}
    fad = hist[(hist.kind == "compare") & (hist.metric == "fad")]
    assert fad.value.tolist() == [pytest.approx(4.3)]
    diff = hist[(hist.kind == "compare-diff") & (hist.metric == "fad")]
    assert diff.value.tolist() == [pytest.approx(0.3)] and "regression" in diff.status.iloc[0]
    assert (hist.baseline == "base").all()
    res = run_cli("--history", "ckpt-v2", "--ledger", str(led))
    assert res.exit_code == 0 and "ckpt-v2" in res.output and "fad" in res.output
    res = run_cli("--history", "nobody", "--ledger", str(led))
    assert res.exit_code != 0


def test_record_results_hash(tmp_path):
    led = Ledger(tmp_path / "l.sqlite")
    ckpt = tmp_path / "model.th"
    ckpt.write_bytes(b"weights v1")
    frame = pd.read_parquet(make_results(tmp_path, "sys"))
    assert record_results(frame, checkpoint_path=ckpt, ledger=led) == len(frame)
    h1 = checkpoint_hash(ckpt)
    ckpt.write_bytes(b"weights v2")
    record_results(frame, checkpoint_path=ckpt, ledger=led)
    h2 = checkpoint_hash(ckpt)
    assert h1 and h2 and h1 != h2
    hist = led.history(str(ckpt))
    assert list(dict.fromkeys(hist.checkpoint_hash)) == [h1, h2]
    assert len(led.history(h1[:8])) == len(frame)  # a hash prefix finds the run
    assert checkpoint_hash(tmp_path / "not-there") == ""


def test_compare_checkpoints_generates_and_evaluates(tmp_path, monkeypatch):
    """Two 'checkpoints' (fake generators) on the same prompts and seeds, through the real evaluate."""
    from magnet_eval import compare as cmp
    from magnet_eval.audio import save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.models.generator import derive_seed

    sr = 16000

    class ToneGen:
        def __init__(self, freq):
            self.freq = freq
            self.seeds = []

        def generate(self, prompts, duration, seeds, batch_size):
            self.seeds += list(seeds)
            t = np.arange(int(duration * sr)) / sr
            wav = np.stack([0.3 * np.sin(2 * np.pi * self.freq * (1 + 0.1 * (int(p.split()[-1]) % 4)) * t)
                            + 0.01 * np.random.default_rng(s).standard_normal(t.size) for p, s in zip(prompts, seeds)])
            return None, wav.astype(np.float32), sr

    class BandEmbedder:
        """Log energies in 16 bands per 0.1 s frame: enough to tell two tones apart."""
        name, sample_rate, dim, version = "bands", sr, 16, 1
        weights_id = "test-bands"
        clip_handling = "0.1 s frames"

        def embed(self, audio, sr_in):
            x = np.asarray(audio, np.float32)
            frames = x[: len(x) // 1600 * 1600].reshape(-1, 1600)
            spec = np.abs(np.fft.rfft(frames, axis=1))[:, :800].reshape(len(frames), 16, 50).sum(-1)
            return np.log(spec + 1e-3).astype(np.float32)

    gens = {"old.th": ToneGen(440.0), "new.th": ToneGen(1200.0)}
    ref = Manifest([ManifestEntry(f"r{i}", f"tone {i}", save_audio(tmp_path / "ref" / f"r{i}.wav",
                    0.3 * np.sin(2 * np.pi * 440 * (1 + 0.1 * (i % 4)) * np.arange(sr) / sr), sr).as_posix())
                    for i in range(8)])
    ref.write(tmp_path / "ref" / "manifest.jsonl")
    prompts = Manifest([ManifestEntry(f"r{i}", f"tone {i}") for i in range(8)])
    prompts.write(tmp_path / "prompts.jsonl")
    paths = {}
    for spec in gens:
        paths[spec] = cmp.evaluate_checkpoint(spec, tmp_path / "prompts.jsonl", tmp_path / "ref" / "manifest.jsonl",
                                              tmp_path / "work", metrics=["fad"], embedder=BandEmbedder(),
                                              duration=1.0, seed=3, batch_size=4, n_bootstrap=20,
                                              loader=lambda s, device: gens[s])
    # one seed per clip, derived from the run seed and the clip id (as `generate`), the same for both
    assert gens["old.th"].seeds == gens["new.th"].seeds == [derive_seed(3, f"r{i}") for i in range(8)]
    assert sorted(p.name for p in (tmp_path / "work" / "old").glob("*.wav")) == [f"r{i}.wav" for i in range(8)]
    frame = compare_results(paths["old.th"], paths["new.th"], ["fad:+1"]).set_index("metric")
    assert frame.loc["fad", "new"] > frame.loc["fad", "baseline"] + 1  # the off-key tones are much further away
    assert frame.loc["fad", "regressed"]
    # a resumed generation does not regenerate finished clips
    gens["old.th"].seeds.clear()
    cmp.evaluate_checkpoint("old.th", tmp_path / "prompts.jsonl", tmp_path / "ref" / "manifest.jsonl",
                            tmp_path / "work", metrics=["fad"], embedder=BandEmbedder(), duration=1.0, seed=3,
                            batch_size=4, n_bootstrap=20, loader=lambda s, device: gens[s])
    assert gens["old.th"].seeds == []


# ----------------------------------------------------------------------------- comparability (issue 14.2)


def _refused(tmp_path, a, b, *words, extra=()):
    """compare exits 2 with a message (no traceback) naming each of `words`; the library raises NotComparableError."""
    from magnet_eval.errors import NotComparableError

    res = run_cli(str(a), str(b), "--no-ledger", *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and ("not comparable" in res.output or "cannot tell" in res.output)
    for w in words:
        assert w in res.output, (w, res.output)
    with pytest.raises(NotComparableError):
        compare_results(a, b, allow_unknown="--allow-unknown" in extra)
    return res.output


@pytest.mark.parametrize("change, words", [
    (dict(reference={"sha1": "b" * 40}), ["reference differs", "bbbbbbbbbb", "aaaaaaaaaa"]),
    (dict(reference={"n_clips": 20}), ["reference differs", "20 clips", f"{N} clips"]),
    (dict(model={"weights_id": "w-musicnn-2"}), ["weights", "w-musicnn-2", "fad"]),
    (dict(model={"sample_rate": 22050}), ["sample_rate", "22050"]),
    (dict(protocol={"normalize": False}), ["protocol", "normalize"]),
])
def test_not_comparable_results_are_refused(tmp_path, change, words):
    a = make_results(tmp_path / "a", "sys")
    b = make_results(tmp_path / "b", "sys", **change)
    _refused(tmp_path, a, b, *words)
    # --allow-unknown never lets a known difference through
    _refused(tmp_path, a, b, *words, extra=("--allow-unknown",))


def test_other_embedder_is_refused(tmp_path):
    a = make_results(tmp_path / "a", "sys")
    frame = pd.read_parquet(a)
    frame.loc[frame.metric == "fad", "embedder"] = "vggish"
    b = tmp_path / "b" / "sys.parquet"
    b.parent.mkdir()
    frame.to_parquet(b, index=False)
    pd.read_parquet(tmp_path / "a" / "sys.per_sample.parquet").to_parquet(tmp_path / "b" / "sys.per_sample.parquet")
    _refused(tmp_path, a, b, "another embedder", "vggish", "musicnn")


def test_prompt_sets_sharing_one_id_are_refused(tmp_path):
    """6 vs 10 prompts with one id in common gave "same", exit 0: now refused, naming the counts."""
    a = make_results(tmp_path / "a", "sys", ids=[f"a{i}" for i in range(5)] + ["common"])
    b = make_results(tmp_path / "b", "sys", ids=[f"b{i}" for i in range(9)] + ["common"])
    out = _refused(tmp_path, a, b, "share 1 ids", "baseline 6", "new 10")
    assert "90%" in out
    # 36 of 40 shared is enough (90 %); 35 of 40 is not
    base_ids = [f"p{i:02d}" for i in range(N)]
    ok = make_results(tmp_path / "c", "sys", ids=base_ids[:36])
    assert run_cli(str(make_results(tmp_path / "d", "sys")), str(ok), "--no-ledger").exit_code in (0, 1)
    few = make_results(tmp_path / "e", "sys", ids=base_ids[:35])
    _refused(tmp_path, tmp_path / "d" / "sys.parquet", few, "share 35 ids")


def test_few_shared_ids_skip_the_paired_test_and_say_so(tmp_path):
    ids = [f"p{i}" for i in range(6)]
    a = make_results(tmp_path / "a", "sys", ids=ids)
    b = make_results(tmp_path / "b", "sys", ids=ids, kl_shift=0.05)
    frame = compare_results(a, b).set_index("metric")
    row = frame.loc["kl_musicnn"]
    assert not row.ci_method.startswith("paired") and "paired test skipped: 6 shared ids" in row.note
    assert row.ci_method.startswith("none") and row.verdict == "worse" and row.regressed
    res = run_cli(str(a), str(b), "--no-ledger")
    assert res.exit_code == 1 and "paired test skipped" in res.output and "none" in res.output
    big = compare_results(make_results(tmp_path / "c", "sys"), make_results(tmp_path / "d", "sys", kl_shift=0.05))
    assert "paired bootstrap" in run_cli(str(tmp_path / "c" / "sys.parquet"), str(tmp_path / "d" / "sys.parquet"),
                                         "--no-ledger").output
    assert big.set_index("metric").loc["kl_musicnn", "ci_method"].startswith("paired bootstrap over 40 ids")


def test_unknown_provenance_is_refused_unless_allowed(tmp_path):
    a = make_results(tmp_path / "a", "sys", recorded=False)  # a file from before provenance was recorded
    b = make_results(tmp_path / "b", "sys")
    _refused(tmp_path, a, b, "cannot tell", "not recorded in baseline", "--allow-unknown")
    res = run_cli(str(a), str(b), "--no-ledger", "--allow-unknown")
    assert res.exit_code == 0 and "not known" in res.output, res.output
    # without its per-sample file the prompt ids are not known
    (tmp_path / "b" / "sys.per_sample.parquet").unlink()
    _refused(tmp_path, make_results(tmp_path / "c", "sys"), b, "prompt ids not known")
    # an old file whose reference label or size differs is refused even with --allow-unknown
    old = pd.read_parquet(a).assign(reference="other-ref")
    old.to_parquet(tmp_path / "a" / "sys.parquet", index=False)
    _refused(tmp_path, a, make_results(tmp_path / "d", "sys"), "reference differs", "other-ref",
             extra=("--allow-unknown",))


def test_identical_results_say_what_was_checked(tmp_path):
    a = make_results(tmp_path / "a", "sys")
    b = make_results(tmp_path / "b", "sys")
    res = run_cli(str(a), str(b), "--no-ledger")
    assert res.exit_code == 0, res.output
    assert "same reference" in res.output and "40 of 40 ids shared" in res.output
