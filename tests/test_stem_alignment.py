"""Rhythmic and tonal agreement of a stem with its context (StemGen's evaluation): known answers on synthetic input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.mir.alignment import alignment_features
from magnet_eval.metrics.stem_alignment import (MAJOR_PROFILE, MINOR_PROFILE, AlignmentFeatures, StemAlignment,
                                                beat_f_measure, chroma_agreement, estimate_key,
                                                key_agreement, onset_f_measure)

SR = 22050


def _clicks(times: np.ndarray, seconds: float, sr: int = SR) -> np.ndarray:
    x = np.zeros(int(seconds * sr), np.float32)
    burst = (np.random.default_rng(0).standard_normal(200) * np.hanning(200)).astype(np.float32)
    for t in times:
        i = int(t * sr)
        x[i:i + 200] += burst[: len(x[i:i + 200])]
    return 0.5 * x


def test_beat_and_onset_f_measure_known_values():
    beats = np.arange(0.5, 8.0, 0.5)
    assert beat_f_measure(beats, beats) == pytest.approx(1.0)
    assert beat_f_measure(beats, beats + 0.25) == pytest.approx(0.0)  # off-beat: outside the 70 ms window
    # half of the estimated beats right: precision 1/2... F = 2PR/(P+R)
    est = np.sort(np.concatenate([beats, beats + 0.25]))
    assert beat_f_measure(beats, est) == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert onset_f_measure(beats, beats + 0.03) == pytest.approx(1.0)  # within 50 ms
    assert onset_f_measure(beats, beats + 0.2) == pytest.approx(0.0)
    assert onset_f_measure(beats, []) == 0.0 and math.isnan(onset_f_measure([], []))
    with pytest.raises(MagnetEvalError, match="finite"):
        beat_f_measure([np.nan], beats)


def test_chroma_and_key_agreement_known_values():
    c_major = np.roll(MAJOR_PROFILE, 0)
    assert estimate_key(c_major) == "C major"
    assert estimate_key(np.roll(MINOR_PROFILE, 9)) == "A minor"
    assert estimate_key(np.roll(MAJOR_PROFILE, 7)) == "G major"
    assert key_agreement(c_major, c_major) == pytest.approx(1.0)
    assert key_agreement(c_major, np.roll(MAJOR_PROFILE, 7)) == pytest.approx(0.5)  # a fifth
    assert key_agreement(c_major, np.roll(MINOR_PROFILE, 9)) == pytest.approx(0.3)  # relative minor
    assert key_agreement(c_major, np.roll(MAJOR_PROFILE, 6)) == pytest.approx(0.0)  # tritone away
    a = np.zeros(12)
    a[[0, 4, 7]] = 1.0  # C major triad
    b = np.zeros(12)
    b[[1, 5, 8]] = 1.0  # C# major triad: no common pitch class
    assert chroma_agreement(a, 2 * a) == pytest.approx(1.0)
    assert chroma_agreement(a, b) == pytest.approx(0.0)
    assert math.isnan(chroma_agreement(a, np.zeros(12))) and math.isnan(key_agreement(np.zeros(12), a))
    with pytest.raises(MagnetEvalError, match="12"):
        chroma_agreement(np.ones(11), a)


def test_features_of_synthetic_audio():
    beats = np.arange(0.5, 6.0, 0.5)  # 120 BPM
    f = alignment_features(_clicks(beats, 6.5), SR)
    assert f.onsets.size >= len(beats) - 1
    assert onset_f_measure(beats, f.onsets) > 0.9
    assert np.median(np.diff(f.beats)) == pytest.approx(0.5, abs=0.03)
    t = np.arange(int(2.0 * SR)) / SR
    a440 = alignment_features((0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), SR)
    assert int(np.argmax(a440.chroma)) == 9  # A
    silent = alignment_features(np.zeros(SR, np.float32), SR)
    assert silent.beats.size == 0 and not silent.chroma.any()


def test_streaming_metric_separates_aligned_from_misaligned_stems():
    beats = np.arange(0.5, 6.0, 0.5)
    ctx = alignment_features(_clicks(beats, 6.5), SR)
    on_beat = alignment_features(_clicks(beats, 6.5), SR)
    off_beat = alignment_features(_clicks(beats + 0.25, 6.5), SR)
    m = StemAlignment(n_bootstrap=20)
    tri = np.zeros(12)
    tri[[0, 4, 7]] = 1.0
    with_tone = AlignmentFeatures(ctx.beats, ctx.onsets, tri)
    m.update(["a", "b"], [with_tone, with_tone], [AlignmentFeatures(on_beat.beats, on_beat.onsets, tri), off_beat],
             [ctx, ctx], tonal=[True, False])
    res = {r.metric: r for r in m.compute()}
    assert res["onset_f"].per_sample["onset_f"]["a"] > 0.9 > 0.1 > res["onset_f"].per_sample["onset_f"]["b"]
    assert res["beat_f"].value == pytest.approx(1.0)
    # tonal values only for the pitched clip
    assert res["chroma_agreement"].details["n_defined"] == 1 and res["chroma_agreement"].value == pytest.approx(1.0)
    assert res["key_agreement"].value == pytest.approx(1.0)
    with pytest.raises(MagnetEvalError, match="twice"):
        m.update("a", ctx, ctx, ctx)
    with pytest.raises(MagnetEvalError, match="never called"):
        StemAlignment().compute()
