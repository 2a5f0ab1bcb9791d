"""One embedding pass per clip: models loaded once per process, batched embedding equal to batch 1,
file hashes remembered by path + size + mtime, the reference side computed once per reference."""

import os
import time

import numpy as np
import pytest

import magnet_eval.embedding_cache as ec
import magnet_eval.evaluation as ev
from magnet_eval.audio import save_audio
from magnet_eval.embedding_cache import EmbeddingCache, embed_files
from magnet_eval.manifest import Manifest, ManifestEntry

from helpers import real_wheel
from test_evaluate_fixtures import BandEmbedder


def _clips(folder, n, seconds=(1.0, 3.4, 6.2, 2.0, 0.7), sr=16000):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.arange(int(sr * seconds[i % len(seconds)])) / sr
        wav = 0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.05 * rng.normal(size=t.size)
        path = save_audio(folder / f"c{i}.wav", wav.astype(np.float32), sr)
        old = time.time() - 60  # older than the index's "racy" window
        os.utime(path, (old, old))
        out.append((f"c{i}", str(path)))
    return out


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    ev.forget_loaded_models()
    yield
    ev.forget_loaded_models()


def test_content_hash_is_computed_once_and_redone_when_the_file_changes(tmp_path, monkeypatch):
    items = _clips(tmp_path / "a", 3)
    hashed = []
    real = ec.file_sha1
    monkeypatch.setattr(ec, "file_sha1", lambda p: hashed.append(p) or real(p))
    embed_files(items, BandEmbedder(), cache=EmbeddingCache(tmp_path / "c"))
    assert len(hashed) == 3
    emb = BandEmbedder()
    embed_files(items, emb, cache=EmbeddingCache(tmp_path / "c"))  # a new process: the index file remembers
    assert len(hashed) == 3 and emb.calls == 0
    path = items[1][1]
    save_audio(path, np.zeros(12345, np.float32) + 0.1, 16000)  # other content, size and mtime
    os.utime(path, (time.time() - 30, time.time() - 30))
    emb = BandEmbedder()
    embed_files(items, emb, cache=EmbeddingCache(tmp_path / "c"))
    assert len(hashed) == 4 and emb.calls == 1  # only the changed file is hashed and embedded again
    assert (tmp_path / "c.file_hashes.json").is_file()


def test_embedders_and_classifiers_are_loaded_once_per_process(monkeypatch):
    import magnet_eval.embedders as embedders

    loads = []

    class Counting(BandEmbedder):
        def load(self, weights=None):
            loads.append(weights)
            return self

    monkeypatch.setattr(embedders, "get_embedder", lambda name: Counting())
    a = ev.load_embedder("toybands")
    b = ev.load_embedder("toybands")
    assert a is b and len(loads) == 1
    ev.load_embedder("toybands", "/tmp/other-weights.pt")  # other weights: another model
    assert len(loads) == 2


def test_reference_statistics_are_computed_once_per_reference(tmp_path, monkeypatch):
    ref = Manifest([ManifestEntry(id=i, audio_path=p) for i, p in _clips(tmp_path / "ref", 5)])
    gens = [Manifest([ManifestEntry(id=i, audio_path=p) for i, p in _clips(tmp_path / f"g{k}", 3)]) for k in range(2)]
    calls, decompositions = [], []
    real = ev.stats_from_embeddings
    monkeypatch.setattr(ev, "stats_from_embeddings", lambda *a, **k: calls.append(1) or real(*a, **k))
    from magnet_eval.metrics import frechet

    init = frechet.FixedGaussian.__init__
    monkeypatch.setattr(frechet.FixedGaussian, "__init__",
                        lambda self, *a, **k: decompositions.append(1) or init(self, *a, **k))
    cache = EmbeddingCache(tmp_path / "c")
    emb = BandEmbedder()
    values = [ev.evaluate(g, ref, ["fad", "kad"], emb, f"s{k}", cache=cache, n_bootstrap=0)[0] for k, g in enumerate(gens)]
    assert len(calls) == 1 and len(decompositions) == 1  # statistics, KAD terms and FAD's eigendecomposition
    assert all(v.status.eq("ok").all() for v in values)


def test_batched_musicnn_equals_batch_one(tmp_path, monkeypatch):
    """Clips of different lengths (one under a patch, several patches) give the same frames at batch 4 as at 1."""
    from helpers import cache_with_wheel, loaded_embedder

    cache_root = cache_with_wheel(tmp_path / "tc", real_wheel("musicnn-0.1.0-*.whl"))
    items = _clips(tmp_path / "a", 5)
    with loaded_embedder("musicnn", cache_root) as musicnn:
        one = embed_files(items, musicnn, cache=EmbeddingCache(tmp_path / "c1"), batch_size=1)
        calls = []
        real = musicnn._forward_patches
        monkeypatch.setattr(musicnn, "_forward_patches", lambda b: calls.append(len(b)) or real(b))
        many = embed_files(items, musicnn, cache=EmbeddingCache(tmp_path / "c4"), batch_size=4)
    assert len(calls) == 2 and calls[0] > 4  # two batched passes (4 clips, then 1) over all their patches
    assert list(many) == [i for i, _ in items]
    for i, _ in items:
        np.testing.assert_array_equal(one[i], many[i])
