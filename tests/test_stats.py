"""Reference statistics: build, save/load, provenance, refusal of other embedders/weights, use in evaluate."""

import numpy as np
import pytest
from typer.testing import CliRunner

from magnet_eval.embedding_cache import EmbeddingCache, prepare_audio
from magnet_eval.errors import IncompatibleStatsError
from magnet_eval.evaluation import evaluate
from magnet_eval.reference_stats import ReferenceStats, build_reference_stats, check_compatible

from test_evaluate_fixtures import BandEmbedder, make_manifest


def _set(tmp_path, name, n, seed, shift=1.0, sr=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(sr) / sr
    clips = {f"{name}{i}": (0.2 * np.sin(2 * np.pi * 300 * shift * (1 + 0.1 * rng.random()) * t)
                            + rng.normal(0, 0.02, sr)).astype(np.float32) for i in range(n)}
    return make_manifest(tmp_path / name, clips, sr)


@pytest.fixture
def built(tmp_path):
    man = _set(tmp_path, "ref", 6, 0)
    emb = BandEmbedder()
    stats = build_reference_stats(man, emb, cache=EmbeddingCache(tmp_path / "cache"), max_frames=20)
    return man, emb, stats


def test_build_save_load_round_trip(tmp_path, built):
    man, emb, stats = built
    path = stats.save(tmp_path / "stats" / "toy")  # suffix added
    assert path.suffix == ".npz"
    back = ReferenceStats.load(path)
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.cov, stats.cov)
    assert back.count == 6 * 7  # 7 frames of 128 ms per 1 s clip
    assert back.frames.shape == (20, 24)  # subsampled for KAD
    p = back.provenance
    assert (p["embedder"], p["weights_id"], p["sample_rate"], p["n_clips"]) == ("toybands", "toybands-v1", 16000, 6)
    assert p["clip_durations"] == [1.0] * 6 and p["loudness_normalized"] is True and p["headroom_db"] == 14.0
    assert p["toolkit_version"] and p["created"] and p["manifest"].endswith("manifest.jsonl")
    assert back.kad_bandwidth > 0 and back.kad_reference_term is not None
    # mean/cov are those of all the frames, not of the stored subsample
    frames = np.concatenate([emb.embed(prepare_audio(e.audio_path, 16000), 16000) for e in man])
    np.testing.assert_allclose(back.mean, frames.mean(axis=0), rtol=1e-5, atol=1e-5)


class _Other(BandEmbedder):
    name = "other"


class _Reweighted(BandEmbedder):
    weights_id = "toybands-v2"


class _Faster(BandEmbedder):
    sample_rate = 22050


@pytest.mark.parametrize("emb,field", [(_Other(), "embedder"), (_Reweighted(), "weights_id"), (_Faster(), "sample_rate")])
def test_refuses_stats_made_otherwise(built, emb, field):
    _, _, stats = built
    with pytest.raises(IncompatibleStatsError, match=field):
        check_compatible(stats, emb)
    check_compatible(stats, BandEmbedder())  # the same embedder passes


def test_refuses_other_preprocessing(built):
    _, emb, stats = built
    with pytest.raises(IncompatibleStatsError, match="loudness"):
        check_compatible(stats, emb, normalize=False)


def test_evaluate_with_stats_equals_evaluate_with_reference_audio(tmp_path, built):
    man, emb, stats = built
    path = stats.save(tmp_path / "toy.npz")
    gen = _set(tmp_path, "gen", 5, 7, shift=1.5)
    cache = EmbeddingCache(tmp_path / "cache")
    a, _ = evaluate(gen, path, ["fad"], emb, "s", cache=cache, n_bootstrap=10)
    b, _ = evaluate(gen, man, ["fad"], emb, "s", cache=cache, n_bootstrap=10)
    assert a.value[0] == pytest.approx(b.value[0], rel=1e-9)
    assert a.reference[0].endswith("toy.npz") and a.n_reference[0] == 6
    with pytest.raises(IncompatibleStatsError):
        evaluate(gen, path, ["fad"], _Reweighted(), "s", cache=cache)


def test_cli_build_and_show(tmp_path, monkeypatch, built):
    from magnet_eval.cli import app
    import magnet_eval.evaluation as evaluation

    man, _, _ = built
    monkeypatch.setattr(evaluation, "load_embedder", lambda spec: BandEmbedder())
    out = tmp_path / "reference_stats" / "toy.npz"
    runner = CliRunner()
    r = runner.invoke(app, ["stats", "build", "--embedder", "toybands", "--audio", str(tmp_path / "ref"),
                            "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    assert ReferenceStats.load(out).n_clips == 6
    r = runner.invoke(app, ["stats", "show", str(out)])
    assert r.exit_code == 0 and "toybands-v1" in r.output and "n_clips" in r.output


def test_malformed_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(IncompatibleStatsError, match="not a magnet-eval statistics file"):
        ReferenceStats.load(bad)


def test_committed_tiny_corpus_stats_match_the_offline_musicnn_weights():
    """reference_stats/tiny_corpus_train_musicnn.npz: made as its README row says, usable with today's weights."""
    from pathlib import Path

    from magnet_eval.embedders import get_embedder
    from magnet_eval.metrics.frechet import frechet_distance

    path = Path(__file__).resolve().parents[1] / "reference_stats" / "tiny_corpus_train_musicnn.npz"
    stats = ReferenceStats.load(path)
    prov = stats.provenance
    assert prov["embedder"] == "musicnn" and prov["n_clips"] == 151 and prov["n_frames"] == stats.count == 453
    assert stats.mean.shape == (200,) and stats.cov.shape == (200, 200) and stats.frames.shape == (453, 200)
    assert np.allclose(stats.cov, stats.cov.T) and np.linalg.eigvalsh(stats.cov).min() > -1e-8
    # the stored frames are all the frames: their mean and covariance are the stored ones
    assert np.allclose(stats.frames.mean(0), stats.mean, atol=1e-4)
    assert np.allclose(np.cov(stats.frames, rowvar=False), stats.cov, atol=1e-3)
    assert frechet_distance(stats.mean, stats.cov, stats.mean, stats.cov) == pytest.approx(0.0, abs=1e-6)
    check_compatible(stats, get_embedder("musicnn").load(), normalize=True, headroom_db=14.0)  # raises if weights changed
