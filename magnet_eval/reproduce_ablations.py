"""`reproduce --preset magnet-ablations-tiny`: the MAGNeT paper's ablations at tiny scale, offline.

Why a preset: the paper's ablation tables (span length, restricted context, CFG annealing, decoding
steps, rescoring, Hybrid-MAGNeT) compare one change at a time against a baseline on the same
prompts; this preset does the same on the rendered corpus so a reader can see which changes move
FAD beyond its bootstrap interval at this scale.

The corpus, the codec and the base MAGNeT / MusicGen tiny models are the tiny preset's
(`reproduce.tiny_corpus`, `recipes.train_tiny_suite`) in the same work folder, so a `make demo`
cache is reused as is; everything of this preset lives under WORK/ablations/. Rows come in groups,
each with its own baseline (the first row of the group):

- decoding (the base MAGNeT tiny, no retraining): audiocraft's default decoding; CFG fixed instead of
  annealed; fewer and more decoding steps per stage; rescoring with the base MusicGen tiny;
- training (variants trained by the preset with the base model's own recipe, so the base model, span 3
  with restricted context, is the group's baseline and every row differs from it in one setting
  only): other span lengths, restricted context off;
- hybrid (one Hybrid-MAGNeT variant trained with that same recipe): autoregressive prefix 0, 1, 3 s.

Every row: generate the held-out captions, evaluate (FAD [musicnn] with its bootstrap CI, KL over the
musicnn tags paired with the held-out clips, MIRDD), time one generation at batch 1. Each stage is
cached under a key of what decides it (checkpoint hash, decoding, prompts, sizes), so a rerun only
rebuilds the tables, figure and report.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .manifest import Manifest
from .progress import info
from .reproduce import evaluate_system, fad_size_caveat, Run, tiny_corpus, TinyPreset, _split_manifest
from .threads import torch_threads

if TYPE_CHECKING:
    import pandas as pd

    from .solvers.recipes import TinyBudget

PRESET_NAME = "magnet-ablations-tiny"
SUBDIR = "ablations"
UNRESTRICTED_CONTEXT = 1_000_000  # a band wider than any clip: every frame attends to every frame (context "off")
GROUPS = ("decoding", "training", "hybrid")


@dataclass
class VariantBudget:
    """The one training budget of every variant (span length, restricted context, hybrid)."""

    steps: int = 300
    batch_size: int = 16
    segment_seconds: float = 3.0
    lr: float = 2e-3
    validations: int = 1  # validation passes per run (the last step's); they only feed the training log

    @classmethod
    def of_base(cls, budget: "TinyBudget") -> "VariantBudget":
        """The base MAGNeT tiny's own budget (so a variant differs from the base in what it ablates only)."""
        return cls(budget.lm_steps, budget.lm_batch, budget.lm_segment_seconds, budget.lm_lr)

    def same_as_base(self, budget: "TinyBudget") -> bool:
        b = VariantBudget.of_base(budget)
        return (self.steps, self.batch_size, self.segment_seconds, self.lr) == (b.steps, b.batch_size,
                                                                               b.segment_seconds, b.lr)


@dataclass
class AblationsPreset:
    """Sizes of `reproduce --preset magnet-ablations-tiny` (about 30 minutes on 2 CPU cores over a `make demo`
    cache: four variant trainings at the base recipe, twelve rows of 19 prompts x 5 s, batch-1 latency)."""

    tiny: TinyPreset = field(default_factory=TinyPreset)  # corpus + codec + base models: the tiny preset's, shared
    variants: Optional[VariantBudget] = None  # None: the base MAGNeT tiny's budget (then span 3 = the base model)
    span_lengths: tuple[int, ...] = (1, 3, 5)  # 3 is the paper's (and the group's baseline)
    # the paper's band |q - k| <= 5 for stages > 0 (models.presets.MAGNET_RESTRICTED_CONTEXT; a literal here
    # because importing the presets imports torch)
    restricted_context: int = 5
    fixed_cfg: float = 3.0  # the fixed coefficient compared with annealing 10 -> 1
    base_steps: tuple[int, ...] = (20, 10, 10, 10)  # every row's decoding steps unless it varies them (audiocraft's)
    steps_sweep: tuple[tuple[int, ...], ...] = ((10, 5, 5, 5), (40, 20, 20, 20))
    rescore_weight: float = 0.8
    hybrid_prefixes: tuple[float, ...] = (0.0, 1.0, 3.0)
    gen_seconds: float = 5.0
    gen_batch: int = 19
    n_clips: Optional[int] = None  # held-out prompts used (None: all 19 of the test split)
    n_bootstrap: int = 100
    latency_repeats: int = 2
    audio_examples: int = 2  # clips per row in the report's players
    parallel: bool = True  # train two models at a time (one process each); False: one after the other, in-process
    seed: int = 0

    def base_budget(self) -> "TinyBudget":
        from .solvers.recipes import TINY

        return self.tiny.train or TINY

    def variant_budget(self) -> VariantBudget:
        return self.variants or VariantBudget.of_base(self.base_budget())

    def span3_is_base(self) -> bool:
        """The base model is exactly the span-3 restricted-context variant when trained with its budget."""
        from .models.presets import MAGNET_RESTRICTED_CONTEXT

        return self.variant_budget().same_as_base(self.base_budget()) \
            and self.restricted_context == MAGNET_RESTRICTED_CONTEXT


@dataclass
class Row:
    """One ablation row: which model, which decoding, and the setting it changes."""

    group: str
    ablation: str  # what is varied (span length, restricted context, ...)
    setting: str  # its value in this row
    model: str  # "base" or a variant name
    decoding: dict = field(default_factory=dict)
    rescorer: bool = False
    baseline: bool = False

    @property
    def name(self) -> str:
        return f"{self.group}: {self.ablation} {self.setting}"  # no '=': `bench latency` reads NAME=SPEC


# ---------------------------------------------------------------------------------------------- rows


def variant_specs(preset: AblationsPreset) -> dict[str, dict]:
    """Variant name -> train_lm options (lm_overrides, hybrid) of every model the preset trains."""
    ctx = preset.restricted_context
    specs = {f"span{L}": {"lm_overrides": {"span_len": int(L), "subcodes_context": ctx}, "hybrid": False}
             for L in preset.span_lengths}
    specs.setdefault("span3", {"lm_overrides": {"span_len": 3, "subcodes_context": ctx}, "hybrid": False})
    if preset.span3_is_base():
        del specs["span3"]  # the base MAGNeT tiny (the same recipe): reused, not retrained
    specs["context-off"] = {"lm_overrides": {"span_len": 3, "subcodes_context": UNRESTRICTED_CONTEXT}, "hybrid": False}
    specs["hybrid"] = {"lm_overrides": {"span_len": 3, "subcodes_context": ctx}, "hybrid": True}
    return specs


def ablation_rows(preset: AblationsPreset) -> list[Row]:
    """Every row, grouped; the first row of each group is its baseline."""
    fixed = preset.fixed_cfg
    base_steps = ",".join(str(s) for s in preset.base_steps)
    rows = [Row("decoding", "baseline", f"CFG annealed 10 to 1, steps {base_steps}, no rescoring", "base", baseline=True),
            Row("decoding", "CFG", f"fixed {fixed:g}", "base", {"max_cfg_coef": fixed, "min_cfg_coef": fixed})]
    rows += [Row("decoding", "decoding steps per stage", ",".join(str(s) for s in steps), "base",
                 {"decoding_steps": list(steps)}) for steps in preset.steps_sweep]
    rows.append(Row("decoding", "rescoring", f"MusicGen tiny, w_r {preset.rescore_weight:g}", "base",
                    {"rescore_weight": preset.rescore_weight}, rescorer=True))
    rows.append(Row("training", "span length", "3 (restricted context on)",
                    "base" if preset.span3_is_base() else "span3", baseline=True))
    rows += [Row("training", "span length", str(L), f"span{L}") for L in preset.span_lengths if L != 3]
    rows.append(Row("training", "restricted context", "off (span 3)", "context-off"))
    rows += [Row("hybrid", "Hybrid prefix", f"{p:g} s", "hybrid", {"hybrid_prefix": float(p)} if p else {},
                 baseline=(i == 0)) for i, p in enumerate(preset.hybrid_prefixes)]
    for r in rows:  # the decoding steps every row shares, written out so each row records what it ran
        r.decoding.setdefault("decoding_steps", list(preset.base_steps))
    return rows


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _slug(text: str) -> str:
    from .pipeline import safe_name

    return safe_name(text.replace("=", "").replace(",", "-").replace(">", ""))[:60]


# ---------------------------------------------------------------------------------------------- training


def _train_variant(name: str, manifest: str, out: str, codec: str, budget: VariantBudget, options: dict, seed: int,
                   threads: int) -> str:
    """One variant (in a worker process or inline); returns its state_dict.bin as a string."""
    import torch

    from .solvers.recipes import train_lm, validation_passes

    torch.set_num_threads(threads)
    info(f"training variant {name}: {options}")
    return str(train_lm("magnet", manifest, out, codec, "tiny", budget.steps, budget.batch_size, budget.lr,
                        budget.segment_seconds, seed=seed, restart_stale=True,
                        train_overrides=validation_passes(budget.steps, budget.validations),
                        lm_overrides=dict(options["lm_overrides"]), hybrid=bool(options["hybrid"])))


def train_variants(manifest: Path, codec: Path, models_dir: Path, preset: AblationsPreset,
                   names: Optional[list[str]] = None) -> dict[str, Path]:
    """The variants the rows need (two worker processes on >= 2 cores); finished runs are reused by recipe."""
    import os

    specs = variant_specs(preset)
    names = names or list(specs)
    budget = preset.variant_budget()
    args = {n: (n, str(manifest), str(models_dir / n), str(codec), budget, specs[n], preset.seed, 1) for n in names}
    if preset.parallel and (os.cpu_count() or 1) >= 2 and len(names) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        info(f"training {len(names)} MAGNeT variants two at a time ({budget.steps} steps each)")
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
            futures = {n: pool.submit(_train_variant, *a) for n, a in args.items()}
            return {n: Path(f.result()) for n, f in futures.items()}
    return {n: Path(_train_variant(*a)) for n, a in args.items()}


# ---------------------------------------------------------------------------------------------- one row


def _row_key(row: Row, model_sha: str, rescorer_sha: Optional[str], prompt_ids: list[str],
             preset: AblationsPreset) -> str:
    return _key(model_sha, rescorer_sha, row.decoding, prompt_ids, preset.gen_seconds, preset.seed)


def run_row(row: Row, model_dir: Path, rescorer_dir: Optional[Path], key: str, prompts_path: Path,
            reference_path: Path, own: Path, preset: AblationsPreset) -> dict:
    """Generate, evaluate and time one row (each step cached under its key); returns its numbers."""
    from .bench.latency import run_latency_benchmark
    from .pipeline import generate

    folder = f"{_slug(row.name)}-{key}"
    gen_dir = own / "generated" / folder
    manifest = gen_dir / "manifest.jsonl"
    wanted = {e.id for e in Manifest.read(prompts_path)}
    if not (manifest.is_file() and {e.id for e in Manifest.read(manifest)} >= wanted):  # else: done, no model load
        manifest = generate(str(model_dir), str(prompts_path), gen_dir, duration=preset.gen_seconds,
                            batch_size=preset.gen_batch, seed=preset.seed,
                            rescorer=str(rescorer_dir) if row.rescorer else None, **row.decoding)
    results = evaluate_system(row.name, manifest, reference_path, prompts_path, own / "results" / folder,
                              preset.n_bootstrap, preset.seed)
    params = dict(row.decoding)
    if row.rescorer:
        params["rescorer"] = str(rescorer_dir)
    latency_dir = own / "latency" / folder
    captions = [e.caption for e in Manifest.read(prompts_path)]
    lat = run_latency_benchmark([f"{row.name}={model_dir}"], (1,), out_dir=latency_dir, duration=preset.gen_seconds,
                                device="cpu", repeats=preset.latency_repeats, prompts=captions, seed=preset.seed,
                                params=params, plot=False)
    ok = lat[(lat["status"] == "ok") & (lat["batch_size"] == 1)]
    log = [json.loads(ln) for ln in (gen_dir / "log.jsonl").read_text().splitlines() if ln.strip()]
    return {**_metrics(results),
            "latency_s": float(ok["latency_median_s"].iloc[0]) if len(ok) else math.nan,
            "forward_passes": float(ok["forward_passes"].iloc[0]) if len(ok) and "forward_passes" in ok else math.nan,
            "gen_time_per_sample_s": float(sum(r["time_per_sample_s"] for r in log) / max(len(log), 1)),
            "results_file": str(results), "latency_csv": str(latency_dir / "latency.csv"), "audio_dir": str(gen_dir)}


def _metrics(results: Path) -> dict:
    """FAD [musicnn] with its CI, KL (musicnn) and MIRDD of one results file (NaN where not ok)."""
    import pandas as pd

    df = pd.read_parquet(results)
    out: dict[str, float] = {}
    for col, metric, emb in (("fad", "fad", "musicnn"), ("kl", "kl_musicnn", "musicnn"), ("mirdd", "mirdd", None)):
        hit = df[(df.metric == metric) & (df.status == "ok")]
        if emb:
            hit = hit[hit.embedder == emb]
        r = hit.iloc[0] if len(hit) else None
        out[col] = float(r.value) if r is not None else math.nan
        out[f"{col}_ci_low"] = float(r.ci_low) if r is not None else math.nan
        out[f"{col}_ci_high"] = float(r.ci_high) if r is not None else math.nan
    return out


# ---------------------------------------------------------------------------------------------- verdict, table, figure


def fad_ci_verdict(table: "pd.DataFrame") -> str:
    """Which rows moved FAD beyond the confidence intervals, from the computed table.

    A row moved FAD when its bootstrap interval and its group's baseline interval do not overlap
    (lower: its upper bound is below the baseline's lower bound; higher: the reverse). Rows without an
    interval are listed as not checked. The sentence quotes the values it compared.
    """
    moved, within, unchecked = [], [], []
    for group, rows in table.groupby("group", sort=False):
        base = rows[rows["baseline"]]
        if not len(base):
            unchecked += [f"{r.ablation} = {r.setting} (no baseline in group {group})" for r in rows.itertuples()]
            continue
        b = base.iloc[0]
        for r in rows[~rows["baseline"]].itertuples():
            label = f"{r.ablation} = {r.setting}"
            if not all(math.isfinite(float(v)) for v in (r.fad_ci_low, r.fad_ci_high, b.fad_ci_low, b.fad_ci_high)):
                unchecked.append(label)
                continue
            ci = f"{r.fad:.4g} [{r.fad_ci_low:.4g}, {r.fad_ci_high:.4g}] vs baseline {b.fad:.4g} " \
                 f"[{b.fad_ci_low:.4g}, {b.fad_ci_high:.4g}]"
            if r.fad_ci_high < b.fad_ci_low:
                moved.append(f"{label} lowered it ({ci}; gap {b.fad_ci_low - r.fad_ci_high:.2g})")
            elif r.fad_ci_low > b.fad_ci_high:
                moved.append(f"{label} raised it ({ci}; gap {r.fad_ci_low - b.fad_ci_high:.2g})")
            else:
                within.append(f"{label} ({ci})")
    parts = ["FAD [musicnn] beyond the confidence intervals (a row's bootstrap CI disjoint from its group "
             "baseline's): " + ("; ".join(moved) if moved else "no ablation moved FAD beyond them") + "."]
    if within:
        parts.append("Within the intervals: " + "; ".join(within) + ".")
    if unchecked:
        parts.append("Not checked (no interval): " + "; ".join(unchecked) + ".")
    return " ".join(parts)


def _fmt(v: float, lo: float = math.nan, hi: float = math.nan, digits: int = 3) -> str:
    if not (isinstance(v, (int, float)) and math.isfinite(v)):
        return "-"
    s = f"{v:.{digits}g}"
    return s + (f" [{lo:.{digits}g}, {hi:.{digits}g}]" if math.isfinite(lo) and math.isfinite(hi) else "")


def ablation_display(table: "pd.DataFrame") -> "pd.DataFrame":
    """The paper's ablation-table layout: the varied setting, then FAD (CI), KL, MIRDD, latency."""
    import pandas as pd

    rows = []
    for r in table.itertuples(index=False):
        rows.append({"group": r.group, "ablation": r.ablation, "setting": r.setting + (" (baseline)" if r.baseline else ""),
                     "FAD [musicnn] ↓": _fmt(r.fad, r.fad_ci_low, r.fad_ci_high),
                     "KL (musicnn) ↓": _fmt(r.kl), "MIRDD ↓": _fmt(r.mirdd),
                     "latency (s, batch 1) ↓": _fmt(r.latency_s)})
    return pd.DataFrame(rows)


def ablation_markdown(table: "pd.DataFrame") -> str:
    """One markdown table per group (as the paper prints one table per ablation)."""
    from .report.tables import to_markdown

    disp = ablation_display(table)
    parts = []
    for group in dict.fromkeys(disp["group"]):
        parts += [f"### {group}", "", to_markdown(disp[disp["group"] == group].drop(columns="group")), ""]
    return "\n".join(parts)


def plot_quality_latency(table: "pd.DataFrame", out_png: Path) -> Optional[Path]:
    """FAD [musicnn] (with its CI) against latency at batch 1, one marker per row, one colour per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = table[table["fad"].map(math.isfinite) & table["latency_s"].map(math.isfinite)]
    if not len(ok):
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (group, rows) in enumerate(ok.groupby("group", sort=False)):
        c = colors[i % len(colors)]
        lo = (rows["fad"] - rows["fad_ci_low"]).clip(lower=0).fillna(0)
        hi = (rows["fad_ci_high"] - rows["fad"]).clip(lower=0).fillna(0)
        ax.errorbar(rows["latency_s"], rows["fad"], yerr=[lo, hi], fmt="o", color=c, capsize=3, label=group)
        for r in rows.itertuples():  # short labels: the tables give every setting in full
            label = "baseline *" if r.baseline else (r.setting if len(r.setting) <= 22 else r.setting[:21] + "…")
            ax.annotate(label, (r.latency_s, r.fad), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("latency at batch 1 (s, CPU)")
    ax.set_ylabel("FAD [musicnn] (bootstrap CI)")
    ax.set_title("MAGNeT ablations (tiny): quality vs latency  (* = group baseline)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def ablation_section(table: "pd.DataFrame", figure: Optional[Path], verdict: str) -> str:
    """The HTML block of the report page: the figure, the verdict and the tables."""
    from .report.html import frame_to_html, png_data_uri

    parts = ["<h2>MAGNeT ablations (tiny)</h2>",
             '<p class="meta">Each group is compared with its own baseline (first row). Intervals: bootstrap 95% '
             "over clips.</p>", f"<p>{verdict}</p>"]
    if figure is not None:
        parts.append(f'<img class="plot" alt="quality vs latency" src="{png_data_uri(figure)}">')
    disp = ablation_display(table)
    for group in dict.fromkeys(disp["group"]):
        parts.append(f"<h3>{group}</h3>")
        parts.append(frame_to_html(disp[disp["group"] == group].drop(columns="group"),
                                   numeric=["FAD [musicnn] ↓", "KL (musicnn) ↓", "MIRDD ↓", "latency (s, batch 1) ↓"]))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- the preset


def run_ablations_tiny(out: Path, work: Path, preset: AblationsPreset = AblationsPreset(), command: str = "") -> Path:
    """The whole preset; returns the report's index.html. `work` is the tiny preset's work folder (shared)."""
    import pandas as pd
    import torch

    from .report import build_report
    from .solvers.recipes import TINY, train_tiny_suite
    from .solvers.tokens import file_sha256

    own = work / SUBDIR
    own.mkdir(parents=True, exist_ok=True)
    run = Run(work, out)
    with torch_threads(2):
        corpus = run.stage("corpus: compose and render (shared with the tiny preset)",
                           lambda: tiny_corpus(work, preset.tiny))
        manifest = work / "corpus" / "manifest.jsonl"
        base = run.stage("codec, MAGNeT and MusicGen tiny (shared with the tiny preset)", lambda: train_tiny_suite(
            manifest, work / "models", budget=preset.tiny.train or TINY, seed=preset.tiny.seed,
            parallel=None if preset.parallel else False))
        rows = ablation_rows(preset)
        needed = list(dict.fromkeys(r.model for r in rows if r.model != "base"))
        v = preset.variant_budget()
        variants = run.stage(f"train: {len(needed)} MAGNeT variants ({v.steps} steps each)",
                             lambda: train_variants(manifest, Path(base["codec"]), own / "models", preset, needed))
        held = corpus.split("test")
        if preset.n_clips:
            held = Manifest(held.entries[: preset.n_clips], held.source)
        if not len(held):
            from .errors import MagnetEvalError

            raise MagnetEvalError("the corpus has no 'test' clips; render more clips")
        prompts_path = held.write(own / "prompts_test.jsonl")
        reference_path = _split_manifest(corpus, "train", own / "reference_train.jsonl")
        model_dirs = {"base": Path(base["magnet"]).parent, **{n: Path(p).parent for n, p in variants.items()}}
        shas = {n: file_sha256(d / "state_dict.bin") for n, d in model_dirs.items()}
        rescorer_dir = Path(base["musicgen"]).parent
        rescorer_sha = file_sha256(rescorer_dir / "state_dict.bin")
        ids = [e.id for e in held]
        records = []
        for row in rows:
            key = _row_key(row, shas[row.model], rescorer_sha if row.rescorer else None, ids, preset)
            numbers = run.stage(f"row: {row.name}", lambda row=row, key=key: run_row(
                row, model_dirs[row.model], rescorer_dir, key, prompts_path, reference_path, own, preset))
            records.append({"group": row.group, "ablation": row.ablation, "setting": row.setting,
                            "baseline": row.baseline, "model": row.model, "system": row.name,
                            "decoding": json.dumps(row.decoding), "rescorer": row.rescorer, **numbers})
        table = pd.DataFrame(records)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "ablations.csv", index=False)
        (out / "ablations.md").write_text(ablation_markdown(table), encoding="utf-8")
        figure = plot_quality_latency(table, out / "ablations_quality_latency.png")
        verdict = fad_ci_verdict(table)
        notes = [f"Command: {command}" if command else "",
                 f"Prompts: the {len(held)} held-out (test split) captions of the tiny corpus, {preset.gen_seconds:g} s "
                 f"per clip, seed {preset.seed} (one seed per clip id, the same in every row); FAD/MIRDD reference: the "
                 f"{len(Manifest.read(reference_path))} training clips; KL over the musicnn tags paired by prompt id "
                 "with the held-out clips; latency: one generation at batch 1 on CPU "
                 f"({preset.latency_repeats} timed repeats after a warm-up), {preset.gen_seconds:g} s.",
                 verdict,
                 "Decoding rows use the base MAGNeT tiny of the tiny preset (and its MusicGen tiny as the rescorer). "
                 "Training rows and hybrid rows use variants trained by this preset from scratch with one budget "
                 f"({v.steps} steps, batch {v.batch_size}, {v.segment_seconds:g} s crops, lr {v.lr:g}, seed "
                 f"{preset.seed}), "
                 + ("the base MAGNeT tiny's own recipe: the training baseline (span 3, restricted context on) IS the "
                    "base model, and each variant differs from it in the ablated setting only. "
                    if preset.span3_is_base() else "the same for every variant, so they compare with each other. ")
                 + "Restricted context off = a band wider than any clip.",
                 fad_size_caveat(pd.concat([pd.read_parquet(f) for f in table["results_file"]])),
                 *run.stage_notes(own)]
        index = run.stage("report", lambda: build_report(
            list(table["results_file"]), out, latency_csv=list(table["latency_csv"]),
            audio_dirs={r["system"]: Path(r["audio_dir"]) for r in records},
            title="magnet-eval: MAGNeT ablations (tiny, offline)", notes=[n for n in notes if n],
            n_audio=preset.audio_examples, seed=preset.seed, sections=[ablation_section(table, figure, verdict)],
            extra_files={"ablations csv": out / "ablations.csv", "ablations markdown": out / "ablations.md",
                         **({"quality vs latency": figure} if figure else {})}))
        (out / "stages.json").write_text(json.dumps([s.__dict__ for s in run.stages], indent=1))
        return Path(index)
