"""Chroma cosine similarity (audiocraft's melody metric): 1 for identical audio, low for a
transposition, octave-invariant, frame-weighted over clips, paired by id."""

from __future__ import annotations

import math

import numpy as np
import pytest

from magnet_eval.errors import AudioError, ManifestError
from magnet_eval.metrics.chroma import ChromaCosine, frame_cosines
from magnet_eval.mir.chroma import ChromaExtractor, pair_chroma

SR = 16000


def tone(midi: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return (0.3 * sum((0.5 ** k) * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(3))).astype(np.float32)


def add(metric: ChromaCosine, ids, generated, reference, sr: int = SR, extractor: ChromaExtractor | None = None):
    """Audio pairs -> chromagrams (the evaluation's extraction step) -> the metric."""
    ex = extractor or ChromaExtractor()
    for clip_id, g, r in zip(ids, generated, reference):
        cg, cr, frames = pair_chroma(ex, g, r, sr, clip_id)
        metric.update(clip_id, cg, cr, frames)


def melody(shift: float = 0.0, notes=(60, 62, 64, 65, 67, 69, 71, 72), note_s: float = 0.75, sr: int = SR) -> np.ndarray:
    return np.concatenate([tone(p + shift, note_s, sr) for p in notes])


def test_extractor_one_hot_at_the_pitch_class():
    ex = ChromaExtractor()
    for midi, pc in ((69, 9), (60, 0), (67, 7)):
        chroma = ex(tone(midi, 2.0, 32000))
        assert chroma.shape[1] == 12
        assert set(np.unique(chroma)) <= {0.0, 1.0} and np.all(chroma.sum(1) == 1)
        middle = chroma[2:-2]
        assert np.all(middle.argmax(1) == pc)
    assert ex.n_fft == 16384 and ex.hop == 4096
    assert ex.n_frames(32000) == 8  # ceil(32000 / 4096)
    short = ex(tone(69, 0.1, 32000))  # shorter than n_fft: zero-padded, still one frame or more
    assert short.shape[0] >= 1 and short[0].argmax() == 9


def test_frame_cosines():
    a = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]])
    b = np.array([[1.0, 0, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(frame_cosines(a, b), [1.0, 0.0, 0.0])


def test_identical_is_one_transposed_is_low_octave_is_one():
    base = melody()
    m = ChromaCosine(n_bootstrap=0)
    add(m, ["same", "up2", "octave"], [base, melody(2), melody(12)], [base, base, base])
    r = m.compute()
    per = r.per_sample["chroma_cosine"]
    assert per["same"] == pytest.approx(1.0)
    assert per["up2"] < 0.3
    assert per["octave"] > 0.9  # chroma ignores the octave
    assert r.metric == "chroma_cosine" and r.n_generated == 3


def test_value_is_frame_weighted_as_audiocraft():
    short_same = melody(notes=(60, 64), note_s=1.0)  # 2 s
    long_diff = melody(6, notes=(60, 64, 67, 72), note_s=1.5)  # 6 s, tritone away
    long_ref = melody(0, notes=(60, 64, 67, 72), note_s=1.5)
    m = ChromaCosine(n_bootstrap=0)
    add(m, ["a", "b"], [short_same, long_diff], [short_same, long_ref])
    r = m.compute()
    ex = ChromaExtractor()
    n_a, n_b = ex.n_frames(2 * 32000), ex.n_frames(6 * 32000)
    per = r.per_sample["chroma_cosine"]
    expected = (n_a * per["a"] + n_b * per["b"]) / (n_a + n_b)
    assert r.value == pytest.approx(expected)
    assert r.value != pytest.approx((per["a"] + per["b"]) / 2)  # not the plain mean of clips
    assert r.details["frames"] == n_a + n_b


def test_lengths_are_cut_to_the_shorter_clip():
    base = melody()
    m = ChromaCosine(n_bootstrap=0)
    add(m, ["x"], [np.concatenate([base, melody(5)])], [base])  # a continuation after the reference ends
    assert m.compute().value == pytest.approx(1.0)


def test_cached_chromagrams_of_unequal_lengths_are_cut_before_extraction(tmp_path):
    """The cache holds whole-file chromagrams; a clip longer than its partner is extracted again on
    the common length, so the values equal extraction of the cut audio (frames near a cut differ)."""
    from magnet_eval.audio import save_audio
    from magnet_eval.embedding_cache import EmbeddingCache, prepare_audio
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.mir.chroma import paired_chroma

    ex = ChromaExtractor(argmax=False)  # graded chroma: the frames near the cut show the difference
    long_gen = np.concatenate([melody(), melody(5)])
    gen = Manifest([ManifestEntry("a", "", str(save_audio(tmp_path / "g.wav", long_gen, SR))),
                    ManifestEntry("b", "", str(save_audio(tmp_path / "g2.wav", melody(2), SR)))])
    ref = Manifest([ManifestEntry("a", "", str(save_audio(tmp_path / "r.wav", melody(), SR))),
                    ManifestEntry("b", "", str(save_audio(tmp_path / "r2.wav", melody(2)[: SR * 3], SR)))])
    cache = EmbeddingCache(tmp_path / "cache")
    for _ in range(2):  # computed, then read back from the cache: the same arrays
        gen_c, ref_c, frames = paired_chroma(gen, ref, ["a", "b"], extractor=ex, cache=cache)
        for k, i in enumerate(["a", "b"]):
            g = prepare_audio(gen.by_id(i).audio_path, 32000)
            r = prepare_audio(ref.by_id(i).audio_path, 32000)
            want_g, want_r, want_t = pair_chroma(ex, g, r, 32000)
            np.testing.assert_array_equal(gen_c[k], want_g)
            np.testing.assert_array_equal(ref_c[k], want_r)
            assert frames[k] == want_t
    assert cache.hits == 4
    whole = ex(prepare_audio(gen.by_id("a").audio_path, 32000))[: frames[0]]
    assert np.abs(whole - gen_c[0][: frames[0]]).max() > 1e-3  # the cached whole-file chroma would differ


def test_bootstrap_interval_and_errors():
    base = melody()
    m = ChromaCosine(n_bootstrap=200, seed=0)
    gens = [base, melody(1), melody(3), melody(0.0, notes=(60, 60, 64, 64, 67, 67, 71, 72))]
    add(m, [f"c{i}" for i in range(4)], gens, [base] * 4)
    r = m.compute()
    assert r.ci_low <= r.value <= r.ci_high and r.ci_high - r.ci_low > 0
    with pytest.raises(Exception, match="twice"):
        add(m, ["c0"], [base], [base])
    with pytest.raises(AudioError):
        pair_chroma(ChromaExtractor(), np.full(SR, np.nan, np.float32), base, SR, "nan")
    with pytest.raises(Exception, match="n_chroma"):
        m.update("flat", np.ones(12), np.ones((3, 12)))
    with pytest.raises(Exception, match="no frames"):
        ChromaCosine().compute()


def test_chroma_results_pair_by_id(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.evaluation import chroma_results
    from magnet_eval.manifest import Manifest, ManifestEntry

    def run(generated, reference):
        return chroma_results(generated, reference, n_bootstrap=0, cache=EmbeddingCache(tmp_path / "c"))[0]

    clips = {"a": melody(), "b": melody(3), "c": melody(7)}
    gen = Manifest([ManifestEntry(k, "", str(save_audio(tmp_path / f"g_{k}.wav", v, SR))) for k, v in clips.items()])
    refs = [ManifestEntry(k, "", str(save_audio(tmp_path / f"r_{k}.wav", v, SR))) for k, v in clips.items()]
    in_order = run(gen, Manifest(refs))
    reversed_ = run(gen, Manifest(refs[::-1]))
    assert in_order.value == pytest.approx(1.0) and reversed_.value == pytest.approx(1.0)
    assert in_order.details["n_fft"] == 16384 and in_order.details["argmax"] is True
    # pairing by listing order would compare different melodies
    swapped = Manifest([ManifestEntry(e.id, "", r.audio_path) for e, r in zip(gen, refs[::-1])])
    assert run(gen, swapped).value < 0.8
    with pytest.raises(ManifestError, match="without reference audio: d"):
        run(Manifest(list(gen) + [ManifestEntry("d", "", gen.by_id("a").audio_path)]), Manifest(refs))


def test_through_evaluate(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.evaluation import evaluate
    from magnet_eval.manifest import Manifest, ManifestEntry

    gen = Manifest([ManifestEntry("a", "", str(save_audio(tmp_path / "g.wav", melody(2), SR)))])
    ref = Manifest([ManifestEntry("a", "", str(save_audio(tmp_path / "r.wav", melody(), SR)))])
    results, per_sample = evaluate(gen, ref, metrics=["chroma"], n_bootstrap=0, cache=EmbeddingCache(tmp_path / "c"))
    row = results.set_index("metric").loc["chroma_cosine"]
    assert row["status"] == "ok" and row["value"] < 0.3 and math.isnan(row["ci_low"])
    assert per_sample.loc[per_sample.metric == "chroma_cosine", "id"].tolist() == ["a"]
