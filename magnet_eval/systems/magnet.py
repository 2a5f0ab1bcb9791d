"""MAGNeT in the system registry (text in, audio out), and `LMSystem`, which MusicGen shares.

Both families are `models/generator.Generator`s (one loader for presets, checkpoints and hub
names); this module adds what a run records and keeps: the rescorer and the audio prompt (MAGNeT
options), and the settings a resumed run must share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import MagnetEvalError
from .registry import Request, SystemFamily, register

TORCH_DTYPES = {None: None, "float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
                "bfloat16": "bfloat16", "bf16": "bfloat16"}


def torch_dtype(name: Optional[str]) -> Any:
    """torch.float32 / float16 / bfloat16 for a name (None: the model's own)."""
    import torch

    if name not in TORCH_DTYPES:
        raise MagnetEvalError(f"--dtype must be float32, float16 or bfloat16, got {name!r}")
    return None if name is None else getattr(torch, TORCH_DTYPES[name])


class LMSystem:
    """A MAGNeT or MusicGen `Generator` as a registry system; `generator` is the model itself (latency)."""

    def __init__(self, generator: Any, family: str, prompt_codes: Any = None,
                 prompt_record: Optional[dict[str, Any]] = None):
        self.generator = generator
        self.family = family
        self.prompt_codes = prompt_codes  # [1, K, P]: every clip continues this audio (--prompt-audio)
        self.prompt_record = prompt_record

    @property
    def name(self) -> str:
        return str(getattr(self.generator, "name", self.family))

    @property
    def device(self) -> str:
        return str(getattr(self.generator, "device", "cpu"))

    @property
    def sample_rate(self) -> int:
        return int(self.generator.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(getattr(self.generator, "frame_rate", 50.0))

    @property
    def max_period(self) -> float:
        """The bound of this model's own positions (limits --duration)."""
        return float(getattr(getattr(getattr(self.generator, "lm", None), "cfg", None), "max_period", 10000.0))

    def settings(self, **decoding: Any) -> dict[str, Any]:
        """Decoding (defaults filled in and checked), text encoder, stage attention and audio prompt."""
        gen = self.generator
        lm = getattr(gen, "lm", None)
        if lm is None:  # a stand-in generator (tests): its knobs as given
            return {"decoding": dict(decoding)}
        dec = gen.decoding(**decoding)
        out = {"decoding": gen.settings(dec) if hasattr(gen, "settings") else dec.to_dict(),
               "text_encoder": lm.text_conditioner.encoder_name,
               "stage_attention": lm.cfg.stage_attention if gen.kind == "magnet" else None}
        if self.prompt_record is not None:
            out["prompt_audio"] = self.prompt_record
        return out

    def generate(self, requests: Sequence[Request], seeds: Sequence[int], duration: float,
                 **decoding: Any) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        extra = {"prompt_codes": self.prompt_codes} if self.prompt_codes is not None else {}
        _, wav, sr = self.generator.generate([r.text for r in requests], duration=duration, seeds=list(seeds),
                                             batch_size=len(requests), **extra, **decoding)
        wav = wav.detach().cpu().numpy() if hasattr(wav, "detach") else np.asarray(wav)
        return [np.asarray(w, dtype=np.float32).reshape(-1) for w in wav], int(sr), \
            dict(getattr(self.generator, "last_stats", {}) or {})


def lm_system(generator: Any, family: Optional[str] = None, *, device: str = "cpu", dtype: Optional[str] = None,
              text_encoder: Optional[str] = None, rescorer: Optional[str] = None,
              prompt_audio: Optional[Path] = None) -> LMSystem:
    """Wrap a loaded Generator, with its rescorer (a MusicGen spec) and audio prompt (a clip every output continues)."""
    from ..models.generator import load_generator

    prompt_codes = prompt_record = None
    if prompt_audio is not None:
        from ..audio import load_audio
        from ..files import file_sha1

        wav, sr = load_audio(prompt_audio, sr=generator.sample_rate)
        prompt_codes = generator.encode_prompt(wav, sr)
        prompt_record = {"file": Path(prompt_audio).name, "sha1": file_sha1(Path(prompt_audio)),
                         "frames": int(prompt_codes.shape[-1])}
    if rescorer:
        generator.set_rescorer(load_generator(rescorer, device=device, dtype=torch_dtype(dtype),
                                              text_encoder=text_encoder), name=rescorer)
    return LMSystem(generator, family or str(getattr(generator, "kind", "magnet")), prompt_codes, prompt_record)


def build(spec: str, device: str = "cpu", dtype: Optional[str] = None, *, text_encoder: Optional[str] = None,
          stage_attention: Optional[str] = None, rescorer: Optional[str] = None,
          prompt_audio: Optional[Path] = None) -> LMSystem:
    """A preset (random weights), an audiocraft export (file or folder) or a hub name, through `load_generator`."""
    from ..models.generator import load_generator

    gen = load_generator(spec, device=device, dtype=torch_dtype(dtype), text_encoder=text_encoder,
                         stage_attention=stage_attention)
    return lm_system(gen, device=device, dtype=dtype, text_encoder=text_encoder, rescorer=rescorer,
                     prompt_audio=prompt_audio)


def timed(spec: str, device: str = "cpu", dtype: Optional[str] = None) -> Any:
    """The bare Generator (what `bench latency` times: its LM's forward passes are counted)."""
    from ..models.generator import load_generator

    return load_generator(spec, device=device, dtype=torch_dtype(dtype))


def _presets(kind: str) -> tuple[str, ...]:
    from ..models.presets import PRESET_NAMES

    return tuple(p for p in PRESET_NAMES if p.startswith(f"{kind}-"))


FAMILY = register(SystemFamily(
    name="magnet", needs=("text",), build=build, timed=timed, presets=_presets("magnet"),
    checkpoint_kinds=("magnet",), hub_prefixes=("facebook/magnet-", "facebook/audio-magnet-")))
