"""VampNet in the system registry: an audio clip in, a variation out (tokens kept where its prompt mask says).

Built and run by `magnet_eval/vamp.py` (`load_vamp_system`, `vamp_audio`); a request's `prompt_mask` is
one or more `--prompt` strings of `prompts/masks.py` joined by ";" (none: keep everything).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .registry import Request, SystemFamily, register


class VampNetSystem:
    """A `vamp.VampSystem` that answers registry requests, one clip at a time (each its own input)."""

    family = "vampnet"

    def __init__(self, vamp_system: Any):
        self.vamp_system = vamp_system
        self.name = vamp_system.name

    @property
    def sample_rate(self) -> int:
        return int(self.vamp_system.codec.sample_rate)

    def settings(self, **decoding: Any) -> dict[str, Any]:
        return {"decoding": {k: getattr(v, "__dict__", v) for k, v in decoding.items()}}

    def generate(self, requests: Sequence[Request], seeds: Sequence[int], duration: float,
                 **decoding: Any) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        """decoding: `coarse` / `c2f` (VampDecoding) as `vamp_audio` takes them; the input is cut or padded to `duration`."""
        from ..audio import fit_length
        from ..prompts.masks import parse_prompts
        from ..vamp import read_input, vamp_audio

        out = []
        for r, seed in zip(requests, seeds):
            wav, sr = read_input(r.audio)
            wav = fit_length(wav, int(round(duration * sr)))
            masks = parse_prompts([p for p in (r.prompt_mask or "").split(";") if p.strip()])
            out.append(vamp_audio(self.vamp_system, wav, sr, masks, [int(seed)], **decoding)[0].audio)
        return out, self.sample_rate, {"clips": len(out)}


def build(spec: str, device: str = "cpu", dtype: Optional[str] = None, **_: Any) -> VampNetSystem:
    """A VampNet preset, a checkpoint of `save_vampnet`, or a folder of the released files (float32 only)."""
    from ..vamp import load_vamp_system

    return VampNetSystem(load_vamp_system(spec, device))


def timed(spec: str, device: str = "cpu", dtype: Optional[str] = None) -> Any:
    """Unconditional VampNet generation (`models/vampnet_generator.py`), what `bench latency` times."""
    from ..models.vampnet_generator import load_vampnet_generator
    from .magnet import torch_dtype

    return load_vampnet_generator(spec, device, torch_dtype(dtype))


def _presets() -> tuple[str, ...]:
    from ..models.vampnet import PRESETS

    return tuple(PRESETS)


FAMILY = register(SystemFamily(name="vampnet", needs=("audio",), build=build, timed=timed, presets=_presets(),
                               checkpoint_kinds=("vampnet",)))
