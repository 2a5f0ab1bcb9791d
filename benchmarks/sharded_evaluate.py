"""`magnet-eval evaluate` in one process vs the same command under `torchrun --nproc_per_node N` (gloo, CPU).

Both runs start cold (their own empty embedding cache) on the same fabricated clips (a reference
and a generated set of 16 kHz tones with noise) with the musicnn embedder, FAD + KAD, and write
their results; the script checks that the values agree and prints the wall times and their ratio
(single / sharded: above 1 means the sharded run is faster). Each worker runs one torch thread
(OMP_NUM_THREADS=1), the single process too, so the ratio measures the sharding, not threading.
Results vary with the machine and its load; process start-up and model loading are included.

    .venv/bin/python benchmarks/sharded_evaluate.py --clips 24 --seconds 10 --procs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def fabricate(folder: Path, n: int, seconds: float, seed: int, sr: int = 16000) -> Path:
    """n clips and their manifest.jsonl in `folder`."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    lines = []
    for i in range(n):
        f0 = rng.uniform(80, 600)
        x = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 5))
        x = 0.2 * x / np.max(np.abs(x)) + rng.normal(0, 0.01, t.shape)
        sf.write(str(folder / f"c{i:04d}.wav"), x.astype(np.float32), sr, subtype="PCM_16")
        lines.append(json.dumps({"id": f"c{i:04d}", "caption": "", "audio_path": f"c{i:04d}.wav"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


def run(cmd: list[str]) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", MAGNET_EVAL_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24, help="clips per set (reference and generated)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sharded-bench-"))
    ref = fabricate(work / "ref", args.clips, args.seconds, seed=1)
    gen = fabricate(work / "gen", args.clips, args.seconds, seed=2)
    common = [str(BIN / "magnet-eval"), "evaluate", "--generated", str(gen), "--reference", str(ref),
              "--metrics", "fad,kad", "--embedder", "musicnn", "--bootstrap", "50", "--no-ledger", "--system", "bench"]
    t_one = run([*common, "--out", str(work / "one.parquet"), "--cache-dir", str(work / "c1")])
    t_many = run([str(BIN / "torchrun"), "--standalone", "--nnodes", "1", "--nproc_per_node", str(args.procs),
                  "--no-python", *common, "--out", str(work / "many.parquet"), "--cache-dir", str(work / "c2")])
    import pandas as pd

    one, many = pd.read_parquet(work / "one.parquet"), pd.read_parquet(work / "many.parquet")
    same = np.allclose(one.value.to_numpy(), many.value.to_numpy(), rtol=1e-9, atol=0, equal_nan=True)
    n = 2 * args.clips
    print(f"{'run':<22}{'seconds':>10}{'clips/s':>10}")
    print(f"{'one process':<22}{t_one:>10.2f}{n / t_one:>10.2f}")
    print(f"{f'torchrun x{args.procs} (gloo)':<22}{t_many:>10.2f}{n / t_many:>10.2f}")
    print(f"ratio single / sharded wall time: {t_one / t_many:.2f}  (values identical to 1e-9: {same})")


if __name__ == "__main__":
    main()
