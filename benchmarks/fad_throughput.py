"""FAD throughput, end to end: magnet-eval's pipeline vs frechet-audio-distance's, same clips, same embedder.

Both sides compute FAD between a background (reference) folder and an evaluation folder of
the same fabricated 16 kHz clips, with the PANN Cnn14 (16 kHz) network. Its weights are
fabricated (random, fixed seed) and dropped into the layout frechet-audio-distance expects
(`<ckpt_dir>/Cnn14_16k_mAP%3D0.438.pth`, a dict with key 'model'), so the run is offline;
magnet-eval's `pann` embedder loads the same file (when the embedder registry is installed;
otherwise an adapter around frechet-audio-distance's own Cnn14_16k class is used and said so).

Timed, one run each (clips/s = clips of both sets / wall seconds):
- fad-lib:       FrechetAudioDistance(model_name="pann", sample_rate=16000): its own audio loading
                 (8 threads), get_embeddings, calculate_embd_statistics, calculate_frechet_distance.
                 Its `score()` cannot be used for PANN: `get_embeddings` keeps `out['embedding'][0]`
                 ([2048] per clip) and concatenates along axis 0 into one flat vector, so the
                 statistics become scalars and the FAD is wrong/crashes (frechet-audio-distance
                 0.3.x). The benchmark runs the same steps and reshapes to [clips, 2048] first.
- ours (cold):   magnet_eval.evaluation.evaluate(eval, bg, ["fad"], ...) with an empty embedding
                 cache (loading, loudness normalisation, embedding, cache writes, FAD, FAD-inf;
                 bootstrap resamples as given by --bootstrap)
- ours (warm):   the same again, embeddings read from the cache
The ratio ours(cold)/fad-lib is printed. Results vary with the machine and its load.

    .venv/bin/python benchmarks/fad_throughput.py --clips 32 --seconds 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MAGNET_EVAL_NO_PROGRESS", "1")

CKPT_NAME = "Cnn14_16k_mAP%3D0.438.pth"


def fabricate_clips(folder: Path, n: int, seconds: float, seed: int, sr: int = 16000) -> None:
    """Harmonic tones with vibrato plus noise: deterministic, fast to make, not silent."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        f0 = rng.uniform(80, 600)
        x = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * f0 * k * t + 3 * np.sin(2 * np.pi * 5 * t)) for k in range(1, 6))
        x = 0.2 * x / np.max(np.abs(x)) + rng.normal(0, 0.01, t.shape)
        sf.write(str(folder / f"clip{i:04d}.wav"), x.astype(np.float32), sr, subtype="PCM_16")


def fabricate_pann_weights(ckpt_dir: Path) -> Path:
    import torch
    from magnet_eval.offline import import_frechet_audio_distance

    import_frechet_audio_distance()
    from frechet_audio_distance.models.pann import Cnn14_16k

    torch.manual_seed(0)
    model = Cnn14_16k(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000, classes_num=527)
    path = ckpt_dir / CKPT_NAME
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


class PannAdapter:
    """Fallback embedder: frechet-audio-distance's Cnn14_16k, clip-level 2048-d embedding."""

    name = "pann"
    sample_rate = 16000
    dim = 2048

    def __init__(self, path: Path):
        import torch
        from frechet_audio_distance.models.pann import Cnn14_16k

        self.model = Cnn14_16k(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000,
                               classes_num=527)
        self.model.load_state_dict(torch.load(path, map_location="cpu")["model"])
        self.model.eval()
        self.weights_id = hashlib.sha1(path.read_bytes()).hexdigest()

    def embed(self, audio, sr):
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(np.asarray(audio, np.float32))[None], None)["embedding"].numpy()


def our_embedder(path: Path):
    try:
        from magnet_eval.embedders import get_embedder

        emb = get_embedder("pann")
        loaded = emb.load(weights=path)
        return (loaded if loaded is not None and hasattr(loaded, "embed") else emb), "magnet_eval.embedders pann"
    except Exception as exc:  # registry absent or another layout: say so and use the adapter
        return PannAdapter(path), f"adapter over frechet_audio_distance Cnn14_16k ({type(exc).__name__}: {exc})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32, help="clips per set (background and evaluation)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples on our side (0: none)")
    ap.add_argument("--no-normalize", action="store_true",
                    help="skip our loudness normalisation, as fad-lib does: the two FAD values then agree")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fad-bench-"))
    bg, ev = work / "background", work / "eval"
    fabricate_clips(bg, args.clips, args.seconds, seed=1)
    fabricate_clips(ev, args.clips, args.seconds, seed=2)
    ckpt = fabricate_pann_weights(work / "ckpt")
    n_total = 2 * args.clips

    from magnet_eval.offline import import_frechet_audio_distance

    fad_lib = import_frechet_audio_distance()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    lib = fad_lib.FrechetAudioDistance(ckpt_dir=str(work / "ckpt"), model_name="pann", sample_rate=16000,
                                       verbose=False)
    load = getattr(lib, "_FrechetAudioDistance__load_audio_files")
    stats = []
    for folder in (bg, ev):
        e = np.asarray(lib.get_embeddings(load(str(folder)), sr=16000)).reshape(-1, 2048)
        stats.append(lib.calculate_embd_statistics(e))
    lib_value = lib.calculate_frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1])
    t_lib = time.perf_counter() - t0

    from magnet_eval.embedding_cache import EmbeddingCache
    from magnet_eval.evaluation import evaluate
    from magnet_eval.manifest import Manifest

    cache = EmbeddingCache(work / "cache")
    t0 = time.perf_counter()
    emb, which = our_embedder(ckpt)
    res, _ = evaluate(Manifest.from_dir(ev), Manifest.from_dir(bg), ["fad"], emb, "bench", cache=cache,
                      n_bootstrap=args.bootstrap, normalize=not args.no_normalize)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_warm, _ = evaluate(Manifest.from_dir(ev), Manifest.from_dir(bg), ["fad"], emb, "bench", cache=cache,
                           n_bootstrap=args.bootstrap, normalize=not args.no_normalize)
    t_warm = time.perf_counter() - t0
    ours = float(res.set_index("metric").loc["fad", "value"])

    figures = {
        "clips_per_set": args.clips, "normalize": not args.no_normalize, "seconds": args.seconds, "threads": torch.get_num_threads(),
        "embedder": which,
        "fad_lib": {"seconds": t_lib, "clips_per_s": n_total / t_lib, "fad": float(lib_value)},
        "ours_cold": {"seconds": t_cold, "clips_per_s": n_total / t_cold, "fad": ours},
        "ours_warm": {"seconds": t_warm, "clips_per_s": n_total / t_warm},
        "ratio_cold_vs_lib": (n_total / t_cold) / (n_total / t_lib),
    }
    print(f"embedder: {which}")
    print(f"{'pipeline':<16}{'seconds':>10}{'clips/s':>10}{'FAD':>14}")
    print(f"{'fad-lib':<16}{t_lib:>10.2f}{n_total / t_lib:>10.2f}{float(lib_value):>14.6g}")
    print(f"{'ours (cold)':<16}{t_cold:>10.2f}{n_total / t_cold:>10.2f}{ours:>14.6g}")
    print(f"{'ours (warm)':<16}{t_warm:>10.2f}{n_total / t_warm:>10.2f}")
    print(f"ratio ours(cold) / fad-lib clips/s: {figures['ratio_cold_vs_lib']:.2f}")
    if not args.no_normalize:
        print("(FAD values differ: ours loudness-normalises to -14 LUFS before embedding, fad-lib does not;"
              " --no-normalize makes them comparable)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
