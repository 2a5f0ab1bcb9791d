"""StemGen in the system registry: a context mix and an instrument in, that instrument's stem out.

The model is `models/stemgen.py`; one clip is made by `stemgen_run.generate_stem`, the same code
`magnet-eval stem` runs.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .registry import Request, SystemFamily, register


class StemGenSystem:
    """A StemGen model and its codec; each request is answered alone (its own context and seed)."""

    family = "stemgen"

    def __init__(self, lm: Any, codec: Any, name: str, device: str):
        self.lm, self.codec, self.name, self.device = lm, codec, name, device

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    def settings(self, **decoding: Any) -> dict[str, Any]:
        from ..models.stemgen import StemGenDecoding

        return {"decoding": StemGenDecoding(**decoding).to_dict()}

    def generate(self, requests: Sequence[Request], seeds: Sequence[int], duration: float,
                 **decoding: Any) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        """decoding: StemGenDecoding's fields; the context is cut or padded to `duration`."""
        from ..audio import fit_length, load_audio
        from ..models.stemgen import StemGenDecoding
        from ..stemgen_run import generate_stem

        dec = StemGenDecoding(**decoding)
        out = []
        for r, seed in zip(requests, seeds):
            wav, _ = load_audio(r.audio, sr=self.sample_rate)
            wav = fit_length(wav, int(round(duration * self.sample_rate)))
            stem, _ = generate_stem(self.lm, self.codec, wav, str(r.instrument), dec, int(seed), self.device)
            out.append(stem)
        return out, self.sample_rate, {"clips": len(out)}


def build(spec: str, device: str = "cpu", dtype: Optional[str] = None, *, codec: Optional[str] = None,
          **_: Any) -> StemGenSystem:
    """A StemGen preset (seeded random weights) or a checkpoint of `save_stemgen` (float32 only)."""
    from ..models.stemgen import build_stemgen

    lm, cod = build_stemgen(spec, device, codec=codec)
    return StemGenSystem(lm, cod, spec, device)


def timed(spec: str, device: str = "cpu", dtype: Optional[str] = None) -> Any:
    """What `bench latency` times: encode a context, decode a stem, decode audio (`models/stemgen_generator.py`)."""
    from ..models.stemgen_generator import load_stemgen_generator
    from .magnet import torch_dtype

    return load_stemgen_generator(spec, device, torch_dtype(dtype))


def _presets() -> tuple[str, ...]:
    from ..models.stemgen import STEMGEN_PRESETS

    return tuple(STEMGEN_PRESETS)


FAMILY = register(SystemFamily(name="stemgen", needs=("audio", "instrument"), build=build, timed=timed,
                               presets=_presets(), checkpoint_kinds=("stemgen",)))
