"""CLAP score: cosine of text and audio embeddings paired by prompt id, deterministic crop, dummy tokenizer refused."""

import numpy as np
import pytest

from magnet_eval.errors import MissingWeightsError
from magnet_eval.evaluation import evaluate
from magnet_eval.manifest import Manifest, ManifestEntry
from magnet_eval.audio import save_audio
from magnet_eval.embedding_cache import EmbeddingCache
from magnet_eval.metrics.clap_score import CLAPScore, audio_embedding, crop_windows

from helpers import sine

WORDS = ["low", "middle", "high"]
FREQS = [110.0, 880.0, 7040.0]


class _Tok:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


class ToyCLAP:
    """Text -> one-hot of the pitch word; audio -> energy in three bands around the three tones."""

    name = "toyclap"
    sample_rate = 48000
    weights_id = "toy_clap_checkpoint.pt"
    checkpoint = "toy_clap_checkpoint.pt"

    def __init__(self, vocab=50265):
        self.tokenizer = _Tok(vocab)
        self.windows = []

    def load(self, weights=None):
        return self

    def embed_text(self, texts):
        out = np.full((len(texts), 3), 0.05)
        for i, t in enumerate(texts):
            for j, w in enumerate(WORDS):
                if w in t:
                    out[i, j] = 1.0
        return out

    def embed(self, audio, sr):
        self.windows.append(len(audio))
        spec = np.abs(np.fft.rfft(audio)) ** 2
        f = np.fft.rfftfreq(len(audio), 1 / sr)
        e = np.array([spec[(f > c / 1.5) & (f < c * 1.5)].sum() for c in FREQS])
        return (e / e.sum() + 0.01)[None]


def test_crop_is_deterministic_consecutive_windows():
    sr = 1000
    assert [len(w) for w in crop_windows(np.zeros(25000), sr)] == [10000, 10000]
    assert [len(w) for w in crop_windows(np.zeros(7000), sr)] == [7000]
    clap = ToyCLAP()
    x = np.random.default_rng(0).normal(size=48000 * 23).astype(np.float32)
    a, b = audio_embedding(clap, x, 48000), audio_embedding(clap, x, 48000)
    assert np.array_equal(a, b) and clap.windows == [480000] * 4
    assert np.linalg.norm(a) == pytest.approx(1.0)


def test_score_is_the_mean_cosine():
    rng = np.random.default_rng(1)
    t, a = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    s = CLAPScore("ckpt.pt", n_bootstrap=200)
    s.update([f"i{k}" for k in range(5)], t, a)
    r = s.compute()
    cos = np.sum(t * a, axis=1) / np.linalg.norm(t, axis=1) / np.linalg.norm(a, axis=1)
    assert r.value == pytest.approx(cos.mean())
    assert r.per_sample["clap"]["i2"] == pytest.approx(cos[2])
    assert r.details["checkpoint"] == "ckpt.pt"
    assert r.ci_low <= r.value <= r.ci_high


def _generated(tmp_path, order):
    """Prompts p0..p2 ask for low/middle/high; files are written (and listed) in `order`."""
    folder = tmp_path / "gen"
    entries = []
    for i in order:
        path = save_audio(folder / f"{'zyx'[i]}_{i}.wav", sine(48000, 3.0, FREQS[i]), 48000)
        entries.append(ManifestEntry(id=f"p{i}", caption=f"a {WORDS[i]} tone", audio_path=str(path)))
    return Manifest(entries)


def test_pairs_by_prompt_id_not_file_order(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    man = _generated(tmp_path, [2, 0, 1])
    res, per = evaluate(man, None, ["clap"], system="toy", clap_model=ToyCLAP(), cache=cache)
    row = res.set_index("metric").loc["clap"]
    assert row["status"] == "ok" and row["n_generated"] == 3
    assert '"checkpoint": "toy_clap_checkpoint.pt"' in row["details"]
    clap = per[per.metric == "clap"].set_index("id")["value"]
    assert (clap > 0.9).all()  # every tone scored against its own caption
    # a mismatched pairing (captions rotated) scores low: the metric can tell
    rotated = Manifest([ManifestEntry(id=e.id, caption=f"a {WORDS[(int(e.id[1]) + 1) % 3]} tone",
                                      audio_path=e.audio_path) for e in man])
    bad, _ = evaluate(rotated, None, ["clap"], clap_model=ToyCLAP(), cache=cache)
    assert bad.value[0] < 0.5 < row["value"]


def test_dummy_tokenizer_is_refused(tmp_path):
    man = _generated(tmp_path, [0])
    with pytest.raises(MissingWeightsError, match="dummy"):
        evaluate(man, None, ["clap"], clap_model=ToyCLAP(vocab=5), cache=EmbeddingCache(tmp_path / "c"))
    res, _ = evaluate(man, None, ["clap"], clap_model=ToyCLAP(vocab=5), cache=EmbeddingCache(tmp_path / "c"),
                      on_missing_weights="row")
    assert res.status[0] == "weights not available"


def test_missing_captions_are_listed(tmp_path):
    man = _generated(tmp_path, [0, 1])
    man.entries[1].caption = ""
    with pytest.raises(Exception, match="p1"):
        evaluate(man, None, ["clap"], clap_model=ToyCLAP(), cache=EmbeddingCache(tmp_path / "c"))
