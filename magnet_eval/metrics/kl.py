"""KL divergence between classifier label distributions of paired clips (audiocraft's protocol).

Per clip: the audio is cut, without padding, into segments of the classifier's length
(`segment_seconds`), segments of 0.15 s or less are dropped, the classifier's per-segment
probabilities are averaged into one distribution over its labels. For a generated clip g and
the reference clip r of the same prompt id:

    kl     = KL(r || g) = sum_c p_r (log p_r - log(p_g + 1e-6))   (audiocraft's `kld`)
    kl_rev = KL(g || r) = sum_c p_g (log p_g - log(p_r + 1e-6))

with 0 log 0 = 0; reported as the mean over clips, with a clip bootstrap interval and the
per-clip values. Clips are paired by prompt id, never by order.

With PaSST the probabilities are a softmax over the 527 AudioSet logits (a distribution
already). Offline the same computation runs over musicnn's 50 tag posteriors (`kl_musicnn`):
those are independent sigmoids (multi-label), so the averaged posteriors of a clip are
divided by their sum to make them a distribution before the KL (documented choice; the
absolute values are not comparable with PaSST's `kl`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import AudioError, MagnetEvalError
from ._common import MetricResult, bootstrap_counts, bootstrap_interval, check_ids

EPS = 1e-6
MIN_SEGMENT_SECONDS = 0.15


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = EPS) -> np.ndarray:
    """KL(p || q) along the last axis, natural log, 0 log 0 = 0, with `eps` added to q only.

    The one KL of the toolkit. eps = 1e-6 (default) is audiocraft's `kld` for classifier
    probabilities, where q can hold exact zeros; MIRDD passes eps = 0 because its additive
    smoothing already keeps q > 0 (an eps would shift its values).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q + eps)), 0.0)
    return terms.sum(axis=-1)


def segments(wav: np.ndarray, sr: int, segment_seconds: float | None) -> list[np.ndarray]:
    """Consecutive segments of `segment_seconds` without padding; the tail is kept if longer than 0.15 s."""
    wav = np.asarray(wav)
    if not segment_seconds:
        return [wav] if wav.shape[-1] > MIN_SEGMENT_SECONDS * sr else []
    seg = int(round(segment_seconds * sr))
    out = []
    for s in range(0, wav.shape[-1], seg):
        piece = wav[..., s:s + seg]
        if piece.shape[-1] > MIN_SEGMENT_SECONDS * sr:
            out.append(piece)
    return out


def normalize_distribution(p: np.ndarray) -> np.ndarray:
    """Divide by the sum (multi-label posteriors -> a distribution); a zero row becomes uniform."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    s = p.sum(axis=-1, keepdims=True)
    return np.where(s > 0, p / np.where(s > 0, s, 1.0), 1.0 / p.shape[-1])


def clip_probabilities(classifier, wav: np.ndarray, sr: int, *, multilabel: bool | None = None,
                       source: str = "") -> np.ndarray:
    """One label distribution per clip: segment, classify, drop <= 0.15 s segments, average (see module doc).

    `classifier` has `probs(audio, sr) -> [segments, C]` and optionally `segment_seconds`
    (the model's input length) and `multilabel` (sigmoid outputs to renormalise).
    """
    seg_s = getattr(classifier, "segment_seconds", None)
    rows = []
    for piece in segments(wav, sr, seg_s):
        p = classifier.probs(piece, sr)
        if hasattr(p, "detach"):
            p = p.detach().cpu().double().numpy()
        p = np.asarray(p, dtype=np.float64)
        if p.ndim == 1:
            p = p[None]
        if p.shape[0]:
            rows.append(p)
    if not rows:
        n = int(np.asarray(wav).shape[-1])
        raise AudioError(f"{source or 'clip'}: {n / sr:.4g} s of audio is shorter than the KL protocol's minimum "
                         f"(segments of {MIN_SEGMENT_SECONDS} s or less are dropped): no segment to classify; "
                         "it is not scored")
    avg = np.concatenate(rows, axis=0).mean(axis=0)
    if multilabel is None:
        multilabel = bool(getattr(classifier, "multilabel", False))
    if multilabel or abs(avg.sum() - 1.0) > 1e-3:
        avg = normalize_distribution(avg)
    if not np.isfinite(avg).all():
        raise MagnetEvalError("classifier returned NaN/inf probabilities")
    return avg


class KL:
    """Paired KL: `update(ids, generated_probs, reference_probs)` ([B, C] each, rows paired), then `compute()`.

    `name` is the reported metric ("kl" for PaSST, "kl_musicnn" for musicnn tags); the
    reverse direction is reported as name + "_rev".
    """

    def __init__(self, name: str = "kl", *, n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0):
        self.name = name
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self.ids: list[str] = []
        self._gen: list[np.ndarray] = []
        self._ref: list[np.ndarray] = []

    def update(self, ids: Sequence[str] | str, generated_probs: np.ndarray, reference_probs: np.ndarray) -> None:
        if isinstance(ids, str):
            ids = [ids]
        g = np.atleast_2d(np.asarray(generated_probs, dtype=np.float64))
        r = np.atleast_2d(np.asarray(reference_probs, dtype=np.float64))
        if g.shape != r.shape:
            raise MagnetEvalError(f"{self.name}: generated probabilities {g.shape} vs reference {r.shape}")
        ids = check_ids(ids, g.shape[0], set(self.ids))
        if self._gen and g.shape[1] != self._gen[0].shape[0]:
            raise MagnetEvalError(f"{self.name}: number of classes changed")
        if (g < -1e-9).any() or (r < -1e-9).any() or not (np.isfinite(g).all() and np.isfinite(r).all()):
            raise MagnetEvalError(f"{self.name}: probabilities must be finite and non-negative")
        self.ids += ids
        self._gen += list(g)
        self._ref += list(r)

    def compute(self) -> list[MetricResult]:
        """Two results: KL(ref || gen) as `name`, KL(gen || ref) as `name_rev`."""
        if not self.ids:
            raise MagnetEvalError(f"{self.name}: no paired clips were given")
        g = np.stack(self._gen)
        r = np.stack(self._ref)
        out = []
        rng = np.random.default_rng(self.seed)
        counts = bootstrap_counts(rng, len(self.ids), self.n_bootstrap) if len(self.ids) >= 2 and self.n_bootstrap else None
        for name, vals in ((self.name, kl_divergence(r, g)), (self.name + "_rev", kl_divergence(g, r))):
            value = float(vals.mean())
            lo = hi = math.nan
            if counts is not None:
                boots = (counts @ vals) / len(vals)
                lo, hi = bootstrap_interval(boots, value, self.ci)
            direction = "KL(reference || generated)" if name == self.name else "KL(generated || reference)"
            out.append(MetricResult(
                name, value, lo, hi, n_generated=len(self.ids), n_reference=len(self.ids),
                per_sample={name: dict(zip(self.ids, map(float, vals)))},
                details={"direction": direction, "eps": EPS, "n_classes": int(g.shape[1]),
                         "paired_by": "prompt id", "min_segment_seconds": MIN_SEGMENT_SECONDS},
            ))
        return out
