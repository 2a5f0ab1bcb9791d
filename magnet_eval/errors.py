"""Exception types: every error a user can cause is one of these, with a message that says what to do."""


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


class IncompatibleStatsError(MagnetEvalError):
    """Reference statistics made with another embedder, weights or sample rate."""
