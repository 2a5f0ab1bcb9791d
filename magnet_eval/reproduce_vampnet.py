"""`reproduce --preset vampnet-tiny`: the VampNet paper's prompt experiments at tiny scale, offline.

The corpus and the codec are the tiny preset's (`reproduce.tiny_corpus`, `recipes.train_tiny_codec`)
in the same work folder, so a `make demo` cache is reused as is; everything of this preset lives
under WORK/vampnet/. Stages (each cached, a rerun only rebuilds the report):

1. train the tiny coarse and coarse-to-fine models (side by side, one process each);
2. on the held-out (test split) clips, vamp with a periodic prompt P (all codebooks of every
   P-th frame kept, from P = 1, everything kept, to P = 64, nearly nothing kept), beside the
   codec-only compression baseline (the lowest n codebooks decoded by the codec alone, the
   upper-codebook prompt without a model) and a noise floor (random tokens), then vamp at one P
   with fewer and more sampling steps;
3. measure each point against the original clips: mel distance (`metrics.mel_distance`) and FAD
   [musicnn], with the kept-token bitrate of every point;
4. report: the sweep tables (CSV, markdown) and curves, Table 1 of the FAD rows, audio players.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .manifest import Manifest, ManifestEntry
from .progress import info
from .reproduce import fad_size_caveat, Run, tiny_corpus, TinyPreset, _split_manifest
from .threads import torch_threads
from .solvers.vampnet import VampNetBudget

PRESET_NAME = "vampnet-tiny"
SUBDIR = "vampnet"
PAIRED_NAME = "vampnet.pt"


@dataclass
class VampNetTinyPreset:
    """Sizes of `reproduce --preset vampnet-tiny` (over a `make demo` cache on 2 CPU cores: the two parts train side
    by side for 1,200 steps, about 10 minutes, then the sweeps). 200 steps left both parts at the most-frequent-token
    floor; a coarse run reached 0.0028 at 400 steps, 0.0036 at 600 (floor 0.00056)."""

    tiny: TinyPreset = field(default_factory=TinyPreset)  # corpus + codec: the tiny preset's, shared
    train: VampNetBudget = field(default_factory=VampNetBudget)  # `train vampnet`'s defaults
    segment_seconds: float = 3.0  # crops of both parts (c2f: the reference's 3 s chunks; coarse shortened for CPU)
    periods: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    steps_sweep: tuple[int, ...] = (1, 4, 12)  # coarse steps; the c2f model gets twice as many (12 + 24 default)
    steps_period: int = 16
    n_clips: Optional[int] = None  # held-out clips used (None: every test clip)
    clip_seconds: Optional[float] = 3.0  # each clip's first seconds (None: whole clips); one c2f window
    batch: int = 24  # clips per vamp batch (all held-out clips at once)
    n_bootstrap: int = 100
    audio_examples: int = 4
    seed: int = 0
    workers: int = 2  # processes for training the two parts and for vamping (1: all in this process)


@dataclass
class SweepPoint:
    """One system of the sweep: how its tokens are made, and where its audio goes."""

    name: str
    sweep: str  # "prompt" or "steps"
    kind: str  # periodic | compression | noise | original
    period: Optional[int] = None
    codebooks: Optional[int] = None
    coarse_steps: Optional[int] = None
    c2f_steps: Optional[int] = None


def _train_part(part: str, manifest: str, out: str, codec: str, budget: VampNetBudget, seconds: float, seed: int,
                threads: int) -> str:
    """One VampNet part (in a worker process); returns its export path as a string."""
    import torch

    from .solvers.vampnet import train_vampnet

    torch.set_num_threads(threads)
    return str(train_vampnet(part, manifest, out, codec, PRESET_NAME, budget.steps, budget.batch_size, budget.lr,
                             seconds, seed=seed, restart_stale=True))


def _cache_tokens(manifest: Path, codec: Path) -> None:
    from .models.codec import load_codec
    from .solvers.recipes import prepare_tokens
    from .solvers.tokens import file_sha256

    prepare_tokens(Manifest.read(manifest), load_codec(str(codec)), file_sha256(codec), None, 0)


def train_parts(manifest: Path, codec: Path, models_dir: Path, preset: VampNetTinyPreset, parallel: bool = True
                ) -> dict[str, Path]:
    """The coarse and c2f models (two worker processes on >= 2 cores; finished runs are reused)."""
    import os

    args = {p: (p, str(manifest), str(models_dir / p), str(codec), preset.train, preset.segment_seconds,
                preset.seed, 1) for p in ("coarse", "c2f")}
    if parallel and (os.cpu_count() or 1) >= 2:
        _cache_tokens(manifest, codec)  # once, here: the two workers then read the same cached tokens
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        info("training the VampNet coarse and c2f models side by side (two processes)")
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
            futures = {p: pool.submit(_train_part, *a) for p, a in args.items()}
            return {p: Path(f.result()) for p, f in futures.items()}
    return {p: Path(_train_part(*a)) for p, a in args.items()}


def sweep_points(preset: VampNetTinyPreset, n_codebooks: int) -> list[SweepPoint]:
    """Every system: periodic P, codec-only compression with 1..K codebooks, noise, then the steps sweep."""
    points = [SweepPoint(f"periodic P={p}", "prompt", "periodic", period=p, coarse_steps=12, c2f_steps=24)
              for p in preset.periods]
    points += [SweepPoint(f"codec {n} codebook{'s' if n > 1 else ''}", "prompt", "compression", codebooks=n)
               for n in range(n_codebooks, 0, -1)]
    points.append(SweepPoint("noise (random tokens)", "prompt", "noise"))
    for s in preset.steps_sweep:
        if s == 12 and preset.steps_period in preset.periods:
            continue  # the default decoding at that P is the prompt sweep's point
        points.append(SweepPoint(f"P={preset.steps_period}, {s}+{2 * s} steps", "steps", "periodic",
                                 period=preset.steps_period, coarse_steps=s, c2f_steps=2 * s))
    return points


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


class HeldOut:
    """The held-out clips at the codec's rate (first `clip_seconds`) and their tokens."""

    def __init__(self, prompts: Manifest, codec: Any, clip_seconds: Optional[float], n_clips: Optional[int]):
        import torch

        from .audio import load_audio

        entries = list(prompts)[: n_clips or None]
        sr = int(codec.sample_rate)
        audio = [load_audio(e.audio_path, sr=sr, mono=True)[0].astype(np.float32) for e in entries]
        n = min(len(a) for a in audio)
        if clip_seconds:
            n = min(n, int(round(clip_seconds * sr)))
        self.entries = entries
        self.audio = [a[:n] for a in audio]
        self.sample_rate = sr
        with torch.no_grad():
            self.tokens = torch.cat([codec.encode(torch.from_numpy(a).view(1, 1, -1)) for a in self.audio])  # [N, K, T]


def _write_system(folder: Path, held: HeldOut, audio: list[np.ndarray], point: SweepPoint, extra: dict) -> Path:
    from .audio import save_audio

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for e, a in zip(held.entries, audio):
        path = save_audio(folder / f"{e.id}.wav", a, held.sample_rate)
        entries.append(ManifestEntry(e.id, e.caption, str(Path(path).resolve()), len(a) / held.sample_rate,
                                     {"system": point.name}))
    (folder / "point.json").write_text(json.dumps({**asdict(point), **extra}, indent=1))
    return Manifest(entries).write(folder / "manifest.jsonl")


def make_point(point: SweepPoint, held: HeldOut, vn: Any, codec: Any, folder: Path, preset: VampNetTinyPreset) -> dict:
    """The audio of one system into `folder` (reused when its manifest exists); returns its bitrate facts."""
    import torch

    from .models.vampnet import VampDecoding
    from .prompts.masks import kept_bitrate, periodic

    done = folder / "point.json"
    if (folder / "manifest.jsonl").is_file() and done.is_file():
        return json.loads(done.read_text())
    tokens = held.tokens[:, : vn.n_codebooks]
    N, K, T = tokens.shape
    fr, card = float(codec.frame_rate), int(codec.card)
    seeds = [preset.seed * 100_003 + i for i in range(N)]
    with torch.no_grad():
        if point.kind == "periodic":
            keep = periodic(tokens, point.period)
            coarse = VampDecoding(steps=point.coarse_steps)
            c2f = VampDecoding(steps=point.c2f_steps)
            outs = [vn.vamp(tokens[i: i + preset.batch], keep[i: i + preset.batch], seeds[i: i + preset.batch],
                            coarse=coarse, c2f=c2f) for i in range(0, N, preset.batch)]
            codes = torch.cat(outs)
        elif point.kind == "compression":
            keep = torch.zeros_like(tokens, dtype=torch.bool)
            keep[:, : point.codebooks] = True
            codes = tokens[:, : point.codebooks]
        elif point.kind == "noise":
            keep = torch.zeros_like(tokens, dtype=torch.bool)
            g = torch.Generator().manual_seed(preset.seed * 7 + 1)
            codes = torch.randint(0, card, tokens.shape, generator=g)
        else:
            raise ValueError(point.kind)
        n = len(held.audio[0])
        wav = torch.cat([codec.decode(codes[i: i + preset.batch]) for i in range(0, N, preset.batch)])
        audio = [np.pad(w, (0, max(0, n - len(w))))[:n] for w in wav.reshape(N, -1).numpy()]
    facts = {"bitrate_bps": kept_bitrate(keep, fr, card), "kept_fraction": float(keep.float().mean()),
             "changed_tokens": float((codes[:, : tokens.shape[1]] != tokens[:, : codes.shape[1]]).float().mean())
             if point.kind == "periodic" else float("nan")}
    _write_system(folder, held, audio, point, facts)
    return facts


def _cached(folder: Path) -> bool:
    return (folder / "manifest.jsonl").is_file() and (folder / "point.json").is_file()


def _vamp_worker(paired: str, codec_path: str, prompts: str, points: list[SweepPoint], folders: list[str],
                 preset: VampNetTinyPreset, threads: int) -> int:
    """Make some prompted points in a worker process (the model and the held-out tokens loaded afresh)."""
    import torch

    from .models.codec import load_codec
    from .models.vampnet_weights import load_vampnet

    torch.set_num_threads(threads)
    vn, _ = load_vampnet(paired)
    codec = load_codec(codec_path).eval()
    held = HeldOut(Manifest.read(prompts), codec, preset.clip_seconds, preset.n_clips)
    for p, f in zip(points, folders):
        make_point(p, held, vn.eval(), codec, Path(f), preset)
    return len(points)


def vamp_points(points: list[SweepPoint], folders: list[Path], paired: Path, codec_path: Path, prompts_path: Path,
                preset: VampNetTinyPreset, workers: Optional[int] = None) -> None:
    """The points that need the model, shared between two worker processes by their step counts (one thread each:
    on shared CPU cores two single-threaded processes decode faster than one with two threads)."""
    import os

    workers = workers or (2 if (os.cpu_count() or 1) >= 2 else 1)
    loads: list[list[int]] = [[] for _ in range(workers)]
    cost = [0] * workers
    for i in sorted(range(len(points)), key=lambda i: -(points[i].coarse_steps + points[i].c2f_steps)):
        w = cost.index(min(cost))
        loads[w].append(i)
        cost[w] += points[i].coarse_steps + points[i].c2f_steps
    jobs = [(str(paired), str(codec_path), str(prompts_path), [points[i] for i in idx], [str(folders[i]) for i in idx], preset, 1)
            for idx in loads if idx]
    if len(jobs) == 1:
        _vamp_worker(*jobs[0][:-1], threads=1)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(jobs), mp_context=mp.get_context("spawn")) as pool:
        for f in [pool.submit(_vamp_worker, *j) for j in jobs]:
            f.result()


def measure_point(name: str, folder: Path, held: HeldOut, reference: Path, preset: VampNetTinyPreset
                  ) -> tuple[dict, Path]:
    """(mel distance facts, FAD results parquet) of one system against the original clips (both cached)."""
    from .audio import load_audio
    from .evaluation import evaluate, save_results
    from .metrics.mel_distance import MelDistance

    mel_file = folder / "mel_distance.json"
    if mel_file.is_file():
        mel = json.loads(mel_file.read_text())
    else:
        metric = MelDistance(held.sample_rate, n_bootstrap=preset.n_bootstrap, seed=preset.seed)
        out = [load_audio(folder / f"{e.id}.wav", sr=held.sample_rate, mono=True)[0] for e in held.entries]
        metric.update(out, held.audio, [e.id for e in held.entries])
        r = metric.compute()
        mel = {"mel_distance": r.value, "mel_ci_low": r.ci_low, "mel_ci_high": r.ci_high}
        mel_file.write_text(json.dumps(mel))
    target = folder / "fad.parquet"
    if not target.is_file():
        res, per = evaluate(folder / "manifest.jsonl", reference, ["fad"], "musicnn", name,
                            n_bootstrap=preset.n_bootstrap, seed=preset.seed, on_missing_weights="row", on_error="row")
        save_results(res, per, target)
    return mel, target


def _fad_row(parquet: Path) -> dict:
    import pandas as pd

    df = pd.read_parquet(parquet)
    row = df[(df.metric == "fad") & (df.embedder == "musicnn")]
    if not len(row) or row.iloc[0].status != "ok":
        return {"fad": math.nan, "fad_ci_low": math.nan, "fad_ci_high": math.nan}
    r = row.iloc[0]
    return {"fad": float(r.value), "fad_ci_low": float(r.ci_low), "fad_ci_high": float(r.ci_high)}


def density_verdict(table: "Any") -> str:
    """Whether denser periodic prompts (smaller P) gave lower mel distance, from the computed values."""
    from scipy.stats import spearmanr

    pts = table[(table.sweep == "prompt") & (table.kind == "periodic")].sort_values("period")
    if len(pts) < 2:
        return "Periodic sweep: fewer than two points, no trend to state."
    p, d = list(pts.period.astype(int)), list(pts.mel_distance)
    steps = [b >= a for a, b in zip(d, d[1:])]
    rho = float(spearmanr(p, d).correlation) if len(set(d)) > 1 else float("nan")
    chain = ", ".join(f"P={pi}: {di:.3f}" for pi, di in zip(p, d))
    if all(steps):
        verdict = "yes: the mel distance never decreased as the prompt got sparser"
    elif rho > 0.5:
        verdict = (f"mostly: the distance rises with P (Spearman {rho:.2f}) but not monotonically "
                   f"({sum(not s for s in steps)} of {len(steps)} steps go down)")
    else:
        verdict = f"no: the distance does not rise with P (Spearman {rho:.2f})"
    return f"Did denser prompts (smaller P) give lower mel distance? {verdict} ({chain})."


def compression_verdict(table: "Any") -> str:
    """Vamped periodic prompts against the codec-only baseline at the same bitrate, where both exist."""
    per = table[(table.sweep == "prompt") & (table.kind == "periodic")]
    comp = table[(table.sweep == "prompt") & (table.kind == "compression")]
    pairs = []
    for _, c in comp.iterrows():
        same = per[np.isclose(per.bitrate_bps, c.bitrate_bps, rtol=0.02)]
        for _, p in same.iterrows():
            if int(p.period) == 1:
                continue
            pairs.append(f"{c.bitrate_bps:.0f} bps: P={int(p.period)} mel {p.mel_distance:.3f} / FAD {p.fad:.3g} vs "
                         f"codec with {int(c.codebooks)} codebook(s) mel {c.mel_distance:.3f} / FAD {c.fad:.3g}")
    if not pairs:
        return "No periodic point has the bitrate of a codec-only point."
    return "Same bitrate, vamped periodic prompt vs codec-only compression: " + "; ".join(pairs) + "."


def run_vampnet_tiny(out: Path, work: Path, preset: VampNetTinyPreset = VampNetTinyPreset(), command: str = "") -> Path:
    """The whole preset; returns the report's index.html. `work` is the tiny preset's work folder (shared)."""
    import pandas as pd
    import torch

    from .models.codec import load_codec
    from .models.vampnet_weights import pair_vampnet, save_vampnet
    from .report import build_report
    from .report.sweeps import plot_prompt_sweep, plot_steps_sweep, sweep_section
    from .solvers.recipes import TINY, train_tiny_codec
    from .solvers.tokens import file_sha256

    own = work / SUBDIR
    own.mkdir(parents=True, exist_ok=True)
    run = Run(work, out)
    with torch_threads(2):
        corpus = run.stage("corpus: compose and render (shared with the tiny preset)", lambda: tiny_corpus(work, preset.tiny))
        manifest = work / "corpus" / "manifest.jsonl"
        codec_path = run.stage("codec (tiny, shared with the tiny preset)", lambda: train_tiny_codec(
            manifest, work / "models" / "codec", preset.tiny.train or TINY, preset.tiny.seed))
        parts = run.stage("train: VampNet coarse and c2f (tiny)", lambda: train_parts(
            manifest, Path(codec_path), own / "models", preset, parallel=preset.workers > 1))
        torch.set_num_threads(1)  # small models on shared cores: one thread avoids OpenMP stalls (codec: 2)
        vn, codec_spec = pair_vampnet(parts["coarse"], parts["c2f"], name=PRESET_NAME)
        vn.eval()
        paired = own / "models" / PAIRED_NAME  # one file for `vamp --model` and `bench latency --models`
        if not paired.is_file() or paired.stat().st_mtime < max(p.stat().st_mtime for p in parts.values()):
            save_vampnet(vn, paired, codec_spec)
        codec = load_codec(str(codec_path)).eval()
        prompts_path = _split_manifest(corpus, "test", own / "prompts_test.jsonl")
        prompts = Manifest.read(prompts_path)
        held = HeldOut(prompts, codec, preset.clip_seconds, preset.n_clips)
        key = _key([file_sha256(p) for p in parts.values()], [e.id for e in held.entries], preset.clip_seconds,
                   preset.seed, preset.batch)
        sweep_dir = own / f"sweep-{key}"
        original = sweep_dir / "original"
        if not (original / "manifest.jsonl").is_file():
            _write_system(original, held, held.audio, SweepPoint("original", "prompt", "original"), {})
        reference = original / "manifest.jsonl"
        points = sweep_points(preset, vn.n_codebooks)
        folders = {p.name: sweep_dir / p.name.replace(" ", "_").replace("=", "").replace(",", "").replace("+", "p")
                   .replace("(", "").replace(")", "") for p in points}
        todo = [p for p in points if not _cached(folders[p.name])]
        with_model = [p for p in todo if p.kind == "periodic" and p.period > 1]
        run.stage("codec-only points (P=1, compression, noise)", lambda: [
            make_point(p, held, vn, codec, folders[p.name], preset) for p in todo if p not in with_model])
        if with_model:
            run.stage(f"vamp: {len(with_model)} prompted points", lambda: vamp_points(
                with_model, [folders[p.name] for p in with_model], paired, Path(codec_path), prompts_path, preset, workers=preset.workers))
        facts = {p.name: json.loads((folders[p.name] / "point.json").read_text()) for p in points}
        rows, result_files = [], []
        for p in points:
            mel, fad_file = run.stage(f"measure: {p.name}", lambda p=p: measure_point(
                p.name, folders[p.name], held, reference, preset))
            result_files.append(fad_file)
            rows.append({**asdict(p), **facts[p.name], **mel, **_fad_row(fad_file)})
        _, fad_orig = measure_point("original", original, held, reference, preset)
        table = pd.DataFrame(rows)
        # the steps curve includes the prompt sweep's default-decoding point at the same P
        default = table[(table.sweep == "prompt") & (table.period == preset.steps_period)].assign(sweep="steps")
        table = pd.concat([table, default], ignore_index=True)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "vampnet_sweep.csv", index=False)
        (out / "vampnet_sweep.md").write_text(_markdown(table), encoding="utf-8")
        figs = {"prompt": plot_prompt_sweep(table, out / "vampnet_prompt_sweep.png"),
                "steps": plot_steps_sweep(table, out / "vampnet_steps_sweep.png")}
        notes = [f"Command: {command}" if command else "",
                 f"Held-out clips: the first {len(held.entries)} test-split clips of the tiny corpus, "
                 f"{len(held.audio[0]) / held.sample_rate:g} s each; every point is measured against these originals "
                 "(mel distance paired per clip, FAD [musicnn] against the set).",
                 density_verdict(table), compression_verdict(table),
                 f"Models: {vn.coarse.num_params() / 1e6:.2f}M-parameter coarse (codebooks 1-{vn.n_coarse}) and "
                 f"{vn.c2f.num_params() / 1e6:.2f}M-parameter c2f (codebooks {vn.n_coarse + 1}-{vn.n_codebooks}), "
                 f"{preset.train.steps} steps each; training logs: {_train_summary(parts)}",
                 fad_size_caveat(pd.concat([pd.read_parquet(f) for f in result_files])),
                 *run.stage_notes(own)]
        show = [p for p in points if p.sweep == "prompt" and (p.kind != "periodic" or p.period in (1, 4, 16, 64))]
        audio_dirs = {"original": original, **{p.name: folders[p.name] for p in show}}
        index = run.stage("report", lambda: build_report(
            [fad_orig, *result_files], out, audio_dirs=audio_dirs,
            title="magnet-eval: VampNet tiny, prompt and sampling-step sweeps", notes=[n for n in notes if n],
            n_audio=preset.audio_examples, seed=preset.seed, sections=[sweep_section(table, figs)],
            extra_files={"sweep csv": out / "vampnet_sweep.csv", "sweep markdown": out / "vampnet_sweep.md",
                         **{f"{k} sweep plot": v for k, v in figs.items() if v}}))
        (out / "stages.json").write_text(json.dumps([s.__dict__ for s in run.stages], indent=1))
    return Path(index)


def _markdown(table: "Any") -> str:
    from .report.sweeps import sweep_display
    from .report.tables import to_markdown

    return to_markdown(sweep_display(table))


def _train_summary(parts: dict[str, Path]) -> str:
    """The last validation masked-token accuracy of each part beside its unigram floor (from its train log)."""
    from .solvers.train_log import last_valid_metrics

    out = []
    for part, export in parts.items():
        m = last_valid_metrics(export.parent / "train_log.csv")
        acc, floor = m.get("valid_accuracy", math.nan), m.get("valid_unigram_accuracy", math.nan)
        ratio = f", {acc / floor:.1f}x the floor" if floor and math.isfinite(acc / floor) else ""
        out.append(f"{part} masked-token accuracy {acc:.2g} vs unigram floor {floor:.2g}{ratio}")
    return "; ".join(out) + "."
