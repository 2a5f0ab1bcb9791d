"""Exception types: every error a user can cause is one of these, with a message that says what to do."""

from contextlib import contextmanager
from typing import Iterator


class MagnetEvalError(Exception):
    """Base class; the CLI prints these without a traceback and exits with status 2."""


class AudioError(MagnetEvalError):
    """Corrupt, empty, zero-length or non-finite audio."""


class ManifestError(MagnetEvalError):
    """A manifest or caption file that is malformed or does not match its files."""


class CheckpointError(MagnetEvalError):
    """A checkpoint with missing/unexpected keys, wrong shapes or an unknown layout."""


class MissingWeightsError(MagnetEvalError, FileNotFoundError):
    """Pretrained weights that are not on this machine; the message names the file and where to put it."""


class ModelLoadError(MagnetEvalError):
    """A model whose files are present but that cannot be built: a missing or changed package
    (ImportError, a transformers API change) or a failing constructor. Never reported as
    "weights not available", which means a missing file only; the message names the cause."""


class NotComparableError(MagnetEvalError):
    """Two results that `compare` must not compare (another reference, embedder, weights or
    protocol, or too few prompts in common); the message names what differs."""


class IncompatibleStatsError(MagnetEvalError):
    """Reference statistics made with another embedder, weights or sample rate."""


class InvalidOptionError(MagnetEvalError):
    """A command-line option or library argument with a value out of its range; the message names the option."""


class OutputPathError(MagnetEvalError):
    """An output path that cannot be written (checked before long work starts); the message names the path."""


class LedgerError(MagnetEvalError):
    """A results ledger that is corrupt, not a ledger, or read-only; nothing is appended to it."""


@contextmanager
def model_load_errors(what: str) -> Iterator[None]:
    """Around loading a model: our own errors pass unchanged (a MissingWeightsError stays "weights
    not available"); anything else (ImportError, TypeError from an API change, a failing
    constructor) becomes a ModelLoadError that names `what` and the cause, never missing weights."""
    try:
        yield
    except MagnetEvalError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{what} cannot be loaded: {type(exc).__name__}: {exc}") from exc
