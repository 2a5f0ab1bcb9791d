"""StemGen behind the `generate(prompts, duration, seed, batch_size)` interface the latency benchmark times.

StemGen has no text condition: the prompts only set the batch size. One timed generation is what
`magnet-eval stem` does for a batch of contexts: encode the context mix with the codec, decode the
stem level by level (128 + 64 + 32 + 32 iterations by default, the paper's; each iteration one
batched forward of 3B rows with multi-source guidance, B rows without), then decode the stem with
the codec. The contexts are seeded noise (the token values do not change the time). Specs:
`stemgen-tiny`, `stemgen-paper` (random weights; a codec with random weights when the real one is
not on this machine, so the codec's cost is still timed) or a `save_stemgen` checkpoint.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from .stemgen import StemGenDecoding, StemGenLM, build_stemgen


class StemGenGenerator:
    """Context -> stem generation with decoding stats (`last_stats`) for `bench latency`."""

    def __init__(self, lm: StemGenLM, codec: Any, name: str, device: str | torch.device = "cpu",
                 instrument: str = "bass"):
        self.lm = lm  # what count_parameters counts and the forward-pass hook watches
        self.codec = codec
        self.name = name
        self.device = torch.device(device)
        self.instrument = instrument
        self.last_stats: dict[str, Any] = {}

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    def generate(self, prompts: Sequence[str], duration: float = 10.0, seed: int = 0, batch_size: Optional[int] = None,
                 decoding_steps: Optional[Sequence[int]] = None, cfg: bool = True, causal_bias: float = 0.1,
                 **_: Any) -> tuple[torch.Tensor, Any, int]:
        """(codes [B, K, F], stems [B, samples], sample rate): one stem per prompt, over a noise context."""
        B = len(prompts)
        n = max(1, int(round(duration * self.sample_rate)))
        g = torch.Generator().manual_seed(int(seed))
        context = (0.1 * torch.randn(B, 1, n, generator=g)).to(self.device)
        dec = StemGenDecoding(**({"decoding_steps": list(decoding_steps)} if decoding_steps else {}),
                              cfg_weights=(3.0, 3.0) if cfg else None, causal_bias=causal_bias)
        with torch.no_grad():
            ctx = self.codec.encode(context)
            codes = self.lm.generate(ctx, self.lm.instrument_ids([self.instrument] * B).to(self.device), dec,
                                     seeds=[int(seed) + i for i in range(B)])
            wav = self.codec.decode(codes).float().reshape(B, -1).cpu().numpy()
        steps = sum(dec.decoding_steps)
        self.last_stats = {"decoding_steps": steps, "forward_passes": steps,
                           "rows_per_pass": 3 * B if dec.cfg_weights is not None else B}
        return codes, wav, self.sample_rate


def load_stemgen_generator(spec: str, device: str | torch.device = "cpu",
                           dtype: Optional[torch.dtype] = None) -> StemGenGenerator:
    """The generator of a StemGen spec (see the module doc); dtype applies to the token model only."""
    lm, codec = build_stemgen(str(spec), str(device))
    if dtype is not None:
        lm = lm.to(dtype=dtype)
    return StemGenGenerator(lm.eval(), codec, str(spec), device)


__all__ = ["StemGenGenerator", "load_stemgen_generator"]
