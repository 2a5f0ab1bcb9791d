"""The Embedder contract shared by FAD/KAD/CLAP: load weights once, embed one mono clip into frames.

Every embedder is one small class with
- `name`, `sample_rate`, `dim`: what it is, the rate it runs at, the width of its frames;
- `weights_id`: a hash of the weight file(s) plus any option that changes the output (layer,
  checkpoint variant), so embedding caches and reference statistics can never be mixed up;
- `version`: bumped when our own pre-processing changes (part of the embedding-cache key);
- `clip_handling`: one sentence on how a clip becomes frames (windowing, padding, dropping);
- `load(weights=None) -> self`: find the weights (a path, or the usual cache) and build the
  model; a clear MissingWeightsError naming the file and the cache path when they are absent;
- `embed(audio, sr) -> np.ndarray [frames, dim]` float32: any rate in, resampled with
  `magnet_eval.audio.resample` (the toolkit's one resampler) to the embedder's own rate.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..audio import check_finite, resample, to_mono
from ..errors import AudioError, CheckpointError, MagnetEvalError


def bytes_sha1(*parts: bytes) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def weight_file(what: str, given: Path | None, defaults: Sequence[Path], source: str) -> Path:
    """The file `given` (which must exist) or else the first existing default; MissingWeightsError says
    what is missing, where it was searched, and to put it at `given` or the first default."""
    from ..paths import find_weights

    return find_weights(what, [given] if given else list(defaults), put_here=given or defaults[0], source=source)


def load_strict(net: Any, state_dict: dict, misfit: str) -> Any:
    """`net` with `state_dict` loaded strictly (every key and shape), so a wrong file never half-loads.

    A mismatch is a CheckpointError "<misfit>: <torch's list of missing/unexpected keys>"; `misfit`
    names the file and what it failed to fit.
    """
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{misfit}: {exc}") from exc
    return net


def make_weights_id(digest: str, *options: Any) -> str:
    """`sha1:<16 hex>` of the weights, with the output-changing options appended (`/opt1/opt2`)."""
    wid = f"sha1:{digest[:16]}"
    extra = [str(o) for o in options if o not in (None, "")]
    return wid + ("/" + "/".join(extra) if extra else "")


def default_device(device: str | None = None) -> str:
    if device:
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                   "xavier_normal_")


@contextlib.contextmanager
def skip_random_init(*modules):
    """Skip random weight initialisation while a network is built for a strict state-dict load.

    Every parameter and persistent buffer is overwritten by the checkpoint, so drawing millions
    of (truncated-)normal numbers first only costs time (seconds for HTSAT, PaSST, Cnn14).
    `modules`: extra modules whose own module-level `trunc_normal_` helper is used at init.
    Not thread-safe: models are built one at a time.
    """
    import torch

    def keep(tensor, *_args, **_kwargs):
        return tensor

    saved = [(torch.nn.init, n, getattr(torch.nn.init, n)) for n in _INIT_FUNCTIONS]
    saved += [(m, "trunc_normal_", m.trunc_normal_) for m in modules if m is not None and hasattr(m, "trunc_normal_")]
    try:
        for owner, n, _ in saved:
            setattr(owner, n, keep)
        yield
    finally:
        for owner, n, f in saved:
            setattr(owner, n, f)


def prepare_mono(audio, sr: int, target_sr: int, what: str) -> np.ndarray:
    """[samples] or [channels, samples] (numpy or torch) -> validated mono float32 at `target_sr`."""
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().float().numpy()
    wav = np.asarray(audio, dtype=np.float32)
    if wav.ndim == 2 and wav.shape[0] > 16 >= wav.shape[1]:
        wav = wav.T  # channels-last [samples, channels] (soundfile's layout) -> [channels, samples]
    if wav.ndim > 2:
        raise AudioError(f"{what}: expected mono [samples] or [channels, samples], got shape {wav.shape}")
    wav = to_mono(wav)
    check_finite(wav, what)
    wav = resample(wav, int(sr), int(target_sr))
    return np.ascontiguousarray(wav, dtype=np.float32)


class Embedder(ABC):
    """Base class; subclasses implement `_load(weights)` and `_embed(mono wav at self.sample_rate)`."""

    name: str = ""
    sample_rate: int = 16000
    dim: int = 0
    version: str = "1"
    clip_handling: str = ""
    #: shortest input (seconds) accepted: one analysis window of the front end (the registry sets the
    #: value per name, see registry.MIN_SECONDS); shorter clips raise AudioError instead of being scored
    min_seconds: float = 0.0
    #: True when `_embed_batch` runs several clips in one forward pass (`embed_files` then batches)
    batched: bool = False

    def __init__(self, device: str | None = None) -> None:
        self.device = device  # resolved at load(): building an embedder imports no torch
        self.weights_id: str = ""
        self.weights_path: Path | None = None
        self.model: Any = None

    # -- loading -------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self, weights: str | Path | None = None) -> "Embedder":
        """Find and load the weights (a path, or the default cache location); returns self."""
        self.device = default_device(self.device)
        self._load(Path(weights).expanduser() if weights else None)
        if not self.weights_id:
            raise MagnetEvalError(f"embedder {self.name}: loading did not set a weights id")
        return self

    @abstractmethod
    def _load(self, weights: Path | None) -> None:
        """Build the model and set self.model, self.weights_id (and self.weights_path)."""

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise MagnetEvalError(f"embedder {self.name}: call .load() before .embed()")

    # -- embedding -----------------------------------------------------------------------

    def prepare(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Mono float32 at the embedder's rate, validated (AudioError on empty / NaN / inf)."""
        return prepare_mono(audio, sr, int(self.sample_rate), f"input to the {self.name} embedder")

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Frames [frames, dim] (float32) of one clip; see `clip_handling` for how frames are cut."""
        self._require_loaded()
        wav = self.prepare(audio, sr)
        self.check_duration(wav)
        return self._checked(self._embed(wav))

    def embed_batch(self, audios: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        """`embed` of several clips; subclasses that can run them in one forward pass override
        `_embed_batch`, and each clip's frames must equal what `embed` gives for it alone."""
        self._require_loaded()
        wavs = [self.prepare(a, sr) for a in audios]
        for w in wavs:
            self.check_duration(w)
        return [self._checked(o) for o in self._embed_batch(wavs)]

    def _embed_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """[frames, dim] per clip (default: one `_embed` each)."""
        return [self._embed(w) for w in wavs]

    def _checked(self, out: Any) -> np.ndarray:
        """float32 [frames, dim] numpy, finite, of this embedder's width."""
        if hasattr(out, "detach"):
            out = out.detach().cpu().float().numpy()
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or (self.dim and out.shape[1] != self.dim):
            raise MagnetEvalError(f"embedder {self.name}: produced shape {out.shape}, expected [frames, {self.dim}]")
        if not np.isfinite(out).all():
            raise MagnetEvalError(f"embedder {self.name}: produced NaN/inf embeddings")
        return out

    def min_samples(self) -> int:
        """Shortest accepted input in samples at the embedder's rate (at least 2: one sample is not audio)."""
        return max(2, int(np.ceil(float(self.min_seconds) * int(self.sample_rate) - 1e-9)))

    def check_duration(self, wav: np.ndarray, what: str | None = None) -> None:
        """Refuse a clip shorter than `min_seconds`: padded up to a frame it would be scored as padding.

        The callers that know the file (`embedding_cache.cached_per_file`) prefix its path.
        """
        n = int(wav.shape[-1])
        if n < self.min_samples():
            raise AudioError(f"{what or 'clip'}: {n} samples ({n / int(self.sample_rate):.4g} s at "
                             f"{int(self.sample_rate)} Hz) is shorter than the {self.name} embedder's minimum of "
                             f"{self.min_seconds:g} s (one analysis window of its front end); it is not scored")

    @abstractmethod
    def _embed(self, wav: np.ndarray) -> np.ndarray:
        """[frames, dim] from mono float32 audio already at self.sample_rate."""

    def describe(self) -> dict:
        """Provenance fields for reports and stats files."""
        return {"embedder": self.name, "weights_id": self.weights_id, "sample_rate": int(self.sample_rate),
                "dim": int(self.dim), "version": self.version,
                "weights_path": str(self.weights_path) if self.weights_path else "",
                "clip_handling": self.clip_handling}

    def __repr__(self) -> str:
        state = self.weights_id or "not loaded"
        return f"<{type(self).__name__} {self.name} {self.sample_rate} Hz dim={self.dim} ({state})>"
