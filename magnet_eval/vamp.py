"""Vamping an audio file with VampNet: audio -> tokens -> prompted resampling -> audio, with a log line per output.

The library side of `magnet-eval vamp` (the command only parses options and prints). A model spec
is a VampNet preset (`vampnet-tiny`: random weights on the tiny codec, trained or not), a checkpoint
written by `vampnet_weights.save_vampnet` (its codec named inside), or a folder of released files (`coarse.pth`, `c2f.pth`, `codec.pth`; decoding those needs the DAC package).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .audio import load_audio, save_audio
from .errors import InvalidOptionError, MissingWeightsError
from .models.vampnet import C2F_DECODING, COARSE_DECODING, VampDecoding, VampNet, build_vampnet, is_vampnet_preset
from .progress import warn
from .prompts.masks import Prompt, build_keep, kept_bitrate


@dataclass
class VampSystem:
    """A VampNet pair and the codec that turns audio into its tokens and back."""

    vampnet: VampNet
    codec: Any
    name: str

    @property
    def frame_rate(self) -> float:
        return float(self.codec.frame_rate)


def load_vamp_system(spec: str, device: str = "cpu") -> VampSystem:
    """A preset (random weights; its codec from the toolkit's cache, else random) or a released-files folder."""
    if is_vampnet_preset(spec):
        from .models.codec import load_codec

        codec_name = "tiny" if spec == "vampnet-tiny" else None
        if codec_name is None:
            raise InvalidOptionError(f"--model {spec}: only vampnet-tiny has a codec here; the paper-size preset "
                                     "is for benchmarks (bench latency)")
        try:
            codec = load_codec(codec_name, device=device)
        except MissingWeightsError:
            codec = load_codec(codec_name, device=device, pretrained=False)
            warn(f"codec {codec_name!r}: trained weights not found, using random codec weights")
        return VampSystem(build_vampnet(spec, codec).to(device), codec, spec)
    path = Path(spec).expanduser()
    if path.is_file():
        from .models.codec import load_codec
        from .models.vampnet_weights import load_vampnet

        vn, codec_spec = load_vampnet(path)
        return VampSystem(vn.to(device), load_codec(codec_spec, device=device), str(path))
    if not path.is_dir():
        raise InvalidOptionError(f"--model {spec!r}: not a VampNet preset (vampnet-tiny), a VampNet checkpoint file "
                                 "nor a folder holding the released coarse.pth / c2f.pth / codec.pth")
    from .models.vampnet_weights import find_part, load_dac_codec, load_released_vampnet

    codec = load_dac_codec(find_part("codec", path), device)
    vn = load_released_vampnet(path, frame_rate=codec.sample_rate / codec.hop_length, sample_rate=codec.sample_rate)
    return VampSystem(vn.to(device), _DacTokens(codec), str(path))


class _DacTokens:
    """encode / decode of a descript-audio-codec model in the toolkit's codec interface."""

    def __init__(self, dac: Any):
        self.dac = dac
        self.sample_rate = int(dac.sample_rate)
        self.frame_rate = dac.sample_rate / dac.hop_length
        self.card = int(dac.codebook_size)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.dac.preprocess(wav, self.sample_rate)
        return self.dac.encode(x)[1]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        z = self.dac.quantizer.from_codes(codes)[0]
        return self.dac.decode(z)


@dataclass
class VampResult:
    """One output: its tokens, keep-mask, audio and the facts that go in the log."""

    tokens: torch.Tensor  # [K, T]
    keep: torch.Tensor  # [K, T]
    audio: np.ndarray
    record: dict = field(default_factory=dict)


def vamp_audio(system: VampSystem, wav: np.ndarray, sr: int, prompts: Sequence[Prompt], seeds: Sequence[int],
               continue_s: float = 0.0, coarse: VampDecoding = COARSE_DECODING, c2f: VampDecoding = C2F_DECODING,
               beats_s: Optional[Sequence[float]] = None, onsets_s: Optional[Sequence[float]] = None,
               ) -> list[VampResult]:
    """One variation per seed of the mono signal `wav` at `sr` (resampled to the codec's rate).

    continue_s > 0 appends that many seconds after the input, all regenerated (the input part follows
    the prompts; with no prompt it is kept whole). The log records prompt, seed and the bitrate of kept tokens.
    """
    codec, vn = system.codec, system.vampnet
    if continue_s < 0:
        raise InvalidOptionError(f"--continue must be >= 0 seconds, got {continue_s}")
    if codec.sample_rate != sr:
        from .audio import resample

        wav = resample(wav, sr, codec.sample_rate)
    device = next(vn.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).view(1, 1, -1).to(device)
    with torch.no_grad():
        z = codec.encode(x)[:, : vn.n_codebooks]
    n_in = z.shape[-1]
    keep = build_keep(prompts, z, system.frame_rate, beats_s=beats_s, onsets_s=onsets_s) if prompts else \
        torch.ones_like(z, dtype=torch.bool)
    n_extra = round(continue_s * system.frame_rate)
    if n_extra:
        z = torch.cat([z, torch.zeros(*z.shape[:2], n_extra, dtype=z.dtype, device=z.device)], dim=-1)
        keep = torch.cat([keep, torch.zeros(*keep.shape[:2], n_extra, dtype=torch.bool, device=z.device)], dim=-1)
    B = len(seeds)
    out = vn.vamp(z.expand(B, -1, -1), keep.expand(B, -1, -1), seeds, coarse=coarse, c2f=c2f)
    with torch.no_grad():
        audio = codec.decode(out).cpu().numpy()
    bitrate = kept_bitrate(keep, system.frame_rate, int(codec.card))
    results = []
    for b, seed in enumerate(seeds):
        record = {"model": system.name, "prompt": [p.text for p in prompts], "seed": int(seed),
                  "continue_s": float(continue_s), "frames_in": int(n_in), "frames_out": int(out.shape[-1]),
                  "kept_fraction": float(keep.float().mean()), "kept_bitrate_bps": bitrate,
                  "steps": {"coarse": coarse.steps, "c2f": c2f.steps}, "temperature": coarse.temperature,
                  "changed_tokens": int((out[b] != z[0]).sum())}
        results.append(VampResult(out[b].cpu(), keep[0].cpu(), audio[b].reshape(-1), record))
    return results


def write_results(results: Sequence[VampResult], sample_rate: int, out_dir: Path, stem: str,
                  loop_file: bool = True) -> list[Path]:
    """vamp_{i}.wav per result, loop.wav (the variations back to back) and one log.jsonl line per result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
        for i, r in enumerate(results):
            path = save_audio(out_dir / f"{stem}_vamp{i}.wav", r.audio, sample_rate)
            paths.append(path)
            log.write(json.dumps({"output": path.name, **r.record}) + "\n")
    if loop_file and len(results) > 1:
        paths.append(save_audio(out_dir / f"{stem}_loop.wav", np.concatenate([r.audio for r in results]), sample_rate))
    return paths


def read_input(path: str | Path) -> tuple[np.ndarray, int]:
    """The input audio, mono (any file the toolkit reads; unreadable ones raise AudioError naming them)."""
    return load_audio(path, mono=True)
