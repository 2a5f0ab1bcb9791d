"""Model presets with random weights: `magnet-{tiny,small,medium,large}` and `musicgen-{...}`.

small / medium / large are the released scales (magnet-facts.md: 1024/16/24, 1536/24/48,
2048/32/48; FFN 4*dim; EnCodec 32 kHz 4 x 2048 at 50 Hz; T5-base conditioning) and exist for
latency and memory benchmarks, where the weights do not matter. `tiny` is a CPU-sized model
(dim 256, 4 heads, 4 layers) over the project's tiny codec with the offline MiniLM text encoder;
the training issue trains it. The codec's own numbers (codebooks, cardinality, frame rate,
sample rate) always win over the preset's, so the LM matches whatever codec it is paired with.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from ..errors import MagnetEvalError
from .lm import TEXT_ENCODER_DIMS, LMConfig

SCALES: dict[str, dict[str, int]] = {
    "tiny": {"dim": 256, "num_heads": 4, "num_layers": 4},
    "small": {"dim": 1024, "num_heads": 16, "num_layers": 24},
    "medium": {"dim": 1536, "num_heads": 24, "num_layers": 48},
    "large": {"dim": 2048, "num_heads": 32, "num_layers": 48},
}
KINDS = ("magnet", "musicgen")
PRESET_NAMES = tuple(f"{k}-{s}" for k in KINDS for s in SCALES)


def is_preset(name: str) -> bool:
    return name in PRESET_NAMES


MAGNET_RESTRICTED_CONTEXT = 5  # stages > 0 attend within |q - k| <= 5 frames, the paper's


def preset_config(name: str, codec: Optional[Any] = None, text_encoder: Optional[str] = None) -> LMConfig:
    """The LMConfig of a preset; `codec` (an object with n_q, card, frame_rate, sample_rate) overrides those."""
    if name not in PRESET_NAMES:
        raise MagnetEvalError(f"unknown preset {name!r}; presets: {', '.join(PRESET_NAMES)}")
    kind, scale = name.split("-", 1)
    tiny = scale == "tiny"
    enc = text_encoder or ("minilm" if tiny else "t5-base")
    cfg = LMConfig(
        kind=kind,
        **SCALES[scale],
        hidden_scale=4,
        n_q=4,
        card=2048,
        causal=(kind == "musicgen"),
        pattern="parallel" if kind == "magnet" else "delay",
        delays=[0, 1, 2, 3],
        subcodes_context=MAGNET_RESTRICTED_CONTEXT if kind == "magnet" else None,
        span_len=3,
        segment_duration=10.0,
        frame_rate=50.0,
        sample_rate=32000,
        text_encoder=enc,
        text_dim=TEXT_ENCODER_DIMS.get(enc, 768),
        codec="tiny" if tiny else "encodec_32khz",
    )
    if codec is not None:
        n_q = int(codec.n_q)
        cfg = replace(cfg, n_q=n_q, card=int(codec.card), frame_rate=float(codec.frame_rate),
                      sample_rate=int(codec.sample_rate), delays=list(range(n_q)))
    return cfg
