"""CLAP score: mean cosine similarity between each prompt's text embedding and its audio embedding.

Text and audio are paired by prompt id (never by file listing order). The audio side is made
deterministic: laion_clap crops inputs longer than 10 s at a random offset, so clips are cut
here into consecutive 10 s windows from the start (a tail shorter than 10 s is dropped when
at least one full window exists; a clip shorter than 10 s is passed whole and laion_clap
repeat-pads it, which is deterministic); the L2-normalised window embeddings are averaged.
The same audio therefore always gets the same score. The checkpoint name is recorded in the
details, because the score depends strongly on it. A dummy (offline placeholder) tokenizer is
refused before any text is embedded.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import MagnetEvalError
from ..offline import assert_real_tokenizer
from ._common import MetricResult, bootstrap_counts, bootstrap_interval, check_ids

CLAP_SAMPLE_RATE = 48000
WINDOW_SECONDS = 10.0


def _unit(x: np.ndarray) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    if (n == 0).any():
        raise MagnetEvalError("CLAP returned an all-zero embedding")
    return x / n


def crop_windows(wav: np.ndarray, sr: int, window_seconds: float = WINDOW_SECONDS) -> list[np.ndarray]:
    """Deterministic 10 s windows from the start (see module doc)."""
    win = int(round(window_seconds * sr))
    n = wav.shape[-1]
    if n <= win:
        return [wav]
    return [wav[..., s:s + win] for s in range(0, n - win + 1, win)]


def audio_embedding(embedder, wav: np.ndarray, sr: int) -> np.ndarray:
    """One unit-norm CLAP audio embedding per clip: mean of the unit-norm embeddings of its windows."""
    rows = []
    for piece in crop_windows(wav, sr):
        e = _unit(embedder.embed(piece, sr))
        rows.append(e.reshape(-1, e.shape[-1]))
    return _unit(np.concatenate(rows, axis=0).mean(axis=0))


def check_tokenizer(embedder) -> None:
    """Refuse a CLAP text branch built on transformers' offline dummy tokenizer."""
    tok = getattr(embedder, "tokenizer", None)
    if tok is None and hasattr(embedder, "model"):
        tok = getattr(embedder.model, "tokenizer", None)
    if tok is not None:
        assert_real_tokenizer(tok, "roberta-base", "the Hugging Face cache")


def text_embeddings(embedder, texts: Sequence[str]) -> np.ndarray:
    check_tokenizer(embedder)
    if any(not (t or "").strip() for t in texts):
        raise MagnetEvalError("CLAP score needs a caption for every clip; some prompts are empty")
    return _unit(embedder.embed_text(list(texts)))


class CLAPScore:
    """`update(ids, text_embeddings, audio_embeddings)` (rows paired by id), then `compute()`."""

    name = "clap"

    def __init__(self, checkpoint: str = "", *, n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0):
        self.checkpoint = checkpoint
        self.n_bootstrap = int(n_bootstrap)
        self.ci = float(ci)
        self.seed = int(seed)
        self.ids: list[str] = []
        self._cos: list[float] = []

    def update(self, ids: Sequence[str] | str, text_emb: np.ndarray, audio_emb: np.ndarray) -> None:
        if isinstance(ids, str):
            ids = [ids]
        t = _unit(np.atleast_2d(text_emb))
        a = _unit(np.atleast_2d(audio_emb))
        if t.shape != a.shape:
            raise MagnetEvalError(f"CLAP: text embeddings {t.shape} vs audio embeddings {a.shape}")
        ids = check_ids(ids, t.shape[0], set(self.ids))
        self.ids += ids
        self._cos += list(map(float, np.einsum("ij,ij->i", t, a)))

    def compute(self) -> MetricResult:
        if not self.ids:
            raise MagnetEvalError("CLAP score: no clips were given")
        vals = np.asarray(self._cos)
        lo = hi = math.nan
        if len(vals) >= 2 and self.n_bootstrap:
            counts = bootstrap_counts(np.random.default_rng(self.seed), len(vals), self.n_bootstrap)
            lo, hi = bootstrap_interval((counts @ vals) / len(vals), float(vals.mean()), self.ci)
        return MetricResult(
            "clap", float(vals.mean()), lo, hi, n_generated=len(vals),
            per_sample={"clap": dict(zip(self.ids, map(float, vals)))},
            details={"checkpoint": self.checkpoint, "paired_by": "prompt id",
                     "crop": f"consecutive {WINDOW_SECONDS:g} s windows from the start, unit embeddings averaged",
                     "sample_rate": CLAP_SAMPLE_RATE},
        )
