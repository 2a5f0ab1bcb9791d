"""VampNet behind the `generate(prompts, duration, seed, batch_size)` interface the latency benchmark times.

VampNet has no text condition: the prompts only set the batch size. A generation "from nothing"
masks every token and runs the whole decoding (coarse windows then c2f windows, 12 + 24 steps by
default, the reference's 36 passes), then decodes with the codec, so its latency is comparable to
MAGNeT's and MusicGen's text-to-audio generation of the same duration. Specs: `vampnet-tiny` (tiny
codec), `vampnet-paper` (the released sizes with random weights; no DAC here, so tokens only:
the codec decode is not timed and `last_stats['decoded']` says so), or a `save_vampnet` checkpoint file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..errors import MagnetEvalError
from .vampnet import VampDecoding, VampNet, build_vampnet, is_vampnet_preset


class VampNetGenerator:
    """Unconditional VampNet generation with decoding stats (`last_stats`) for `bench latency`."""

    def __init__(self, vampnet: VampNet, codec: Optional[Any], name: str, device: str | torch.device = "cpu"):
        self.vampnet = vampnet
        self.lm = vampnet  # what count_parameters counts: both token models
        self.codec = codec
        self.name = name
        self.device = torch.device(device)
        self.last_stats: dict[str, Any] = {}

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate) if self.codec is not None else int(self.vampnet.coarse.cfg.sample_rate)

    def generate(self, prompts: Sequence[str], duration: float = 10.0, seed: int = 0, batch_size: Optional[int] = None,
                 coarse_steps: int = 12, c2f_steps: int = 24, **_: Any) -> tuple[torch.Tensor, Any, int]:
        """(codes [B, K, F], waveform [B, samples] or None without a codec, sample rate); one clip per prompt."""
        vn = self.vampnet
        B = len(prompts)
        T = max(1, round(duration * vn.frame_rate))
        tokens = torch.zeros(B, vn.n_codebooks, T, dtype=torch.long, device=self.device)
        keep = torch.zeros_like(tokens, dtype=torch.bool)
        coarse, c2f = VampDecoding(steps=coarse_steps), VampDecoding(steps=c2f_steps)
        with torch.no_grad():
            codes = vn.vamp(tokens, keep, [seed + i for i in range(B)], coarse=coarse, c2f=c2f)
            wav = self.codec.decode(codes).float().reshape(B, -1).cpu().numpy() if self.codec is not None else None
        windows = [math.ceil(T / max(1, round(m.cfg.chunk_duration * m.cfg.frame_rate)))
                   for m in (vn.coarse, vn.c2f) if m is not None]
        passes = coarse_steps * windows[0] + (c2f_steps * windows[1] if len(windows) > 1 else 0)
        self.last_stats = {"decoding_steps": coarse_steps + (c2f_steps if vn.c2f is not None else 0),
                           "forward_passes": passes, "decoded": self.codec is not None}
        return codes, wav, self.sample_rate


def is_vampnet_spec(spec: str | Path) -> bool:
    """A VampNet preset name, or a checkpoint file written by `save_vampnet`."""
    s = str(spec)
    if is_vampnet_preset(s):
        return True
    p = Path(s).expanduser()
    if not p.is_file() or p.suffix not in (".pt", ".pth", ".bin"):
        return False
    from ..files import load_torch

    try:
        pkg = load_torch(p)
    except Exception:  # noqa: BLE001  (not ours to judge here: the usual loader reports it)
        return False
    return isinstance(pkg, dict) and pkg.get("kind") == "vampnet"


def load_vampnet_generator(spec: str | Path, device: str | torch.device = "cpu",
                           dtype: Optional[torch.dtype] = None) -> VampNetGenerator:
    """The generator of a VampNet spec (see the module doc); dtype applies to the token models only."""
    s = str(spec)
    if s == "vampnet-paper":
        vn, codec = build_vampnet(s), None
    elif is_vampnet_spec(s):
        from ..vamp import load_vamp_system

        system = load_vamp_system(s, device=str(device))
        vn, codec = system.vampnet, system.codec
    else:
        raise MagnetEvalError(f"{s!r} is not a VampNet preset (vampnet-tiny, vampnet-paper) nor a VampNet checkpoint")
    vn = vn.to(device=device, dtype=dtype) if dtype is not None else vn.to(device)
    return VampNetGenerator(vn.eval(), codec, s, device)
