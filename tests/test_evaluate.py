"""`evaluate` end to end: sanity ordering on rendered clips, schema, CLI, pairing, missing weights, resume."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from magnet_eval.embedding_cache import EmbeddingCache
from magnet_eval.errors import MagnetEvalError, ManifestError, MissingWeightsError
from magnet_eval.evaluation import PER_SAMPLE_COLUMNS, RESULT_COLUMNS, evaluate
from magnet_eval.manifest import Manifest

from test_evaluate_fixtures import BandClassifier, BandEmbedder, make_manifest, need_fluidsynth, render_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    need_fluidsynth()
    return render_corpus(tmp_path_factory.mktemp("corpus"), n=8, seconds=4.0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return EmbeddingCache(tmp_path_factory.mktemp("emb-cache"))


def _values(corpus, cache, metrics, **kw):
    out = {}
    for name in ("heldout", "shifted", "noise"):
        res, _ = evaluate(corpus[name], corpus["real"], metrics, system=name, cache=cache, n_bootstrap=20, **kw)
        out[name] = res.set_index("metric")
    return out


def test_sanity_ordering_toy_models(corpus, cache):
    v = _values(corpus, cache, ["fad", "kad", "kl"], embedder=BandEmbedder(), kl_classifier=BandClassifier())
    for metric in ("fad", "kad", "kl"):
        got = [v[n].loc[metric, "value"] for n in ("heldout", "shifted", "noise")]
        assert got[0] < got[1] < got[2], (metric, got)


def _offline_models():
    try:
        from magnet_eval.embedders import get_embedder  # noqa: F401
        from magnet_eval.embedders.classifiers import get_classifier  # noqa: F401
    except ImportError:
        pytest.skip("the embedder registry (magnet_eval.embedders) is not in this checkout")
    try:
        from magnet_eval.weights import wheel_path

        wheel_path("musicnn")
    except MissingWeightsError as exc:
        pytest.skip(str(exc))


def test_sanity_ordering_musicnn(corpus, cache):
    """The done-when check with the offline embedder: FAD and KL over musicnn on rendered music."""
    _offline_models()
    v = _values(corpus, cache, ["fad", "kl_musicnn"], embedder="musicnn")
    for metric in ("fad", "kl_musicnn"):
        got = [v[n].loc[metric, "value"] for n in ("heldout", "shifted", "noise")]
        assert got[0] < got[1] < got[2], (metric, got)


def test_schema_and_per_sample(corpus, cache):
    res, per = evaluate(corpus["shifted"], corpus["real"], ["fad", "kad", "kl"], BandEmbedder(), "sys",
                        kl_classifier=BandClassifier(), cache=cache, n_bootstrap=20)
    assert list(res.columns) == RESULT_COLUMNS and list(per.columns) == PER_SAMPLE_COLUMNS
    assert list(res.metric) == ["fad", "fad_inf", "kad", "kl", "kl_rev"]
    assert (res.status == "ok").all() and (res.system == "sys").all()
    assert res.value.dtype == np.float64 and res.n_generated.dtype == np.int64
    fad = res.set_index("metric").loc["fad"]
    assert fad.ci_low <= fad.value <= fad.ci_high and fad.n_generated == 8 and fad.n_reference == 8
    assert fad.embedder == "toybands" and fad.reference.endswith("manifest.jsonl")
    assert json.loads(fad.details)["fad_inf"]["sizes"]
    assert set(per.metric) == {"fad_contribution", "fad_clip_distance", "kad_contribution", "kl", "kl_rev"}
    assert set(per.id) == {f"p{i}" for i in range(8)}
    kl_rows = per[per.metric == "kl"]
    assert kl_rows.value.mean() == pytest.approx(res.set_index("metric").loc["kl", "value"])


def test_loudness_normalisation_is_applied(corpus, tmp_path):
    """A copy of the reference at -20 dB is the same set after normalisation, not without it."""
    import soundfile as sf

    quiet = {}
    for e in corpus["real"]:
        wav, sr = sf.read(e.audio_path, dtype="float32")
        quiet[e.id] = wav * 0.1
    man = make_manifest(tmp_path / "quiet", quiet, sr)
    cache = EmbeddingCache(tmp_path / "c")
    norm, _ = evaluate(man, corpus["real"], ["fad"], BandEmbedder(), cache=cache, n_bootstrap=0)
    raw, _ = evaluate(man, corpus["real"], ["fad"], BandEmbedder(), cache=cache, n_bootstrap=0, normalize=False)
    assert norm.value[0] < 0.05 * raw.value[0]


def test_pairing_errors_list_the_ids(corpus, tmp_path):
    gen = Manifest([e for e in corpus["heldout"] if e.id != "p0"])  # one prompt not generated: fine
    res, _ = evaluate(gen, corpus["real"], ["kl"], kl_classifier=BandClassifier(), cache=EmbeddingCache(tmp_path / "c"),
                      n_bootstrap=0)
    assert res.n_generated[0] == 7
    with pytest.raises(ManifestError, match="reference ids without a generated clip: p0"):
        evaluate(gen, corpus["real"], ["kl"], kl_classifier=BandClassifier(), strict_pairing=True,
                 cache=EmbeddingCache(tmp_path / "c"))
    ref = Manifest([e for e in corpus["real"] if e.id not in ("p3", "p5")])
    with pytest.raises(ManifestError, match="generated ids without reference audio: p3, p5"):
        evaluate(corpus["heldout"], ref, ["kl"], kl_classifier=BandClassifier(), cache=EmbeddingCache(tmp_path / "c"))


def _no_vggish(spec):
    if spec == "vggish":
        raise MissingWeightsError("VGGish weights vggish-10086976.pth not found; put the file at /x/y")
    return BandEmbedder()


def _no_passt(spec):
    if spec == "passt":
        raise MissingWeightsError("PaSST weights not found")
    return BandClassifier()


def test_missing_weights_rows_or_error(corpus, cache, monkeypatch):
    import magnet_eval.evaluation as ev

    monkeypatch.setattr(ev, "load_embedder", _no_vggish)
    monkeypatch.setattr(ev, "load_classifier", _no_passt)
    with pytest.raises(MissingWeightsError, match="vggish-10086976.pth"):
        evaluate(corpus["heldout"], corpus["real"], ["fad"], "vggish", cache=cache)
    # a suite asks for rows instead; the other metrics are still computed, KL falls back to musicnn's tags
    res, _ = evaluate(corpus["heldout"], corpus["real"], ["fad", "kl"], "vggish", cache=cache, n_bootstrap=0,
                      on_missing_weights="row")
    by = res.set_index("metric")
    assert list(res.metric) == ["fad", "fad_inf", "kl", "kl_rev", "kl_musicnn", "kl_musicnn_rev"]
    assert by.loc["fad", "status"] == "weights not available" and math.isnan(by.loc["fad", "value"])
    assert "vggish-10086976.pth" in json.loads(by.loc["fad", "details"])["error"]
    assert by.loc["kl", "status"] == "weights not available"
    assert by.loc["kl_musicnn", "status"] == "ok" and by.loc["kl_musicnn", "value"] > 0


class _Dies(BandEmbedder):
    def __init__(self, after):
        super().__init__()
        self.after = after

    def embed(self, audio, sr):
        if self.calls == self.after:
            raise KeyboardInterrupt
        return super().embed(audio, sr)


def test_killed_evaluate_resumes_from_cached_embeddings(corpus, tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        evaluate(corpus["shifted"], corpus["real"], ["fad"], _Dies(after=11), cache=cache)
    emb = BandEmbedder()
    res, _ = evaluate(corpus["shifted"], corpus["real"], ["fad"], emb, cache=cache, n_bootstrap=0)
    assert emb.calls == 16 - 11  # only the clips not embedded before the kill
    again = BandEmbedder()
    res2, _ = evaluate(corpus["shifted"], corpus["real"], ["fad"], again, cache=cache, n_bootstrap=0)
    assert again.calls == 0 and res2.value[0] == res.value[0]


def test_cli_writes_parquet_csv_and_per_sample(corpus, tmp_path, monkeypatch):
    import magnet_eval.evaluation as ev
    from magnet_eval.cli import app

    monkeypatch.setattr(ev, "load_embedder", lambda spec: BandEmbedder())
    out = tmp_path / "out" / "results.parquet"
    gen_dir = str(Path(corpus["shifted"].source).parent)
    r = CliRunner().invoke(app, ["evaluate", "--generated", gen_dir, "--reference", corpus["real"].source,
                                 "--metrics", "fad,kad", "--embedder", "toybands", "--out", str(out),
                                 "--bootstrap", "10", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(out)
    assert list(res.metric) == ["fad", "fad_inf", "kad"] and (res.system == "shifted").all()
    assert pd.read_csv(out.with_suffix(".csv")).shape == res.shape
    per = pd.read_parquet(out.with_name("results.per_sample.parquet"))
    assert set(per.metric) == {"fad_contribution", "fad_clip_distance", "kad_contribution"}
    assert "fad_inf" in r.output and "shifted" in r.output


def test_generated_without_audio_is_listed(corpus, tmp_path):
    from magnet_eval.manifest import ManifestEntry

    gen = Manifest(list(corpus["heldout"]) + [ManifestEntry(id="ghost", caption="x", audio_path=str(tmp_path / "no.wav"))])
    with pytest.raises(ManifestError, match="ghost"):
        evaluate(gen, corpus["real"], ["fad"], BandEmbedder(), cache=EmbeddingCache(tmp_path / "c"))


class _FakeMIRDD:
    """Stands in for the MIRDD class: records what evaluate feeds it (descriptors, not manifests)."""

    seen: dict = {}

    def __init__(self, reference, *, n_bootstrap, ci, seed):
        type(self).seen = {"reference": dict(reference), "n_bootstrap": n_bootstrap, "seed": seed}

    def update(self, descriptors):
        type(self).seen["generated"] = dict(descriptors)

    def compute(self):
        from magnet_eval.metrics._common import MetricResult

        gen, ref = self.seen["generated"], self.seen["reference"]
        return [MetricResult("mirdd", 0.25, 0.2, 0.3, n_generated=len(gen), n_reference=len(ref), details={}),
                MetricResult("mirdd/key", 0.5, details={"bins": 24})]


def test_mir_metrics_get_features_extracted_once_outside_the_metric(corpus, monkeypatch, tmp_path):
    """evaluate extracts the descriptors (once, via mir.extract) and feeds the metric class from the
    registry; the metric never sees a manifest or a file."""
    import magnet_eval.metrics as registry
    import magnet_eval.mir.extract as extract

    calls = []

    def fake_describe(generated, reference, *, context, cache, normalize, headroom_db, workers):
        calls.append((len(generated), len(reference), context, normalize))
        return ({e.id: f"desc:{e.audio_path}" for e in generated}, {e.id: f"desc:{e.audio_path}" for e in reference},
                None)

    real = registry.get_metric_class
    monkeypatch.setattr(registry, "get_metric_class", lambda name: _FakeMIRDD if name == "mirdd" else real(name))
    monkeypatch.setattr(extract, "describe_manifests", fake_describe)
    res, _ = evaluate(corpus["heldout"], corpus["real"], ["mirdd"], cache=EmbeddingCache(tmp_path / "c"), seed=3,
                      n_bootstrap=7)
    assert list(res.metric) == ["mirdd", "mirdd/key"] and res.value.tolist() == [0.25, 0.5]
    assert calls == [(8, 8, "auto", True)]
    seen = _FakeMIRDD.seen
    assert seen["seed"] == 3 and seen["n_bootstrap"] == 7
    assert seen["generated"] == {e.id: f"desc:{e.audio_path}" for e in corpus["heldout"]}
    assert seen["reference"] == {e.id: f"desc:{e.audio_path}" for e in corpus["real"]}
    details = json.loads(res.details[0])
    assert details["stem_plus_context"] is False and details["extractor"].startswith("essentia-")
    # a metric whose module is absent: an error, or a row with the reason when asked to keep going
    def absent(name):
        raise MagnetEvalError(f"metric {name!r} is not available in this installation")

    monkeypatch.setattr(registry, "get_metric_class", absent)
    res, _ = evaluate(corpus["heldout"], corpus["real"], ["chroma"], cache=EmbeddingCache(tmp_path / "c"),
                      on_error="row")
    assert res.metric[0] == "chroma_cosine" and "not available" in res.status[0] and math.isnan(res.value[0])


def test_no_metric_module_reads_files_or_imports_the_orchestration():
    """Metrics take arrays and return numbers: no metric module imports the orchestration (evaluation,
    pipeline, cli), manifests or pairing, the feature extraction that reads files (mir.extract,
    embedding_cache), a file reader, or inspect; none calls open()."""
    import ast

    root = Path(__file__).resolve().parents[1] / "magnet_eval" / "metrics"
    banned_modules = {"evaluation", "pipeline", "cli", "manifest", "pairing", "embedding_cache", "mir.extract",
                      "files", "inspect", "soundfile", "torchaudio.load"}
    banned_names = {"load_audio", "save_audio", "prepare_audio", "read_any", "paired_chroma", "describe_files",
                    "describe_manifests"}
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                offenders.append(f"{path.name}:{node.lineno}: open()")
            if isinstance(node, ast.ImportFrom):
                mod = (node.module or "").lstrip(".").removeprefix("magnet_eval.")
                imported = [(mod, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                imported = [(a.name.removeprefix("magnet_eval."), "") for a in node.names]
            else:
                continue
            for mod, name in imported:
                full = f"{mod}.{name}" if mod and name else mod or name
                if any(full == b or full.startswith(b + ".") or mod == b for b in banned_modules) \
                        or name in banned_names:
                    offenders.append(f"{path.name}:{node.lineno}: {full}")
    assert not offenders, offenders


# ----------------------------------------------------------------------------- issue 14.7: "weights not available"


def _raise(exc):
    def load(self, *a, **k):
        raise exc
    return load


@pytest.mark.parametrize("exc", [ImportError("No module named 'torchvggish_dep'"),
                                 TypeError("VGGish.__init__() got an unexpected keyword argument 'dtype'")])
def test_a_failing_embedder_load_is_an_error_naming_its_cause(corpus, tmp_path, monkeypatch, exc):
    from magnet_eval.cli import app
    from magnet_eval.embedders.vggish import VGGishEmbedder
    from magnet_eval.errors import ModelLoadError

    monkeypatch.setattr(VGGishEmbedder, "_load", _raise(exc))
    gen_dir = str(Path(corpus["heldout"].source).parent)
    args = ["evaluate", "--generated", gen_dir, "--reference", corpus["real"].source, "--metrics", "fad",
            "--embedder", "vggish", "--skip-missing-weights", "--no-ledger", "--cache-dir", str(tmp_path / "c")]
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "r.parquet")])
    assert r.exit_code != 0 and isinstance(r.exception, ModelLoadError), (r.output, r.exception)
    assert type(exc).__name__ in str(r.exception) and str(exc) in str(r.exception) and "vggish" in str(r.exception)
    assert not (tmp_path / "r.parquet").exists()
    # a suite that keeps going records the cause, never an amber "weights not available"
    res, _ = evaluate(corpus["heldout"], corpus["real"], ["fad"], "vggish", cache=EmbeddingCache(tmp_path / "c"),
                      on_missing_weights="row", on_error="row")
    assert (res.status != "weights not available").all() and res.status.str.contains(type(exc).__name__).all()


def test_a_classifier_import_error_is_not_missing_weights(corpus, tmp_path, monkeypatch):
    """PaSST's ImportError used to become "weights not available" (and a silent fall-back to musicnn)."""
    from magnet_eval.embedders.classifiers import PasstClassifier
    from magnet_eval.errors import ModelLoadError

    monkeypatch.setattr(PasstClassifier, "load", _raise(ImportError("No module named 'timm'")))
    with pytest.raises(ModelLoadError, match="ImportError: No module named 'timm'"):
        evaluate(corpus["heldout"], corpus["real"], ["kl"], kl_classifier="passt",
                 cache=EmbeddingCache(tmp_path / "c"), on_missing_weights="row")
    with pytest.raises(ModelLoadError, match="timm"):  # the default KL does not fall back on it either
        evaluate(corpus["heldout"], corpus["real"], ["kl"], cache=EmbeddingCache(tmp_path / "c"),
                 on_missing_weights="row")


def test_a_missing_weights_file_is_weights_not_available_naming_the_file(corpus, tmp_path, monkeypatch):
    from magnet_eval.cli import app
    from magnet_eval.embedders.vggish import VGGishEmbedder

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # the default location holds nothing
    missing = VGGishEmbedder.default_path()
    assert not missing.exists() and str(tmp_path) in str(missing)
    gen_dir = str(Path(corpus["heldout"].source).parent)
    out = tmp_path / "r.parquet"
    r = CliRunner().invoke(app, ["evaluate", "--generated", gen_dir, "--reference", corpus["real"].source,
                                 "--metrics", "fad", "--embedder", "vggish", "--skip-missing-weights", "--no-ledger", "--out", str(out),
                                 "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, (r.output, r.exception)
    res = pd.read_parquet(out).set_index("metric")
    assert res.loc["fad", "status"] == "weights not available"
    assert str(missing) in json.loads(res.loc["fad", "details"])["error"]


# ----------------------------------------------------------------------------- issue 14.6 / 14.2: self-comparison, provenance


def test_a_set_against_itself_is_labelled_not_measured(corpus, tmp_path):
    from magnet_eval.manifest import ManifestEntry
    from magnet_eval.provenance import SELF_COMPARISON

    cache = EmbeddingCache(tmp_path / "c")
    res, _ = evaluate(corpus["real"], corpus["real"], ["fad", "kad", "kl"], BandEmbedder(),
                      kl_classifier=BandClassifier(), cache=cache, n_bootstrap=10)
    assert (res.status == SELF_COMPARISON).all(), res[["metric", "status"]]
    # the same files copied under other names and ids: still the set against itself
    import shutil

    copies = []
    for i, e in enumerate(corpus["real"]):
        dst = tmp_path / "copy" / f"x{i}.wav"
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(e.audio_path, dst)
        copies.append(ManifestEntry(id=f"x{i}", caption=e.caption, audio_path=str(dst)))
    res, _ = evaluate(Manifest(copies), corpus["real"], ["fad"], BandEmbedder(), cache=cache, n_bootstrap=10)
    assert (res.status == SELF_COMPARISON).all()
    # a real measurement is not labelled
    res, _ = evaluate(corpus["heldout"], corpus["real"], ["fad"], BandEmbedder(), cache=cache, n_bootstrap=10)
    assert (res.status == "ok").all()


def test_results_record_reference_model_and_protocol(corpus, tmp_path):
    """What `compare` needs to refuse unlike results is written at evaluation time."""
    from magnet_eval.compare import compare_results
    from magnet_eval.errors import NotComparableError
    from magnet_eval.evaluation import save_results

    cache = EmbeddingCache(tmp_path / "c")
    res, per = evaluate(corpus["heldout"], corpus["real"], ["fad"], BandEmbedder(), cache=cache, n_bootstrap=10)
    prov = json.loads(res.details[0])["provenance"]
    assert prov["model"] == {"model": "toybands", "weights_id": "toybands-v1", "sample_rate": 16000}
    assert prov["protocol"] == {"normalize": True, "headroom_db": 14.0}
    assert prov["reference"]["kind"] == "audio" and prov["reference"]["n_clips"] == len(corpus["real"])
    a = save_results(res, per, tmp_path / "a.parquet")["results"]
    # the same generated set against a smaller reference, or without loudness normalisation: refused
    smaller = Manifest(list(corpus["real"])[:-1], corpus["real"].source)
    res2, per2 = evaluate(corpus["heldout"], smaller, ["fad"], BandEmbedder(), cache=cache, n_bootstrap=10)
    b = save_results(res2, per2, tmp_path / "b.parquet")["results"]
    with pytest.raises(NotComparableError, match="reference differs"):
        compare_results(a, b)
    res3, per3 = evaluate(corpus["heldout"], corpus["real"], ["fad"], BandEmbedder(), cache=cache, n_bootstrap=10,
                          normalize=False)
    c = save_results(res3, per3, tmp_path / "c.parquet")["results"]
    with pytest.raises(NotComparableError, match="protocol"):
        compare_results(a, c)
    assert set(compare_results(a, a).verdict) == {"same"}
