"""Alignment features of one clip for `metrics.stem_alignment`: beat and onset times and a chroma profile.

Audio in, arrays out: the metric itself never touches audio (issue 15: metrics are free of I/O).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..audio import check_finite, resample, to_mono
from ..metrics.stem_alignment import SILENT, AlignmentFeatures
from .chroma import SAMPLE_RATE, ChromaExtractor

_EXTRACTORS: dict[int, object] = {}


def alignment_features(wav: np.ndarray, sample_rate: int) -> AlignmentFeatures:
    """Beats and onsets (librosa's tracker and onset detector) and the mean chroma profile of mono audio."""
    import librosa

    x = to_mono(np.asarray(wav, dtype=np.float32))
    check_finite(x, "alignment features")
    sr = int(sample_rate)
    if x.size == 0 or float(np.max(np.abs(x))) < SILENT:
        return AlignmentFeatures(np.zeros(0), np.zeros(0), np.zeros(12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, beats = librosa.beat.beat_track(y=x, sr=sr, units="time")
        onsets = librosa.onset.onset_detect(y=x, sr=sr, units="time", backtrack=False)
    if SAMPLE_RATE not in _EXTRACTORS:
        _EXTRACTORS[SAMPLE_RATE] = ChromaExtractor(SAMPLE_RATE, argmax=False)
    chroma = _EXTRACTORS[SAMPLE_RATE](resample(x, sr, SAMPLE_RATE))  # type: ignore[operator]
    return AlignmentFeatures(np.asarray(beats, np.float64), np.asarray(onsets, np.float64),
                             np.asarray(chroma, np.float64).mean(axis=0))
