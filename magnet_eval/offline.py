"""Imports of the field's libraries that reach for the network at import time, made offline-safe.

laion_clap builds tokenizers with `from_pretrained` at import time; without HF_HUB_OFFLINE the
import spends minutes in retries, and with it transformers silently builds dummy tokenizers
(vocabulary of a handful of tokens). `import_laion_clap` sets the flag, and
`assert_real_tokenizer` refuses such a dummy before any text embedding is computed.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from .errors import MissingWeightsError

# Real tokenizers for the text encoders used in the field have tens of thousands of entries.
MIN_REAL_VOCAB = 1000


def set_offline_env() -> None:
    """Default the hub libraries to offline mode (a user who exported other values keeps them)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def import_laion_clap() -> ModuleType:
    set_offline_env()
    return importlib.import_module("laion_clap")


def import_frechet_audio_distance() -> ModuleType:
    set_offline_env()
    return importlib.import_module("frechet_audio_distance")


def tokenizer_vocab_size(tokenizer) -> int:
    try:
        return len(tokenizer)
    except TypeError:
        return int(getattr(tokenizer, "vocab_size", 0) or 0)


def is_dummy_tokenizer(tokenizer) -> bool:
    """True for the placeholder tokenizers transformers builds when offline and nothing is cached."""
    return tokenizer is None or tokenizer_vocab_size(tokenizer) < MIN_REAL_VOCAB


def assert_real_tokenizer(tokenizer, name: str, where: str) -> None:
    """Refuse a dummy tokenizer: text embeddings from it would be garbage."""
    if is_dummy_tokenizer(tokenizer):
        size = tokenizer_vocab_size(tokenizer) if tokenizer is not None else 0
        raise MissingWeightsError(
            f"The {name} tokenizer is a dummy (vocabulary size {size}) built offline because its files "
            f"are not cached. Put the tokenizer files of '{name}' in the Hugging Face cache "
            f"({where}) and run again; text embeddings from a dummy tokenizer are meaningless."
        )
