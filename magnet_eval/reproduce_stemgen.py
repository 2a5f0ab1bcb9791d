"""`reproduce --preset stemgen-tiny`: StemGen's stem-evaluation table at tiny scale, offline.

The corpus and the codec are the tiny preset's (`reproduce.tiny_corpus`, `recipes.train_tiny_codec`)
in the same work folder, so a `make demo` cache is reused as is; everything of this preset lives
under WORK/stemgen/. Stages (each cached; a rerun only re-reads results and rebuilds the report):

1. train `stemgen-tiny` on the corpus's stems (`solvers.stemgen.train_stemgen`);
2. on the held-out (test split) clips, first `clip_seconds` each, one target stem per clip (the
   clip's parts in turn, so every part is asked for): its context is the sum of the other stems;
3. systems answering each context: the real stem (ceiling), a real stem of the same instrument
   class from *another* clip (mismatched context: the alignment floor), StemGen tiny, and the
   ablations multi-source CFG off, causal bias off, fewer decoding steps;
4. metrics: per instrument class, FAD [musicnn] of the stems against real training stems of that
   class; FAD [musicnn] of stem + context against real training mixes; MIRDD of stem + context
   (`metrics.mirdd`, the stem summed with its context) against the same mixes; rhythmic and tonal
   agreement of each stem with its context (`metrics.stem_alignment`);
5. report: the table (CSV, markdown), a note that states from the numbers whether StemGen tiny
   sits between floor and ceiling on each alignment metric and what each ablation changed, and
   audio players (context alone, then each system's stem + context).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .manifest import Manifest, ManifestEntry
from .progress import info
from .reproduce import fad_size_caveat, Run, tiny_corpus, TinyPreset
from .threads import torch_threads

PRESET_NAME = "stemgen-tiny"
SUBDIR = "stemgen"
CEILING, FLOOR, MODEL = "real stem (ceiling)", "mismatched real stem (floor)", "StemGen tiny"
ALIGNMENT = ("beat_f", "onset_f", "chroma_agreement", "key_agreement")
ALIGNMENT_LABELS = {"beat_f": "beat F (context vs mix)", "onset_f": "onset F (context vs stem)",
                    "chroma_agreement": "chroma agreement", "key_agreement": "key agreement"}
COLUMN_LABELS = {**ALIGNMENT_LABELS, "fad_mix": "FAD [musicnn] of stem + context", "mirdd": "MIRDD of stem + context"}


@dataclass
class StemGenTinyPreset:
    """Sizes of `reproduce --preset stemgen-tiny` (about 12 minutes on 2 CPU cores from an empty cache)."""

    tiny: TinyPreset = field(default_factory=TinyPreset)  # corpus + codec: the tiny preset's, shared
    train_clips: Optional[int] = 80  # train StemGen on the first N training clips (None: all): encoding them dominates
    steps: int = 200
    batch_size: int = 16
    lr: float = 2e-3
    segment_seconds: float = 3.0
    n_clips: Optional[int] = 20  # held-out clips (None: every test clip)
    clip_seconds: float = 5.0
    decoding_steps: tuple[int, ...] = (16, 8, 4, 4)  # the paper's 128/64/32/32 scaled to CPU and 5 s
    fewer_steps: tuple[int, ...] = (4, 2, 1, 1)
    cfg_weights: tuple[float, float] = (3.0, 3.0)
    causal_bias: float = 0.1
    batch: int = 10
    n_reference: int = 30  # real training clips per reference set (mixes; stems per instrument class)
    min_fad_clips: int = 3  # an instrument class gets a FAD column when it has this many held-out stems
    n_bootstrap: int = 100
    audio_examples: int = 4
    seed: int = 0


@dataclass
class Ablation:
    """One generated system: the decoding it uses."""

    name: str
    decoding_steps: tuple[int, ...]
    cfg: bool
    causal_bias: float


def ablations(preset: StemGenTinyPreset) -> list[Ablation]:
    """StemGen tiny and the three ablations of the issue."""
    steps = tuple(preset.decoding_steps)
    return [Ablation(MODEL, steps, True, preset.causal_bias),
            Ablation("multi-source CFG off", steps, False, preset.causal_bias),
            Ablation("causal bias off", steps, True, 0.0),
            Ablation(f"fewer decoding steps ({','.join(map(str, preset.fewer_steps))})", tuple(preset.fewer_steps),
                     True, preset.causal_bias)]


# ---------------------------------------------------------------------------------------------- data


@dataclass
class HeldOutStem:
    """One evaluation item: a held-out clip, its target part and class, and the audio (codec rate)."""

    id: str
    part: str
    instrument: str
    context: np.ndarray
    stem: np.ndarray


def _clip_stems(track: Any, sr: int, n: int) -> dict[str, np.ndarray]:
    from .audio import fit_length, load_audio

    return {k: fit_length(load_audio(p, sr=sr)[0].astype(np.float32), n) for k, p in sorted(track.stems.items())}


def held_out_items(tracks: Sequence[Any], sr: int, seconds: float) -> list[HeldOutStem]:
    """One item per clip: the i-th clip's target is its parts in turn (part i mod n_parts), context = the others."""
    from .stems import make_example

    n = int(round(seconds * sr))
    items = []
    for i, t in enumerate(tracks):
        if len(t.stems) < 2:
            continue  # no context to listen to
        stems = _clip_stems(t, sr, n)
        parts = sorted(stems)
        part = parts[i % len(parts)]
        context, target = make_example(stems, part)
        items.append(HeldOutStem(t.id, part, t.classes[part], context, target))
    return items


def mismatched_stems(items: Sequence[HeldOutStem], pool: Sequence[Any], sr: int, seconds: float
                     ) -> list[tuple[str, np.ndarray]]:
    """Per item, (source clip id, a real stem of the same class from another clip): first another held-out
    item of that class, else a training clip's stem of that class, else the same part of another clip."""
    n = int(round(seconds * sr))
    out = []
    for i, it in enumerate(items):
        others = [o for o in items[i + 1:] + items[:i] if o.instrument == it.instrument and o.id != it.id]
        if others:
            out.append((others[0].id, others[0].stem))
            continue
        same = [(t, k) for t in pool for k, c in sorted(t.classes.items()) if c == it.instrument and t.id != it.id]
        same = same or [(t, k) for t in pool for k in sorted(t.stems) if k == it.part and t.id != it.id]
        if not same:
            raise ValueError(f"no other clip has a {it.instrument} or {it.part} stem to mismatch {it.id} with")
        t, k = same[i % len(same)]
        out.append((t.id, _clip_stems(t, sr, n)[k]))
    return out


def _write(folder: Path, name: str, wav: np.ndarray, sr: int) -> str:
    from .audio import save_audio

    return str(Path(save_audio(folder / f"{name}.wav", wav, sr)).resolve())


def write_system(folder: Path, items: Sequence[HeldOutStem], stems: Sequence[np.ndarray], contexts: dict[str, str],
                 sr: int, extra: dict) -> Path:
    """stems/ and mix/ wavs plus two manifests: stems.jsonl (the stem, its context as stems['context']: MIRDD
    mixes them) and mix.jsonl (stem + context); mix.jsonl is written last and marks the system done."""
    entries_s, entries_m = [], []
    for it, s in zip(items, stems):
        s = np.asarray(s, np.float32)[: len(it.context)]
        s = np.pad(s, (0, len(it.context) - len(s)))
        labels = {"instrument": it.instrument, "part": it.part}
        sp = _write(folder / "stems", it.id, s, sr)
        mp = _write(folder / "mix", it.id, np.clip(it.context + s, -1.0, 1.0), sr)
        dur = len(s) / sr
        entries_s.append(ManifestEntry(it.id, f"{it.part} ({it.instrument})", sp, dur, labels, {"context": contexts[it.id]}))
        entries_m.append(ManifestEntry(it.id, f"{it.part} ({it.instrument})", mp, dur, labels))
    Manifest(entries_s).write(folder / "stems.jsonl")
    (folder / "system.json").write_text(json.dumps(extra, indent=1))
    return Manifest(entries_m).write(folder / "mix.jsonl")


def reference_sets(train: Sequence[Any], classes: Sequence[str], folder: Path, sr: int, preset: StemGenTinyPreset
                   ) -> dict[str, Path]:
    """Real training audio cut to the evaluation length: 'mix' (sum of the stems) and one set per class."""
    from .stems import make_example

    n = int(round(preset.clip_seconds * sr))
    done = folder / "done.json"
    want = {"classes": sorted(classes), "ids": [t.id for t in train], "n": n, "cap": preset.n_reference}
    sets = {"mix": folder / "mix.jsonl", **{c: folder / f"stems_{c}.jsonl" for c in classes}}
    if done.is_file() and json.loads(done.read_text()) == want and all(p.is_file() for p in sets.values()):
        return sets
    mixes: list[ManifestEntry] = []
    per_class: dict[str, list[ManifestEntry]] = {c: [] for c in classes}
    for t in train:
        need_mix = len(mixes) < preset.n_reference
        need = [k for k, c in sorted(t.classes.items()) if c in per_class and len(per_class[c]) < preset.n_reference]
        if not need_mix and not need:
            continue
        stems = _clip_stems(t, sr, n)
        if need_mix:
            mix = sum(stems.values())
            mixes.append(ManifestEntry(t.id, "", _write(folder / "mix", t.id, np.clip(mix, -1, 1), sr), n / sr))
        for k in need:
            c = t.classes[k]
            per_class[c].append(ManifestEntry(f"{t.id}_{k}", "", _write(folder / c, f"{t.id}_{k}", stems[k], sr), n / sr))
    Manifest(mixes).write(sets["mix"])
    for c, es in per_class.items():
        Manifest(es).write(sets[c])
    done.write_text(json.dumps(want))
    return sets


# ---------------------------------------------------------------------------------------------- model


def training_manifest(manifest: Path, out: Path, train_clips: Optional[int]) -> Path:
    """The corpus manifest, or (train_clips set) a copy holding the first N training clips and every other clip."""
    if not train_clips:
        return manifest
    corpus = Manifest.read(manifest)
    seen, keep = 0, []
    for e in corpus:
        if e.labels.get("split") in (None, "train"):
            seen += 1
            if seen > train_clips:
                continue
        keep.append(e)
    return Manifest(keep).write(out / f"manifest_train{int(train_clips)}.jsonl")


def train_model(manifest: Path, codec: Path, out: Path, preset: StemGenTinyPreset) -> Path:
    """The tiny StemGen (a finished run with the same settings is reused without re-encoding the corpus)."""
    from .solvers.stemgen import train_stemgen

    want = {"manifest": str(manifest), "train_clips": preset.train_clips, "codec": str(codec), "steps": preset.steps, "batch": preset.batch_size,
            "lr": preset.lr, "segment": preset.segment_seconds, "seed": preset.seed}
    done, export = out / "reproduce_done.json", out / "stemgen.pt"
    if done.is_file() and export.is_file() and json.loads(done.read_text()) == want:
        return export
    path = train_stemgen(training_manifest(manifest, out.parent, preset.train_clips), out, codec, PRESET_NAME, preset.steps, preset.batch_size, preset.lr,
                         preset.segment_seconds, seed=preset.seed,
                         train_overrides={"valid_every": preset.steps})  # one validation, at the end (for the note)
    done.write_text(json.dumps(want))
    return Path(path)


def generate_stems(lm: Any, codec: Any, items: Sequence[HeldOutStem], ab: Ablation, preset: StemGenTinyPreset
                   ) -> list[np.ndarray]:
    """The stems of one system, in batches; each clip's seed comes from the run seed and its id."""
    import torch

    from .models.generator import derive_seed
    from .models.stemgen import StemGenDecoding

    dec = StemGenDecoding(decoding_steps=list(ab.decoding_steps), cfg_weights=preset.cfg_weights if ab.cfg else None,
                          causal_bias=ab.causal_bias)
    out: list[np.ndarray] = []
    for b in range(0, len(items), preset.batch):
        chunk = items[b: b + preset.batch]
        with torch.no_grad():
            ctx = torch.cat([codec.encode(torch.from_numpy(it.context)[None, None]) for it in chunk])
            codes = lm.generate(ctx, lm.instrument_ids([it.instrument for it in chunk]), dec,
                                seeds=[derive_seed(preset.seed, it.id) for it in chunk])
            wav = codec.decode(codes)[:, 0].float().numpy()
        out += list(wav)
    return out


# ---------------------------------------------------------------------------------------------- metrics


def alignment_of(folder: Path, items: Sequence[HeldOutStem], context_features: dict[str, Any], sr: int,
                 preset: StemGenTinyPreset) -> dict[str, dict]:
    """{metric: {value, ci_low, ci_high, n}} of one system (cached in its folder); drums skip the tonal metrics."""
    from .audio import load_audio
    from .metrics.stem_alignment import StemAlignment
    from .mir.alignment import alignment_features

    cache = folder / "alignment.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    metric = StemAlignment(n_bootstrap=preset.n_bootstrap, seed=preset.seed)
    for it in items:
        stem = alignment_features(load_audio(folder / "stems" / f"{it.id}.wav", sr=sr)[0], sr)
        mix = alignment_features(load_audio(folder / "mix" / f"{it.id}.wav", sr=sr)[0], sr)
        metric.update(it.id, context_features[it.id], stem, mix, tonal=it.instrument != "drums")
    res = {r.metric: {"value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                      "n": int(r.details.get("n_defined", 0))} for r in metric.compute()}
    cache.write_text(json.dumps(res, indent=1))
    return res


def _evaluate(target: Path, generated: Path | Manifest, reference: Path, metrics: list[str], system: str,
              preset: StemGenTinyPreset) -> Path:
    from .evaluation import evaluate, save_results

    if not target.is_file():
        res, per = evaluate(generated, reference, metrics, "musicnn", system, n_bootstrap=preset.n_bootstrap,
                            seed=preset.seed, on_missing_weights="row", on_error="row")
        save_results(res, per, target)
    return target


def _value(parquet: Path, metric: str) -> tuple[float, float, float]:
    import pandas as pd

    df = pd.read_parquet(parquet)
    row = df[(df.metric == metric) & (df.status == "ok")]
    if not len(row):
        return math.nan, math.nan, math.nan
    r = row.iloc[0]
    return float(r.value), float(r.ci_low), float(r.ci_high)


def measure_system(name: str, folder: Path, items: Sequence[HeldOutStem], refs: dict[str, Path],
                   fad_classes: Sequence[str], context_features: dict[str, Any], sr: int, preset: StemGenTinyPreset
                   ) -> tuple[dict, Path]:
    """One table row (alignment, FAD of mixes, MIRDD of stem + context, FAD per class) and the results file
    (FAD of mixes + MIRDD, for the report's Table 1)."""
    import pandas as pd

    from .evaluation import save_results

    row: dict[str, Any] = {"system": name}
    for k, v in alignment_of(folder, items, context_features, sr, preset).items():
        row[k], row[f"{k}_ci_low"], row[f"{k}_ci_high"] = v["value"], v["ci_low"], v["ci_high"]
    fad_mix = _evaluate(folder / "fad_mix.parquet", folder / "mix.jsonl", refs["mix"], ["fad"], name, preset)
    mirdd = _evaluate(folder / "mirdd.parquet", folder / "stems.jsonl", refs["mix"], ["mirdd"], name, preset)
    row["fad_mix"], row["fad_mix_ci_low"], row["fad_mix_ci_high"] = _value(fad_mix, "fad")
    row["mirdd"], row["mirdd_ci_low"], row["mirdd_ci_high"] = _value(mirdd, "mirdd")
    stems = Manifest.read(folder / "stems.jsonl")
    for c in fad_classes:
        sub = Manifest([e for e in stems if e.labels.get("instrument") == c])
        p = _evaluate(folder / f"fad_{c}.parquet", sub, refs[c], ["fad"], f"{name} [{c}]", preset)
        row[f"fad[{c}]"] = _value(p, "fad")[0]
    combined = folder / "table1_results.parquet"
    if not combined.is_file():
        res = pd.concat([pd.read_parquet(fad_mix), pd.read_parquet(mirdd)], ignore_index=True)
        save_results(res, pd.DataFrame(columns=["system", "id", "metric", "value"]), combined)
    return row, combined


# ---------------------------------------------------------------------------------------------- verdicts


def between_verdict(table: "Any", model: str = MODEL) -> str:
    """Whether `model` sits between the mismatched floor and the real ceiling on each alignment metric."""
    rows = {r["system"]: r for r in table.to_dict("records")}
    if not all(s in rows for s in (CEILING, FLOOR, model)):
        return "Floor / ceiling check: a row is missing."
    parts = []
    for m in ALIGNMENT:
        lo, mid, hi = rows[FLOOR][m], rows[model][m], rows[CEILING][m]
        if not all(math.isfinite(x) for x in (lo, mid, hi)):
            parts.append(f"{ALIGNMENT_LABELS[m]}: not defined")
            continue
        if lo <= mid <= hi or hi <= mid <= lo:
            where = "between floor and ceiling"
        elif (mid < min(lo, hi)):
            where = "BELOW both (worse than a mismatched real stem)"
        else:
            where = "ABOVE both"
        order = "" if hi >= lo else " (the ceiling is not above the floor here: the metric does not separate them)"
        parts.append(f"{ALIGNMENT_LABELS[m]}: floor {lo:.3f}, {model} {mid:.3f}, ceiling {hi:.3f}: {where}{order}")
    return f"Does {model} sit between the mismatched-context floor and the real-stem ceiling? " + "; ".join(parts) + "."


def ablation_verdicts(table: "Any", names: Sequence[str], model: str = MODEL) -> list[str]:
    """Per ablation, what it changed against `model` on every column (higher is better for alignment,
    lower for FAD and MIRDD)."""
    rows = {r["system"]: r for r in table.to_dict("records")}
    if model not in rows:
        return []
    base = rows[model]
    cols = list(ALIGNMENT) + ["fad_mix", "mirdd"]
    out = []
    for name in names:
        if name not in rows:
            continue
        bits = []
        for c in cols:
            a, b = base.get(c, math.nan), rows[name].get(c, math.nan)
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            higher_better = c in ALIGNMENT
            better = (b > a) if higher_better else (b < a)
            word = "same" if f"{a:.3f}" == f"{b:.3f}" else ("better" if better else "worse")
            bits.append(f"{COLUMN_LABELS.get(c, c)} {a:.3f} -> {b:.3f} ({word})")
        out.append(f"Ablation '{name}' vs {model}: " + "; ".join(bits) + ".")
    return out


def _fmt(v: float, lo: float = math.nan, hi: float = math.nan) -> str:
    if not math.isfinite(v):
        return "-"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{v:.3f}"


def table_display(table: "Any") -> "Any":
    """The readable table: one column per metric with its 95% interval, direction in the header."""
    import pandas as pd

    rows = []
    for r in table.to_dict("records"):
        d = {"system": r["system"]}
        for m in ALIGNMENT:
            d[f"{ALIGNMENT_LABELS[m]} ↑"] = _fmt(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"])
        d["FAD mix [musicnn] ↓"] = _fmt(r["fad_mix"], r["fad_mix_ci_low"], r["fad_mix_ci_high"])
        d["MIRDD stem+context ↓"] = _fmt(r["mirdd"], r["mirdd_ci_low"], r["mirdd_ci_high"])
        for c in [k for k in r if k.startswith("fad[")]:
            d[f"FAD {c[4:-1]} ↓"] = _fmt(r[c])
        rows.append(d)
    return pd.DataFrame(rows)


def _section(display: "Any") -> str:
    from .report.html import frame_to_html

    return ("<h2>Stem evaluation (StemGen tiny)</h2>\n"
            '<p class="meta">Alignment metrics compare each stem with its own context (higher is better; tonal '
            "ones skip drum stems); FAD and MIRDD compare populations with real training audio (lower is better). "
            "Intervals: bootstrap 95% over clips.</p>\n"
            + frame_to_html(display, numeric=[c for c in display.columns if c != "system"]))


# ---------------------------------------------------------------------------------------------- run


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def run_stemgen_tiny(out: Path, work: Path, preset: StemGenTinyPreset = StemGenTinyPreset(), command: str = "") -> Path:
    """The whole preset; returns the report's index.html. `work` is the tiny preset's work folder (shared)."""
    import pandas as pd
    import torch

    from .audio import load_audio
    from .mir.alignment import alignment_features
    from .models.codec import load_codec
    from .models.stemgen import build_stemgen
    from .report import build_report
    from .report.tables import to_markdown
    from .solvers.recipes import TINY, train_tiny_codec
    from .solvers.tokens import file_sha256
    from .solvers.train_log import last_valid_metrics
    from .stems import read_corpus

    own = work / SUBDIR
    own.mkdir(parents=True, exist_ok=True)
    run = Run(work, out)
    with torch_threads(2):
        run.stage("corpus: compose and render (shared with the tiny preset)", lambda: tiny_corpus(work, preset.tiny))
        manifest = work / "corpus" / "manifest.jsonl"
        codec_path = Path(run.stage("codec (tiny, shared with the tiny preset)", lambda: train_tiny_codec(
            manifest, work / "models" / "codec", preset.tiny.train or TINY, preset.tiny.seed)))
        model_path = run.stage("train: StemGen tiny", lambda: train_model(manifest, codec_path, own / "models" / "stemgen",
                                                                        preset))
        codec = load_codec(str(codec_path)).eval()
        sr = int(codec.sample_rate)
        tracks = read_corpus(manifest)
        test = [t for t in tracks if t.split == "test"][: preset.n_clips or None]
        train = [t for t in tracks if t.split in (None, "train")]
        items = held_out_items(test, sr, preset.clip_seconds)
        if not items:
            raise ValueError("the corpus has no held-out clip with two or more stems")
        key = _key(file_sha256(model_path), [i.id for i in items], asdict(preset))
        root = own / f"eval-{key}"
        ctx_dir = root / "context"
        contexts = {it.id: str((ctx_dir / f"{it.id}.wav").resolve()) if (ctx_dir / f"{it.id}.wav").is_file()
                    else _write(ctx_dir, it.id, it.context, sr) for it in items}
        if not (ctx_dir / "manifest.jsonl").is_file():
            Manifest([ManifestEntry(it.id, f"context for {it.part} ({it.instrument})", contexts[it.id],
                                    len(it.context) / sr) for it in items]).write(ctx_dir / "manifest.jsonl")
        counts: dict[str, int] = {}
        for it in items:
            counts[it.instrument] = counts.get(it.instrument, 0) + 1
        fad_classes = sorted(c for c, n in counts.items() if n >= preset.min_fad_clips)
        refs = run.stage("reference sets (real training mixes and stems)", lambda: reference_sets(
            train, fad_classes, own / "reference", sr, preset))

        folders: dict[str, Path] = {CEILING: root / "real", FLOOR: root / "mismatched"}
        if not (folders[CEILING] / "mix.jsonl").is_file():
            write_system(folders[CEILING], items, [it.stem for it in items], contexts, sr, {"system": CEILING})
        if not (folders[FLOOR] / "mix.jsonl").is_file():
            mism = mismatched_stems(items, train, sr, preset.clip_seconds)
            write_system(folders[FLOOR], items, [s for _, s in mism], contexts, sr,
                         {"system": FLOOR, "sources": {it.id: src for it, (src, _) in zip(items, mism)}})
        lm, _ = build_stemgen(str(model_path), "cpu", codec=str(codec_path))
        abl = ablations(preset)
        for ab in abl:
            folder = folders[ab.name] = root / _safe(ab.name)
            if not (folder / "mix.jsonl").is_file():
                def make(ab: Ablation = ab, folder: Path = folder) -> None:
                    t0 = time.perf_counter()
                    stems = generate_stems(lm, codec, items, ab, preset)
                    write_system(folder, items, stems, contexts, sr,
                                 {"system": ab.name, **asdict(ab), "seconds": time.perf_counter() - t0})
                run.stage(f"generate: {ab.name}", make)

        context_features = run.stage("alignment features of the contexts", lambda: {
            it.id: alignment_features(load_audio(contexts[it.id], sr=sr)[0], sr) for it in items})
        rows, result_files = [], []
        for name, folder in folders.items():
            row, res = run.stage(f"measure: {name}", lambda name=name, folder=folder: measure_system(
                name, folder, items, refs, fad_classes, context_features, sr, preset))
            rows.append(row)
            result_files.append(res)
        table = pd.DataFrame(rows)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "stemgen_table.csv", index=False)
        display = table_display(table)
        (out / "stemgen_table.md").write_text(to_markdown(display), encoding="utf-8")

        m = last_valid_metrics(Path(model_path).parent / "train_log.csv")
        notes = [f"Command: {command}" if command else "",
                 f"Held-out items: {len(items)} test-split clips of the tiny corpus, first {preset.clip_seconds:g} s, one "
                 f"target stem each (parts in turn: {', '.join(f'{c} {n}' for c, n in sorted(counts.items()))}); the "
                 "context is the sum of the clip's other stems. Mismatched floor: a real stem of the same instrument "
                 "class from another clip over this clip's context.",
                 between_verdict(table), *ablation_verdicts(table, [a.name for a in abl[1:]]),
                 f"StemGen tiny: {sum(p.numel() for p in lm.parameters()) / 1e6:.2f}M parameters, {preset.steps} steps "
                 f"(batch {preset.batch_size}, {preset.segment_seconds:g} s crops); validation masked-token accuracy "
                 f"{m.get('valid_accuracy', math.nan):.3f} vs unigram floor {m.get('valid_unigram_accuracy', math.nan):.3f}. "
                 f"Decoding: {','.join(map(str, preset.decoding_steps))} iterations per level (the paper's 128/64/32/32 "
                 f"scaled down for CPU), guidance weights {preset.cfg_weights}, causal bias {preset.causal_bias}.",
                 f"FAD per instrument class only for classes with >= {preset.min_fad_clips} held-out stems "
                 f"({', '.join(fad_classes) or 'none'}); references: up to {preset.n_reference} real training "
                 f"clips (first {preset.clip_seconds:g} s) per set. The floor's stems of a class are the same "
                 "held-out stems as the ceiling's, reassigned to other contexts, so its per-class FAD can equal the "
                 "ceiling's: per-class FAD measures the stems, the alignment columns measure the fit.",
                 fad_size_caveat(pd.concat([pd.read_parquet(f) for f in result_files])),
                 *run.stage_notes(own)]
        audio_dirs = {"context alone": ctx_dir / "manifest.jsonl",
                      **{n: f / "mix.jsonl" for n, f in folders.items()}}
        index = run.stage("report", lambda: build_report(
            result_files, out, audio_dirs=audio_dirs,
            title="magnet-eval: StemGen tiny, stem evaluation", notes=[n for n in notes if n],
            n_audio=preset.audio_examples, seed=preset.seed, sections=[_section(display)],
            extra_files={"stem table csv": out / "stemgen_table.csv", "stem table markdown": out / "stemgen_table.md"}))
        (out / "stages.json").write_text(json.dumps([s.__dict__ for s in run.stages], indent=1))
    info(f"StemGen tiny table: {out / 'stemgen_table.md'}")
    return Path(index)


__all__ = ["Ablation", "HeldOutStem", "StemGenTinyPreset", "ablation_verdicts", "ablations", "between_verdict",
           "held_out_items", "mismatched_stems", "run_stemgen_tiny", "table_display"]
