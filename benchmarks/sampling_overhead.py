"""Per-step sampling overhead of per-clip deterministic sampling at batch 64, against unseeded batched sampling.

Per-clip determinism (docs/determinism.md) draws each clip's uniforms from a counter-based hash of
(clip key, step, position) and samples by inverse CDF, all rows in one batched operation. This
times one decoding step's sampling, on random logits shaped like the real thing, three ways:

- `seeded`: what generation runs (`MagnetLM._sample_masked` / `sample_from_probs` with a ClipRandom);
- `unseeded`: the same filtering followed by plain batched `torch.multinomial` (no determinism);
- `per-row loop`: the previous design, one `torch.multinomial(generator=...)` per batch row,

for a MAGNeT step (10 s at 50 Hz, half the frames masked, top-p 0.9) and a MusicGen step (4 codebooks,
top-k 250), with and without the top-p / top-k filter, and prints seeded / unseeded (target <= 1.10).

    .venv/bin/python benchmarks/sampling_overhead.py --batch 64 --device cpu --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from magnet_eval.models.magnet import MagnetDecoding, MagnetLM
from magnet_eval.models.sampling import ClipRandom, filter_probs, inverse_cdf, sample_from_probs


def timed(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> float:
    """Median seconds of fn() over `repeats` runs after one warm-up (synchronised on GPU)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_row_loop(probs: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
    card = probs.shape[-1]
    return torch.stack([torch.multinomial(probs[b].reshape(-1, card), 1, generator=g) for b, g in enumerate(gens)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=498, help="MAGNeT frames per clip (498 = 10 s at 50 Hz)")
    ap.add_argument("--card", type=int, default=2048)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    B, T, card = args.batch, args.frames, args.card
    gen = torch.Generator(device=device).manual_seed(0)
    rng = ClipRandom(range(B), device)
    gens = [torch.Generator(device=device).manual_seed(b) for b in range(B)]

    rows = []
    # MAGNeT: one stage step, half the frames masked, temperature 1
    probs = torch.softmax(torch.randn(B, T, card, device=device, generator=gen) * 3, dim=-1)
    mask = torch.rand(B, T, device=device, generator=gen) < 0.5
    for label, dec in (("magnet top-p 0.9", MagnetDecoding(top_p=0.9)), ("magnet no filter", MagnetDecoding(top_p=0.0))):
        seeded = timed(lambda: MagnetLM._sample_masked(probs, mask, dec, rng, 3), args.repeats, device)
        unseeded = timed(lambda: MagnetLM._sample_masked(probs, mask, dec, None, 3), args.repeats, device)
        rows.append((label, seeded, unseeded, None))
    # the raw draw alone on the masked rows (no filter): inverse CDF with hashed uniforms vs multinomial
    flat = probs[mask]
    u = rng.uniform(3, (T,))[mask]
    loop = timed(lambda: per_row_loop(probs, gens), max(1, args.repeats // 2), device)
    rows.append(("magnet raw draw", timed(lambda: inverse_cdf(flat, u), args.repeats, device),
                 timed(lambda: torch.multinomial(flat, 1), args.repeats, device), loop))
    # MusicGen: one step, 4 codebooks, top-k 250
    mg = torch.softmax(torch.randn(B, 4, card, device=device, generator=gen), dim=-1)
    for label, k in (("musicgen top-k 250", 250), ("musicgen no filter", 0)):
        seeded = timed(lambda: sample_from_probs(mg, k, 0.0, rng, stream=7), args.repeats * 4, device)
        unseeded = timed(lambda: torch.multinomial(filter_probs(mg, k, 0.0).reshape(-1, card), 1),
                         args.repeats * 4, device)
        loop = timed(lambda: per_row_loop(filter_probs(mg, k, 0.0), gens), args.repeats, device)
        rows.append((label, seeded, unseeded, loop))

    print(f"sampling per decoding step, batch {B}, device {device}, card {card}, MAGNeT frames {T}")
    print(f"{'step':<22}{'seeded ms':>11}{'unseeded ms':>13}{'ratio':>8}{'per-row loop ms':>17}")
    for label, s, un, lp in rows:
        loop_txt = f"{lp * 1e3:17.2f}" if lp is not None else f"{'-':>17}"
        print(f"{label:<22}{s * 1e3:11.2f}{un * 1e3:13.2f}{s / un:8.2f}{loop_txt}")
    worst = max(s / un for label, s, un, _ in rows if "raw" not in label)
    print(f"worst seeded/unseeded ratio over full sampling steps: {worst:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
