"""Chroma cosine similarity (audiocraft's melody metric): 1 for identical audio, low for a
transposition, octave-invariant, frame-weighted over clips, paired by id."""

from __future__ import annotations

import math

import numpy as np
import pytest

from magnet_eval.errors import AudioError, ManifestError
from magnet_eval.metrics.chroma import ChromaCosine, ChromaExtractor, frame_cosines

SR = 16000


def tone(midi: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return (0.3 * sum((0.5 ** k) * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(3))).astype(np.float32)


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
    m.update(["same", "up2", "octave"], [base, melody(2), melody(12)], [base, base, base], SR)
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
    m.update(["a", "b"], [short_same, long_diff], [short_same, long_ref], SR)
    r = m.compute()
    ex = m.extractor
    n_a, n_b = ex.n_frames(2 * 32000), ex.n_frames(6 * 32000)
    per = r.per_sample["chroma_cosine"]
    expected = (n_a * per["a"] + n_b * per["b"]) / (n_a + n_b)
    assert r.value == pytest.approx(expected)
    assert r.value != pytest.approx((per["a"] + per["b"]) / 2)  # not the plain mean of clips
    assert r.details["frames"] == n_a + n_b


def test_lengths_are_cut_to_the_shorter_clip():
    base = melody()
    m = ChromaCosine(n_bootstrap=0)
    m.update("x", np.concatenate([base, melody(5)]), base, SR)  # a continuation after the reference ends
    assert m.compute().value == pytest.approx(1.0)


def test_bootstrap_interval_and_errors():
    base = melody()
    m = ChromaCosine(n_bootstrap=200, seed=0)
    gens = [base, melody(1), melody(3), melody(0.0, notes=(60, 60, 64, 64, 67, 67, 71, 72))]
    m.update([f"c{i}" for i in range(4)], gens, [base] * 4, SR)
    r = m.compute()
    assert r.ci_low <= r.value <= r.ci_high and r.ci_high - r.ci_low > 0
    with pytest.raises(Exception, match="twice"):
        m.update("c0", base, base, SR)
    with pytest.raises(AudioError):
        m.update("nan", np.full(SR, np.nan, np.float32), base, SR)
    with pytest.raises(Exception, match="no frames"):
        ChromaCosine().compute()


def test_evaluate_manifests_pairs_by_id(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry

    clips = {"a": melody(), "b": melody(3), "c": melody(7)}
    gen = Manifest([ManifestEntry(k, "", str(save_audio(tmp_path / f"g_{k}.wav", v, SR))) for k, v in clips.items()])
    refs = [ManifestEntry(k, "", str(save_audio(tmp_path / f"r_{k}.wav", v, SR))) for k, v in clips.items()]
    in_order = ChromaCosine.evaluate_manifests(gen, Manifest(refs), n_bootstrap=0)[0]
    reversed_ = ChromaCosine.evaluate_manifests(gen, Manifest(refs[::-1]), n_bootstrap=0)[0]
    assert in_order.value == pytest.approx(1.0) and reversed_.value == pytest.approx(1.0)
    # pairing by listing order would compare different melodies
    swapped = Manifest([ManifestEntry(e.id, "", r.audio_path) for e, r in zip(gen, refs[::-1])])
    assert ChromaCosine.evaluate_manifests(gen, swapped, n_bootstrap=0)[0].value < 0.8
    with pytest.raises(ManifestError, match="without reference audio: d"):
        ChromaCosine.evaluate_manifests(
            Manifest(list(gen) + [ManifestEntry("d", "", gen.by_id("a").audio_path)]), Manifest(refs), n_bootstrap=0)


def test_through_evaluate(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.evaluation import evaluate
    from magnet_eval.manifest import Manifest, ManifestEntry

    gen = Manifest([ManifestEntry("a", "", str(save_audio(tmp_path / "g.wav", melody(2), SR)))])
    ref = Manifest([ManifestEntry("a", "", str(save_audio(tmp_path / "r.wav", melody(), SR)))])
    results, per_sample = evaluate(gen, ref, metrics=["chroma"], n_bootstrap=0)
    row = results.set_index("metric").loc["chroma_cosine"]
    assert row["status"] == "ok" and row["value"] < 0.3 and math.isnan(row["ci_low"])
    assert per_sample.loc[per_sample.metric == "chroma_cosine", "id"].tolist() == ["a"]
