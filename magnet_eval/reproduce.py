"""`reproduce`: the main job end to end — data, models, generation, metrics, latency, report.

Presets:
- `tiny` (the offline default, what `make demo` runs): render the FluidSynth corpus, train (or
  reuse) the tiny codec, MAGNeT and MusicGen, generate for the held-out prompts, evaluate with
  the offline suite (FAD-musicnn with CI, KAD, KL-musicnn, MIRDD; CLAP and VGGish rows kept and
  marked "weights not available" when their weights are absent), add audiocraft's reference row
  (codec reconstruction of the references) and sanity rows (held-out real audio; random tokens
  through the codec), time the models at tiny scale, and write the report.
- `paper-musiccaps` / `paper-audiocaps`: the same over the real caption sets with the released
  checkpoints and the standard embedders. On a machine without those files it stops before any
  work with the list of everything the user must provide.

Every stage caches its outputs under the work folder (default `cache_dir()/reproduce/<preset>`),
so a second run only re-reads results, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .errors import MagnetEvalError, MissingWeightsError
from .manifest import Manifest, ManifestEntry
from .paths import cache_dir
from .progress import info, warn

if TYPE_CHECKING:
    import pandas as pd

    from .solvers.recipes import TinyBudget

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class TinyPreset:
    """Sizes of the offline default; about 17 minutes on 2 CPU cores for a first run (README: where the time goes)."""

    n_clips: int = 200
    clip_seconds: float = 10.0
    seed: int = 0
    gen_seconds: float = 10.0
    gen_batch: int = 10
    n_bootstrap: int = 200
    latency_batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    latency_seconds: float = 5.0
    latency_repeats: int = 2
    audio_examples: int = 6
    train: Optional["TinyBudget"] = None  # training steps and batches (None: solvers.recipes.TINY)


@dataclass
class Stage:
    """One timed step of the pipeline (for the report's notes)."""

    name: str
    seconds: float = 0.0
    cached: bool = False


@dataclass
class Run:
    """The stages of one preset run, timed from its creation."""

    work: Path
    out: Path
    stages: list[Stage] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def stage(self, name: str, fn: Callable[[], object]) -> object:
        info(f"[bold cyan]== {name}[/bold cyan]")
        t0 = time.perf_counter()
        value = fn()
        self.stages.append(Stage(name, time.perf_counter() - t0))
        return value

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def stage_notes(self, work: Optional[Path] = None) -> list[str]:
        """'Stages of this run: ...' and, when a first complete run is recorded in `work` (default: the
        run's work folder), that run's stage times too (a rerun re-reads its cache in seconds)."""
        total = self.elapsed()
        notes = ["Stages of this run: " + _stage_line(self.stages, total)]
        first = _first_run_stages(work or self.work, self.stages, total)
        if first is not None:
            notes.append("The first complete run in this work folder (the one that built the cache): "
                         + _stage_line([Stage(**s) for s in first["stages"]], first["total"]))
        return notes


# ---------------------------------------------------------------------------------------------- systems


def _split_manifest(corpus: Manifest, split: str, path: Path) -> Path:
    m = corpus.split(split)
    if len(m) == 0:
        raise MagnetEvalError(f"the corpus has no '{split}' clips; render more clips")
    return m.write(path)


def codec_systems(codec_path: Path, prompts: Manifest, work: Path, seed: int) -> dict[str, Path]:
    """Reference and sanity systems made with the codec alone: reconstruction and random tokens."""
    import numpy as np
    import torch

    from .audio import load_audio, save_audio
    from .models.codec import load_codec

    codec = load_codec(str(codec_path)).eval()
    out: dict[str, Path] = {}
    for name in ("codec reconstruction", "random tokens"):
        folder = work / "generated" / name.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, e in enumerate(prompts):
            wav_path = folder / f"{e.id}.wav"
            if not wav_path.is_file():
                wav, _ = load_audio(e.audio_path, sr=codec.sample_rate)
                x = torch.from_numpy(wav)[None, None]
                with torch.no_grad():
                    if name == "codec reconstruction":
                        y = codec.decode(codec.encode(x))
                    else:
                        g = torch.Generator().manual_seed(seed * 100003 + i)
                        frames = codec.encode(x).shape[-1]
                        codes = torch.randint(0, codec.card, (1, codec.n_q, frames), generator=g)
                        y = codec.decode(codes)
                y = y.reshape(-1).numpy()[: len(wav)]
                save_audio(wav_path, np.pad(y, (0, max(0, len(wav) - len(y)))), codec.sample_rate)
            entries.append(ManifestEntry(e.id, e.caption, str(wav_path.resolve()), e.duration, dict(e.labels)))
        out[name] = Manifest(entries).write(folder / "manifest.jsonl")
    return out


def evaluate_system(system: str, generated: Path, distribution_ref: Path, paired_ref: Path, results_dir: Path,
                    n_bootstrap: int, seed: int, suite: str = "offline", kl_classifier: Optional[str] = None) -> Path:
    """All metric rows of one system into RESULTS/<system>.parquet (reused when present).

    FAD, KAD and MIRDD compare against the distribution reference (the training clips); KL is
    paired by prompt id with the held-out real clips. CLAP and VGGish-FAD are always asked for:
    without their weights they come back as rows marked "weights not available".
    """
    from .pipeline import evaluate_to_files

    target = results_dir / f"{system.replace(' ', '_')}.parquet"
    if target.is_file():
        return target
    jobs = [
        dict(reference=distribution_ref, metrics=["fad", "kad", "mirdd"], embedder="musicnn"),
        dict(reference=paired_ref, metrics=["kl"], embedder="musicnn"),
        dict(reference=paired_ref, metrics=["clap"], embedder="musicnn"),
        dict(reference=distribution_ref, metrics=["fad"], embedder="vggish"),
    ]
    if suite == "paper":
        jobs = [
            dict(reference=distribution_ref, metrics=["fad"], embedder="vggish"),
            dict(reference=paired_ref, metrics=["kl"], embedder="musicnn", kl_classifier=kl_classifier),
            dict(reference=paired_ref, metrics=["clap"], embedder="musicnn"),
            dict(reference=distribution_ref, metrics=["fad", "kad"], embedder="musicnn"),
        ]
    evaluate_to_files(generated, system, jobs, target, n_bootstrap=n_bootstrap, seed=seed, on_missing_weights="row",
                      on_error="row")
    return target


def ordering_check(results: "pd.DataFrame", metric: str = "fad", embedder: str = "musicnn",
                   tiers: tuple[tuple[str, ...], ...] = (("held-out real",), ("codec reconstruction",),
                                                          ("MAGNeT tiny", "MusicGen tiny"), ("random tokens",))) -> str:
    """One sentence saying whether the sanity ordering of `tiers` holds on the computed metric.

    Lower is better; every system of a tier must score below every system of the next one
    (real clips < codec reconstruction < trained models < random tokens, as audiocraft's
    reference rows imply). The sentence quotes the values, so the report states what it checked.
    results: the systems' results in one table (`report.tables.collect_results`).
    """
    hit = _ok_rows(results, metric, embedder)
    values = {str(system): float(value) for system, value in zip(hit["system"], hit["value"])}
    missing = [s for tier in tiers for s in tier if s not in values]
    if missing:
        return f"Sanity ordering on {metric.upper()} [{embedder}]: not checked (no value for {', '.join(missing)})."
    broken = [f"{a} ({values[a]:.3g}) is not below {b} ({values[b]:.3g})"
              for lo, hi in zip(tiers, tiers[1:]) for a in lo for b in hi if not values[a] < values[b]]
    chain = " < ".join(", ".join(f"{s} {values[s]:.3g}" for s in tier) for tier in tiers)
    verdict = "holds" if not broken else "VIOLATED: " + "; ".join(broken)
    return f"Sanity ordering on {metric.upper()} [{embedder}] (expected {chain}): {verdict}."


def fad_size_caveat(results: "pd.DataFrame", embedder: str = "musicnn") -> str:
    """A caveat when a system's FAD covariance is rank deficient (fewer frames than dimensions), else ''."""
    for text in _ok_rows(results, "fad", embedder)["details"]:
        d = json.loads(text) if isinstance(text, str) and text else {}
        if d.get("rank_deficient_generated"):
            return (f"FAD [{embedder}] caveat: a system here has {d.get('n_frames_generated')} embedding frames in "
                    f"{d.get('dim')} dimensions, so its covariance is rank deficient and FAD is biased upwards "
                    "(FAD-inf and KAD are less affected). Compare systems within this table, which all have the "
                    "same number of clips, not with published FADs.")
    return ""


def _ok_rows(results: "pd.DataFrame", metric: str, embedder: str) -> "pd.DataFrame":
    return results[(results["metric"] == metric) & (results["embedder"] == embedder) & (results["status"] == "ok")]


# ---------------------------------------------------------------------------------------------- tiny


FIRST_RUN_FILE = "first_run_stages.json"


def _stage_line(stages: list[Stage], total: float) -> str:
    return "; ".join(f"{s.name} {s.seconds:.0f} s" for s in stages) + f"; total {total:.0f} s."


def _first_run_stages(work: Path, stages: list[Stage], total: float) -> Optional[dict]:
    """The stage timings of the first complete run in `work` (recorded now if this is it), else None.

    A second run re-reads its cache in seconds; the report then shows both, so a reader sees what
    the pipeline costs from scratch and what a rerun costs.
    """
    path = work / FIRST_RUN_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            return None
    path.write_text(json.dumps({"stages": [s.__dict__ for s in stages], "total": total}, indent=1))
    return None


def tiny_corpus(work: Path, preset: TinyPreset = TinyPreset()) -> Manifest:
    """The tiny preset's rendered corpus in WORK/corpus (cached; shared by every preset using this work folder)."""
    from .synth.corpus import build_corpus

    return build_corpus(work / "corpus", n=preset.n_clips, duration=preset.clip_seconds, seed=preset.seed, workers=2)


def generate_after_training(kind: str, checkpoint: Path, *, prompts: str, work: str, duration: float, batch_size: int,
                            seed: int) -> Path:
    """The tiny preset's generation for one trained LM into WORK/generated/<kind> (resumable; what the
    generate stages read back). Top-level so that a training worker process can run it."""
    from .pipeline import generate as run_generation

    return run_generation(str(Path(checkpoint).parent), prompts, Path(work) / "generated" / kind, duration=duration,
                          batch_size=batch_size, seed=seed)


def run_tiny(out: Path, work: Path, preset: TinyPreset = TinyPreset(), command: str = "") -> Path:
    """The offline default; returns the report's index.html."""
    from .bench.latency import run_latency_benchmark
    from .report import build_report
    from .report.tables import collect_results
    from .solvers.recipes import TINY, train_tiny_suite

    run = Run(work, out)
    corpus = run.stage("corpus: compose and render", lambda: tiny_corpus(work, preset))
    prompts_path = _split_manifest(corpus, "test", work / "prompts_test.jsonl")
    reference_path = _split_manifest(corpus, "train", work / "reference_train.jsonl")
    prompts = Manifest.read(prompts_path)
    info(f"{len(prompts)} held-out prompts, {len(Manifest.read(reference_path))} reference clips")

    # each LM generates in its training worker as soon as it is trained (one thread, as it trained): the first
    # one done generates while the other still trains; the generate stages below then only read the clips back
    then = functools.partial(generate_after_training, prompts=str(prompts_path), work=str(work),
                             duration=preset.gen_seconds, batch_size=preset.gen_batch, seed=preset.seed)
    ckpts = run.stage("train: codec, MAGNeT, MusicGen (tiny), each LM then generating", lambda: train_tiny_suite(
        work / "corpus" / "manifest.jsonl", work / "models", budget=preset.train or TINY, seed=preset.seed, then=then))

    systems: dict[str, Path] = {"held-out real": prompts_path}
    systems.update(run.stage("codec reference rows", lambda: codec_systems(
        ckpts["codec"], prompts, work, preset.seed)))
    for name, key in (("MAGNeT tiny", "magnet"), ("MusicGen tiny", "musicgen")):
        systems[name] = run.stage(f"generate: {name}", lambda key=key: then(key, Path(ckpts[key])))

    results_dir = work / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    result_files = []
    for name, manifest_path in systems.items():
        result_files.append(run.stage(f"evaluate: {name}", lambda name=name, p=manifest_path: evaluate_system(
            name, p, reference_path, prompts_path, results_dir, preset.n_bootstrap, preset.seed)))

    latency_dir = work / "latency"
    run.stage("latency vs batch size (tiny, CPU)", lambda: run_latency_benchmark(
        [f"MAGNeT tiny={Path(ckpts['magnet']).parent}", f"MusicGen tiny={Path(ckpts['musicgen']).parent}"],
        preset.latency_batch_sizes, out_dir=latency_dir, duration=preset.latency_seconds, device="cpu",
        repeats=preset.latency_repeats, prompts=[e.caption for e in prompts]))

    all_results = collect_results(result_files)
    notes = [f"Command: {command}" if command else "", 
             f"Corpus: {len(corpus)} FluidSynth-rendered clips of {preset.clip_seconds:g} s (seed {preset.seed}); "
             f"prompts: the {len(prompts)} held-out (test split) captions; FAD/KAD/MIRDD reference: the "
             f"{len(Manifest.read(reference_path))} training clips; KL paired by prompt id with the held-out real clips.",
             ordering_check(all_results),
             fad_size_caveat(all_results),
             "Embedder: musicnn MTT (offline default). CLAP and VGGish need weights that cannot be downloaded here: "
             "the note below lists them with the file each needs.",
             *run.stage_notes()]
    index = run.stage("report", lambda: build_report(
        result_files, out, latency_csv=latency_dir / "latency.csv",
        audio_dirs={name: Path(p) for name, p in systems.items()},
        title="magnet-eval: tiny offline reproduction (MAGNeT vs MusicGen)", notes=[n for n in notes if n],
        n_audio=preset.audio_examples, seed=preset.seed))
    (out / "stages.json").write_text(json.dumps([s.__dict__ for s in run.stages], indent=1))
    return Path(index)


# ---------------------------------------------------------------------------------------------- paper


PAPER = {
    "paper-musiccaps": {
        "captions": SHARED_DATA / "musiccaps" / "musiccaps-public-openai.csv",
        "reader": "musiccaps",
        "models": {"MAGNeT small 10s": "facebook/magnet-small-10secs", "MAGNeT medium 10s": "facebook/magnet-medium-10secs",
                   "MusicGen small": "facebook/musicgen-small"},
        "text_encoder": "t5-base",
        "duration": 10.0,
        "domain": "music",  # KL with PaSST pretrained on 20 s clips, as audiocraft's musicgen solver
    },
    "paper-audiocaps": {
        "captions": SHARED_DATA / "audiocaps" / "audiocaps-test.csv",
        "reader": "audiocaps",
        "models": {"Audio-MAGNeT small": "facebook/audio-magnet-small", "Audio-MAGNeT medium": "facebook/audio-magnet-medium"},
        "text_encoder": "t5-large",
        "duration": 10.0,
        "domain": "audio",  # KL with PaSST pretrained on 10 s clips, as audiocraft's audiogen solver
    },
}


def paper_requirements(preset: str, captions: Optional[Path], audio_dir: Optional[Path]) -> list[str]:
    """Everything a paper preset needs that is not on this machine (empty when all is present)."""
    from .embedders.classifiers import get_classifier, passt_for_domain
    from .embedders.registry import get_info
    from .models.checkpoints import resolve_lm_checkpoint
    from .modules.conditioners import find_t5_folder
    from .paths import find_hf_file, hf_repo_dir

    spec = PAPER[preset]
    missing: list[str] = []
    cap = captions or spec["captions"]
    if not Path(cap).is_file():
        missing.append(f"caption file: {cap} (pass --captions)")
    if audio_dir is None or not Path(audio_dir).is_dir():
        missing.append(f"reference audio folder: --audio-dir (the {spec['reader']} clips, named by YouTube id)")
    for name, repo in spec["models"].items():
        try:
            resolve_lm_checkpoint(repo)
        except MissingWeightsError as exc:
            missing.append(f"{name} checkpoint: {str(exc).splitlines()[0]} -> {hf_repo_dir(repo)}/snapshots/<rev>/state_dict.bin")
        if find_hf_file(repo, "compression_state_dict.bin") is None:
            missing.append(f"{name} codec: {hf_repo_dir(repo)}/snapshots/<rev>/compression_state_dict.bin")
    try:
        find_t5_folder(spec["text_encoder"])
    except MissingWeightsError:
        missing.append(f"text encoder {spec['text_encoder']}: {hf_repo_dir(spec['text_encoder'])}/snapshots/<rev>/ "
                       "(config.json, model.safetensors, spiece.model, tokenizer.json)")
    for emb in ("vggish", "clap"):
        info_ = get_info(emb)
        if info_.find_weights() is None:
            missing.append(f"{emb} weights: {info_.weights}")
    try:
        clf = get_classifier(passt_for_domain(spec["domain"]))
        if not Path(clf.default_path()).is_file():
            missing.append(f"PaSST weights (KL): {clf.default_path()}")
    except MagnetEvalError as exc:
        missing.append(f"PaSST classifier (KL): {exc}")
    if find_hf_file("roberta-base", "config.json") is None and find_hf_file("FacebookAI/roberta-base", "config.json") is None:
        missing.append(f"roberta-base (CLAP's text tower and tokenizer): {hf_repo_dir('roberta-base')}/snapshots/<rev>/")
    return missing


def run_paper(preset: str, out: Path, work: Path, captions: Optional[Path], audio_dir: Optional[Path],
              device: str = "cuda", batch_size: int = 16, limit: Optional[int] = None, command: str = "") -> Path:
    """Released checkpoints over MusicCaps / AudioCaps; refuses up front with the full list of missing files."""
    missing = paper_requirements(preset, captions, audio_dir)
    if missing:
        raise MissingWeightsError(
            f"reproduce --preset {preset} needs files that are not on this machine ({len(missing)}):\n  - "
            + "\n  - ".join(missing)
            + "\nNothing was run. Put them in place (no download is attempted) and run the same command again.")
    from .pipeline import generate as run_generation
    from .manifest import read_audiocaps, read_musiccaps
    from .report import build_report

    spec = PAPER[preset]
    reader = read_musiccaps if spec["reader"] == "musiccaps" else read_audiocaps
    res = reader(captions or spec["captions"], audio_dir)
    reference = res.manifest.with_audio()
    if limit:
        reference = Manifest(reference.entries[:limit], reference.source)
    ref_path = reference.write(work / "reference.jsonl")
    systems = {"reference (real)": ref_path}
    for name, repo in spec["models"].items():
        systems[name] = run_generation(repo, str(ref_path), work / "generated" / name.replace(" ", "_"),
                                       duration=spec["duration"], batch_size=batch_size, device=device)
    from .embedders.classifiers import passt_for_domain

    kl_clf = passt_for_domain(spec["domain"])  # PaSST 20 s for music, 10 s for general audio (audiocraft)
    results = [evaluate_system(n, p, ref_path, ref_path, work / "results", 200, 0, suite="paper", kl_classifier=kl_clf)
               for n, p in systems.items()]
    return build_report(results, out, audio_dirs={n: Path(p) for n, p in systems.items()},
                        title=f"magnet-eval: {preset}", notes=[f"Command: {command}"] if command else [])


def command_line() -> str:
    return "magnet-eval " + " ".join(shlex.quote(a) for a in sys.argv[1:])
