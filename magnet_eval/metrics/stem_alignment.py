"""How well a stem fits its context: rhythmic (beats, onsets) and tonal (chroma, key) agreement.

StemGen answers a mix with one stem; FAD says whether the stem sounds like the instrument, not
whether it plays *with* the mix. These metrics compare a stem with its context (issue 11):

- beat F-measure: `mir_eval.beat.f_measure` between the beats of the context and the beats of
  the stem + context mix (a stem that fights the groove moves the tracked beats of the mix);
  the 70 ms window of mir_eval, no trimming of the first 5 s (our clips are 5-10 s long);
- onset F-measure: `mir_eval.onset.f_measure` (50 ms window) between the context's onsets and
  the stem's onsets (players in time share onsets);
- chroma agreement: cosine of the time-averaged chroma profiles of stem and context (chroma from
  `mir.chroma.ChromaExtractor` without argmax; each frame is max-normalised, so loud and
  quiet notes count alike and silent frames count ~0);
- key agreement: `mir_eval.key.weighted_score` between the keys estimated (Krumhansl-Kessler
  profiles) from the two chroma profiles: 1 same key, 0.5 a fifth apart, 0.3 relative, 0.2
  parallel, 0 otherwise.

Metrics take arrays (beat and onset times, chroma profiles) and return numbers; `mir.alignment.alignment_features`
turns audio into those arrays. Tonal values are skipped (NaN) for unpitched stems (the caller
passes `tonal=False`, e.g. for drums) and when a profile is silent. The streaming metric
`StemAlignment` averages over clips with a clip bootstrap interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import MagnetEvalError
from ._common import MetricResult, bootstrap_counts, bootstrap_interval, check_ids

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
METRICS: tuple[str, ...] = ("beat_f", "onset_f", "chroma_agreement", "key_agreement")
BEAT_WINDOW = 0.07  # mir_eval's default f_measure_threshold (seconds)
ONSET_WINDOW = 0.05  # mir_eval's default onset window (seconds)
SILENT = 1e-6


@dataclass
class AlignmentFeatures:
    """What the alignment metrics read of one clip: beat and onset times (s) and a 12-bin chroma profile."""

    beats: np.ndarray
    onsets: np.ndarray
    chroma: np.ndarray


def _times(x: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    if not np.isfinite(arr).all() or (arr.size and arr[0] < 0):
        raise MagnetEvalError(f"{what}: event times must be finite and >= 0")
    return arr


def _event_f_measure(reference: Sequence[float], estimated: Sequence[float], what: str, score) -> float:
    """NaN when neither clip has events (nothing to agree on), 0 when one has none, else score(ref, est)."""
    ref, est = _times(reference, f"reference {what}"), _times(estimated, f"estimated {what}")
    if ref.size == 0 and est.size == 0:
        return math.nan
    if ref.size == 0 or est.size == 0:
        return 0.0
    return float(score(ref, est))


def beat_f_measure(reference_beats: Sequence[float], estimated_beats: Sequence[float],
                   window: float = BEAT_WINDOW) -> float:
    """mir_eval's beat F-measure; NaN when neither clip has beats, 0 when one has none."""
    import mir_eval

    return _event_f_measure(reference_beats, estimated_beats, "beats",
                            lambda r, e: mir_eval.beat.f_measure(r, e, f_measure_threshold=window))


def onset_f_measure(reference_onsets: Sequence[float], estimated_onsets: Sequence[float],
                    window: float = ONSET_WINDOW) -> float:
    """mir_eval's onset F-measure (each onset matched at most once within `window`); NaN / 0 as `beat_f_measure`."""
    import mir_eval

    return _event_f_measure(reference_onsets, estimated_onsets, "onsets",
                            lambda r, e: mir_eval.onset.f_measure(r, e, window=window)[0])


def _profile(chroma: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(chroma, dtype=np.float64).reshape(-1)
    if p.shape != (12,) or not np.isfinite(p).all() or (p < 0).any():
        raise MagnetEvalError(f"a chroma profile must be 12 finite non-negative values, got shape {p.shape}")
    return p


def chroma_agreement(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cosine of two chroma profiles (1 = same pitch-class distribution); NaN when either is silent."""
    pa, pb = _profile(a), _profile(b)
    na, nb = np.linalg.norm(pa), np.linalg.norm(pb)
    if na < SILENT or nb < SILENT:
        return math.nan
    return float(pa @ pb / (na * nb))


def estimate_key(chroma: Sequence[float] | np.ndarray) -> Optional[str]:
    """'C major' / 'A minor' ...: the Krumhansl-Kessler profile best correlated with the chroma; None if silent."""
    p = _profile(chroma)
    if np.linalg.norm(p) < SILENT or np.ptp(p) < SILENT:
        return None
    best, best_r = None, -math.inf
    for mode, prof in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(p, np.roll(prof, tonic))[0, 1])
            if r > best_r:
                best, best_r = f"{PITCH_CLASSES[tonic]} {mode}", r
    return best


def key_agreement(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """mir_eval's weighted key score between the keys of two chroma profiles; NaN when either is silent."""
    import mir_eval

    ka, kb = estimate_key(a), estimate_key(b)
    if ka is None or kb is None:
        return math.nan
    return float(mir_eval.key.weighted_score(ka, kb))


def alignment_scores(context: AlignmentFeatures, stem: AlignmentFeatures, mix: AlignmentFeatures,
                     tonal: bool = True) -> dict[str, float]:
    """The four values of one (context, stem, stem + context mix) triple; tonal ones NaN when `tonal` is False."""
    return {
        "beat_f": beat_f_measure(context.beats, mix.beats),
        "onset_f": onset_f_measure(context.onsets, stem.onsets),
        "chroma_agreement": chroma_agreement(context.chroma, stem.chroma) if tonal else math.nan,
        "key_agreement": key_agreement(context.chroma, stem.chroma) if tonal else math.nan,
    }


class StemAlignment:
    """Streaming alignment metrics: `update(ids, contexts, stems, mixes, tonal)` then `compute()` (one result each)."""

    name = "stem_alignment"

    def __init__(self, *, n_bootstrap: int = 200, ci: float = 0.95, seed: int = 0):
        self.n_bootstrap, self.ci, self.seed = int(n_bootstrap), float(ci), int(seed)
        self.reset()

    def reset(self) -> None:
        self._ids: list[str] = []
        self._values: dict[str, list[float]] = {m: [] for m in METRICS}

    def update(self, ids: Sequence[str] | str, contexts: Sequence[AlignmentFeatures] | AlignmentFeatures,
               stems: Sequence[AlignmentFeatures] | AlignmentFeatures,
               mixes: Sequence[AlignmentFeatures] | AlignmentFeatures, tonal: Sequence[bool] | bool = True) -> None:
        """Add clips: the context, the stem and their mix of each; `tonal` False skips chroma / key (drums)."""
        if isinstance(ids, str):
            ids, contexts, stems, mixes = [ids], [contexts], [stems], [mixes]  # type: ignore[list-item]
        ids = check_ids(ids, len(contexts), set(self._ids))  # type: ignore[arg-type]
        flags = [tonal] * len(ids) if isinstance(tonal, bool) else list(tonal)
        if not (len(stems) == len(mixes) == len(flags) == len(ids)):  # type: ignore[arg-type]
            raise MagnetEvalError(f"{len(ids)} contexts but {len(stems)} stems, {len(mixes)} mixes, "  # type: ignore[arg-type]
                                  f"{len(flags)} tonal flags")
        for clip_id, c, s, m, t in zip(ids, contexts, stems, mixes, flags):  # type: ignore[arg-type]
            scores = alignment_scores(c, s, m, bool(t))
            self._ids.append(clip_id)
            for k in METRICS:
                self._values[k].append(scores[k])

    def compute(self) -> list[MetricResult]:
        """Per metric: the mean over the clips where it is defined, with a clip bootstrap interval."""
        if not self._ids:
            raise MagnetEvalError("stem alignment: no clip to score (update was never called)")
        out = []
        for k in METRICS:
            vals = np.asarray(self._values[k], dtype=np.float64)
            ok = np.isfinite(vals)
            ids = [i for i, good in zip(self._ids, ok) if good]
            v = vals[ok]
            if v.size == 0:
                out.append(MetricResult(k, math.nan, status="not defined for these clips",
                                        n_generated=len(self._ids), details={"n_defined": 0}))
                continue
            value = float(v.mean())
            lo = hi = math.nan
            if self.n_bootstrap > 0 and v.size >= 2:
                w = bootstrap_counts(np.random.default_rng(self.seed), v.size, self.n_bootstrap)
                lo, hi = bootstrap_interval(list((w @ v) / v.size), value, self.ci)
            out.append(MetricResult(k, value, lo, hi, n_generated=len(self._ids), n_reference=len(self._ids),
                                    per_sample={k: dict(zip(ids, map(float, v)))},
                                    details={"n_defined": int(v.size), "ci": self.ci}))
        return out


__all__ = ["AlignmentFeatures", "METRICS", "StemAlignment", "alignment_features", "alignment_scores",
           "beat_f_measure", "chroma_agreement", "estimate_key", "key_agreement", "onset_f_measure"]
