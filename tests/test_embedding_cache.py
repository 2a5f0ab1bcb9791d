"""The per-file embedding cache: content-hash keys, atomic writes, resume after a kill, never stale."""

import numpy as np
import pytest

from magnet_eval.audio import save_audio
from magnet_eval.embedding_cache import EmbeddingCache, cached_per_file, embed_files, file_sha1, prepare_audio

from test_evaluate_fixtures import BandEmbedder


def _wav(path, seed, sr=16000, seconds=0.5):
    x = np.random.default_rng(seed).normal(0, 0.1, int(sr * seconds)).astype(np.float32)
    return save_audio(path, x, sr)


def test_key_depends_on_content_model_weights_rate_and_preprocessing(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    a = _wav(tmp_path / "a.wav", 0)
    b = _wav(tmp_path / "b.wav", 0)  # same bytes under another name
    c = _wav(tmp_path / "c.wav", 1)
    base = cache.path_for_file(a, "musicnn", "w1", 16000, "ln14")
    assert cache.path_for_file(b, "musicnn", "w1", 16000, "ln14") == base
    others = {cache.path_for_file(c, "musicnn", "w1", 16000, "ln14"),
              cache.path_for_file(a, "vggish", "w1", 16000, "ln14"),
              cache.path_for_file(a, "musicnn", "w2", 16000, "ln14"),
              cache.path_for_file(a, "musicnn", "w1", 32000, "ln14"),
              cache.path_for_file(a, "musicnn", "w1", 16000, "raw")}
    assert base not in others and len(others) == 5
    assert base.name == file_sha1(a) + ".npy" and base.is_relative_to(tmp_path / "c")


def test_hit_miss_and_atomic_files(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    a = _wav(tmp_path / "a.wav", 0)
    calls = []
    compute = lambda: calls.append(1) or np.ones((3, 4))  # noqa: E731
    first = cache.get_or_compute(a, "e", "w", 16000, compute)
    second = cache.get_or_compute(a, "e", "w", 16000, compute)
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32
    leftovers = [p for p in (tmp_path / "c").rglob("*") if p.is_file() and not p.name.endswith(".npy")]
    assert leftovers == []


def test_changed_file_is_never_served_stale(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    emb = BandEmbedder()
    path = tmp_path / "x.wav"
    _wav(path, 0)
    one = embed_files([("x", str(path))], emb, cache=cache)["x"]
    _wav(path, 1)  # same path, new content
    two = embed_files([("x", str(path))], emb, cache=cache)["x"]
    assert emb.calls == 2 and not np.allclose(one, two)


def test_corrupt_or_wrong_shape_entries_are_recomputed(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    a = _wav(tmp_path / "a.wav", 0)
    p = cache.path_for_file(a, "e", "w", 16000)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not a numpy file")
    calls = []
    out = cache.get_or_compute(a, "e", "w", 16000, lambda: calls.append(1) or np.zeros((2, 4)), dim=4)
    assert calls == [1] and out.shape == (2, 4)
    out = cache.get_or_compute(a, "e", "w", 16000, lambda: calls.append(1) or np.zeros((2, 5)), dim=5)
    assert calls == [1, 1] and out.shape == (2, 5)  # cached dim 4 did not match the embedder's 5


def test_killed_run_resumes_from_what_was_written(tmp_path):
    items = [(f"f{i}", str(_wav(tmp_path / f"f{i}.wav", i))) for i in range(6)]
    cache = EmbeddingCache(tmp_path / "c")
    done = []

    def dies_after_four(wav):
        if len(done) == 4:
            raise KeyboardInterrupt  # the run is killed while embedding the fifth file
        done.append(1)
        return np.full((1, 3), float(len(done)))

    with pytest.raises(KeyboardInterrupt):
        cached_per_file(items, name="e", weights_id="w", sample_rate=16000, compute=dies_after_four, cache=cache)
    assert len(list(cache.files())) == 4
    resumed = []
    out = cached_per_file(items, name="e", weights_id="w", sample_rate=16000, cache=cache,
                          compute=lambda wav: resumed.append(1) or np.zeros((1, 3)))
    assert len(resumed) == 2 and set(out) == {f"f{i}" for i in range(6)}
    assert out["f0"][0, 0] == 1.0 and out["f5"][0, 0] == 0.0


def test_prepare_audio_normalises_loudness_then_resamples(tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    loud = save_audio(tmp_path / "loud.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr)
    quiet = save_audio(tmp_path / "quiet.wav", 0.05 * np.sin(2 * np.pi * 440 * t), sr)
    a, b = prepare_audio(loud, 16000), prepare_audio(quiet, 16000)
    assert a.shape == (16000,)
    assert np.sqrt(np.mean(a ** 2)) == pytest.approx(np.sqrt(np.mean(b ** 2)), rel=0.02)
    raw = prepare_audio(quiet, 16000, normalize=False)
    assert np.sqrt(np.mean(raw ** 2)) < 0.5 * np.sqrt(np.mean(b ** 2))


def test_disabled_cache_writes_nothing(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", enabled=False)
    a = _wav(tmp_path / "a.wav", 0)
    calls = []
    for _ in range(2):
        cache.get_or_compute(a, "e", "w", 16000, lambda: calls.append(1) or np.zeros((1, 2)))
    assert len(calls) == 2 and not (tmp_path / "c").exists()
