"""`evaluate`: generated audio + a reference (audio manifest or cached statistics) -> metric tables.

Orchestration only; the metrics live in `metrics/`, embeddings in `embedders/` and the per-file
cache in `embedding_cache`. Decisions made here, the same for every metric:

- Audio (generated and reference alike) is loudness-normalised to -14 LUFS (audiocraft's
  14 dB headroom) at its own rate, then resampled to the model's rate with the toolkit's one
  resampler. Reference statistics record this and are refused if made otherwise.
- Every per-file embedding / classifier output is cached on disk (content hash + model +
  weights + rate + preprocessing), so a re-run, or a run killed half-way, recomputes nothing
  that was finished.
- Paired metrics (KL, CLAP) pair by prompt id. A generated id without reference audio (or
  without a caption, for CLAP) is an error listing the ids; reference ids with no generated
  clip are reported (an error with `strict_pairing`).
- `on_missing_weights="row"` (what suites use) turns a MissingWeightsError into result rows with
  status "weights not available" instead of an exception; `on_error="row"` does the same for
  any other failure of a metric (status = the error text). "weights not available" means a
  missing file only: a model that cannot be built (ImportError, an API change, a failing
  constructor) is a ModelLoadError naming its cause (`errors.model_load_errors`).
- Every row records its provenance (reference identity, model weights, protocol) for `compare`,
  and a set measured against itself is labelled, not reported as a measurement (`provenance.py`).

Outputs: results (one row per metric: system, metric, value, ci_low, ci_high, n_generated,
n_reference, embedder, reference, status, details JSON) and per-sample values (system, id,
metric, value).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .embedding_cache import EMBED_BATCH, EmbeddingCache, cached_per_file, embed_files
from .errors import ManifestError, MagnetEvalError, MissingWeightsError, model_load_errors
from .manifest import Manifest, read_any
from .metrics import ROWS, canonical
from .metrics._common import MetricResult
from .pairing import pair_ids
from .progress import info, warn
from .provenance import note_model, stamp
from .reference_stats import ReferenceStats, check_compatible, stats_from_embeddings

if TYPE_CHECKING:
    import pandas as pd

RESULT_COLUMNS = ["system", "metric", "value", "ci_low", "ci_high", "n_generated", "n_reference",
                  "embedder", "reference", "status", "details"]
PER_SAMPLE_COLUMNS = ["system", "id", "metric", "value"]
WEIGHTS_NOT_AVAILABLE = "weights not available"


# ----------------------------------------------------------------------------- model lookup


#: models loaded in this process, by (kind, name, weights file): every metric, system and reference of a
#: run (and `reproduce` / `compare`, which evaluate many) shares one loaded copy instead of reloading it
_LOADED: dict[tuple[str, str, str], Any] = {}


def _loaded(kind: str, spec: str, weights: str | Path | None, load: Callable[[], Any]) -> Any:
    key = (kind, spec, str(Path(weights).expanduser().resolve()) if weights else "")
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def forget_loaded_models() -> None:
    """Drop the per-process model cache (tests; or to free memory between runs)."""
    _LOADED.clear()
    _REFERENCE_STATS.clear()
    _GEOMETRY.clear()


def load_embedder(spec: Any, weights: str | Path | None = None):
    """An Embedder from a name (`embedders.get_embedder(name).load(weights)`, loaded once per process)
    or an object already built."""
    if not isinstance(spec, str):
        return spec
    return _loaded("embedder", spec, weights, lambda: _load_embedder(spec, weights))


def _load_embedder(spec: str, weights: str | Path | None):
    try:
        from .embedders import get_embedder
    except ImportError as exc:  # the embedder registry is missing from this installation
        raise MagnetEvalError(f"embedder {spec!r}: the embedder registry cannot be imported ({exc})") from exc
    emb = get_embedder(spec)
    with model_load_errors(f"embedder {spec!r}"):
        loaded = emb.load(weights=str(weights)) if weights else emb.load()
    return loaded if loaded is not None and hasattr(loaded, "embed") else emb


def load_classifier(spec: Any):
    """A classifier from a name (`embedders.classifiers.get_classifier(name).load()`, once per process) or an object."""
    if not isinstance(spec, str):
        return spec
    return _loaded("classifier", spec, None, lambda: _load_classifier(spec))


def _load_classifier(spec: str):
    try:
        from .embedders.classifiers import get_classifier
    except ImportError as exc:
        raise MagnetEvalError(f"classifier {spec!r}: the classifier registry cannot be imported ({exc})") from exc
    clf = get_classifier(spec)
    with model_load_errors(f"classifier {spec!r}"):
        loaded = clf.load()
    return loaded if loaded is not None and hasattr(loaded, "probs") else clf


def _model_name(model: Any, fallback: str) -> str:
    return str(getattr(model, "name", None) or fallback)


# ----------------------------------------------------------------------------- inputs


def _resolve_generated(generated: Manifest | str | Path) -> Manifest:
    man = generated if isinstance(generated, Manifest) else read_any(generated)
    missing = man.missing_audio()
    if missing:
        shown = ", ".join(e.id for e in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ManifestError(f"{len(missing)} generated entries have no audio file: {shown}")
    return man


def _resolve_reference(reference) -> Manifest | ReferenceStats | None:
    if reference is None or isinstance(reference, (Manifest, ReferenceStats)):
        return reference
    p = Path(reference)
    if p.suffix == ".npz":
        return ReferenceStats.load(p)
    return read_any(p)


# ----------------------------------------------------------------------------- the run


@dataclass
class _Run:
    generated: Manifest
    reference: Manifest | ReferenceStats | None
    system: str
    cache: EmbeddingCache
    normalize: bool
    headroom_db: float
    n_bootstrap: int
    ci: float
    seed: int
    strict_pairing: bool
    reference_label: str
    batch_size: int = EMBED_BATCH
    results: list[tuple[MetricResult, str]] = field(default_factory=list)  # (result, model label)
    _embeddings: dict = field(default_factory=dict)

    def items(self, man: Manifest) -> list[tuple[str, str]]:
        return [(e.id, e.audio_path) for e in man.with_audio()]

    def embeddings(self, embedder, side: str) -> dict[str, np.ndarray]:
        key = (id(embedder), side)
        if key not in self._embeddings:
            man = self.generated if side == "generated" else self.reference
            missing = man.missing_audio()
            if missing:
                warn(f"{len(missing)} {side} entries have no audio file and are left out "
                     f"(first: {missing[0].id})")
            self._embeddings[key] = embed_files(self.items(man), embedder, cache=self.cache, normalize=self.normalize,
                                                headroom_db=self.headroom_db, batch_size=self.batch_size,
                                                description=f"{side} {embedder.name} embeddings")
        return self._embeddings[key]

    def reference_stats(self, embedder, need_frames: bool) -> ReferenceStats:
        if isinstance(self.reference, ReferenceStats):
            check_compatible(self.reference, embedder, normalize=self.normalize, headroom_db=self.headroom_db)
            if need_frames and self.reference.frames is None:
                raise MagnetEvalError(f"{self.reference.path}: these statistics hold no embedding frames, which KAD "
                                      "needs; rebuild them with `magnet-eval stats build` or give reference audio")
            return self.reference
        if self.reference is None:
            raise MagnetEvalError("FAD/KAD need a reference: an audio manifest or a stats .npz file")
        # once per reference and embedder in this process: the Gaussian, the KAD bandwidth and the reference's
        # O(M^2) kernel term do not depend on the system under test
        key = (_manifest_identity(self.reference), str(embedder.name), str(embedder.weights_id),
               str(getattr(embedder, "version", "")), self.normalize, float(self.headroom_db), self.seed,
               str(self.cache.root), self.cache.enabled)
        have = _REFERENCE_STATS.get(key)
        if have is None or (need_frames and have.kad_reference_term is None):
            emb = self.embeddings(embedder, "reference")
            have = stats_from_embeddings(emb, embedder, manifest_path=self.reference.source, normalize=self.normalize,
                                         headroom_db=self.headroom_db, seed=self.seed, kad=need_frames)
            if len(_REFERENCE_STATS) >= 8:
                _REFERENCE_STATS.pop(next(iter(_REFERENCE_STATS)))
            _REFERENCE_STATS[key] = have
        return have

    def reference_manifest(self, metric: str) -> Manifest:
        if not isinstance(self.reference, Manifest):
            raise MagnetEvalError(f"{metric} compares clips pairwise and needs reference audio (a manifest), "
                                  "not cached statistics")
        return self.reference


#: reference statistics computed in this process, by (reference clips, embedder, preprocessing, seed)
_REFERENCE_STATS: dict[tuple, ReferenceStats] = {}


def _manifest_identity(man: Manifest) -> tuple:
    """What the reference statistics depend on: the clips (ids, files with their size and mtime)."""
    import os

    out = []
    for e in man.with_audio():
        try:
            st = os.stat(e.audio_path)
            out.append((e.id, os.path.abspath(e.audio_path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((e.id, str(e.audio_path), -1, -1))
    return tuple(out)


#: the FAD reference's eigendecomposition (seconds for a 2048-d embedder), once per statistics object
_GEOMETRY: dict[int, tuple[ReferenceStats, Any]] = {}


def _reference_geometry(stats: ReferenceStats):
    """`FixedGaussian` of these statistics, computed once while they are alive in this process."""
    from .metrics.frechet import FixedGaussian

    key = id(stats)
    held = _GEOMETRY.get(key)
    if held is None or held[0] is not stats:
        if len(_GEOMETRY) >= 8:
            _GEOMETRY.pop(next(iter(_GEOMETRY)))
        complete = stats.frames is not None and stats.frames.shape[0] == stats.count  # every frame kept
        held = (stats, FixedGaussian(stats.mean, stats.cov, frames=stats.frames if complete else None))
        _GEOMETRY[key] = held
    return held[1]


def _not_main() -> bool:
    """Under torchrun: a rank other than 0, which takes part in the sharded per-clip stages and leaves the
    metrics (computed from the gathered per-clip results) to rank 0, the one that writes them."""
    from . import sharding

    return not sharding.is_main()


def _fad_kad(run: _Run, embedder, want: list[str]) -> list[MetricResult]:
    from .metrics.fad import FAD
    from .metrics.kad import KAD

    gen = run.embeddings(embedder, "generated")
    ids = list(gen)
    stats = run.reference_stats(embedder, need_frames="kad" in want)
    if _not_main():
        return []
    n_ref = stats.n_clips
    out = []
    if "fad" in want:
        fad = FAD(stats.gaussian(), n_bootstrap=run.n_bootstrap, ci=run.ci, seed=run.seed,
                  reference_geometry=_reference_geometry(stats))
        fad.update([gen[i] for i in ids], ids)
        res = fad.compute()
        inf = fad.compute_fad_inf()
        for r in (res, inf):
            r.n_reference = n_ref
        out += [res, inf]
    if "kad" in want:
        kad = KAD(stats.frames, bandwidth=stats.kad_bandwidth, reference_term=stats.kad_reference_term,
                  n_bootstrap=run.n_bootstrap, ci=run.ci, seed=run.seed)
        kad.update([gen[i] for i in ids], ids)
        res = kad.compute()
        res.n_reference = n_ref
        out.append(res)
    note_model(out, embedder)
    return out


def classifier_probabilities(run: _Run, classifier, man: Manifest, ids: list[str], side: str) -> dict[str, np.ndarray]:
    """Averaged per-clip label distributions (cached per file like embeddings)."""
    from .metrics.kl import clip_probabilities

    sr = int(classifier.sample_rate)
    name = _model_name(classifier, "classifier") + "-probs"
    items = [(i, man.by_id(i).audio_path) for i in ids]
    seg = getattr(classifier, "segment_seconds", None)
    got = cached_per_file(
        items, name=name, weights_id=str(getattr(classifier, "weights_id", name)), sample_rate=sr,
        compute=lambda wav: clip_probabilities(classifier, wav, sr)[None],
        cache=run.cache, normalize=run.normalize, headroom_db=run.headroom_db,
        variant=f"seg{seg:g}" if seg else "", description=f"{side} {name}")
    return {i: v[0] for i, v in got.items()}


def _kl(run: _Run, classifier, metric_name: str) -> list[MetricResult]:
    from .metrics.kl import KL

    ref = run.reference_manifest(metric_name)
    ids = pair_ids(run.generated, ref, strict=run.strict_pairing, what=metric_name)
    gen_p = classifier_probabilities(run, classifier, run.generated, ids, "generated")
    ref_p = classifier_probabilities(run, classifier, ref, ids, "reference")
    if _not_main():
        return []
    kl = KL(metric_name, n_bootstrap=max(run.n_bootstrap, 1000), ci=run.ci, seed=run.seed)
    kl.update(ids, np.stack([gen_p[i] for i in ids]), np.stack([ref_p[i] for i in ids]))
    out = kl.compute()
    labels = getattr(classifier, "labels", None)
    for r in out:
        r.details["classifier"] = _model_name(classifier, "classifier")
        r.details["weights_id"] = str(getattr(classifier, "weights_id", ""))
        if callable(getattr(classifier, "details", None)):
            r.details.update(classifier.details())  # e.g. the PaSST variant (embedders/classifiers.py)
        if labels is not None:
            r.details["n_labels"] = len(labels)
    note_model(out, classifier)
    return out


def _captions(run: _Run) -> dict[str, str]:
    caps = {}
    ref = run.reference if isinstance(run.reference, Manifest) else None
    missing = []
    for e in run.generated:
        text = (e.caption or "").strip()
        if not text and ref is not None and e.id in ref:
            text = (ref.by_id(e.id).caption or "").strip()
        if not text:
            missing.append(e.id)
        caps[e.id] = text
    if missing:
        raise ManifestError(f"CLAP score needs a caption for every generated clip; none for: {', '.join(missing[:20])}"
                            + (" ..." if len(missing) > 20 else ""))
    return caps


def _clap(run: _Run, clap) -> list[MetricResult]:
    from .metrics.clap_score import WINDOW_SECONDS, CLAPScore, audio_embedding, text_embeddings

    caps = _captions(run)
    ids = run.generated.ids()
    text = text_embeddings(clap, [caps[i] for i in ids])  # refuses a dummy tokenizer first
    sr = int(clap.sample_rate)
    audio = cached_per_file(
        [(i, run.generated.by_id(i).audio_path) for i in ids], name=_model_name(clap, "clap") + "-score",
        weights_id=str(clap.weights_id), sample_rate=sr, compute=lambda wav: audio_embedding(clap, wav, sr)[None],
        cache=run.cache, normalize=run.normalize, headroom_db=run.headroom_db, variant=f"win{WINDOW_SECONDS:g}",
        description="generated CLAP audio embeddings")
    if _not_main():
        return []
    checkpoint = str(getattr(clap, "checkpoint", "") or clap.weights_id)
    score = CLAPScore(checkpoint, n_bootstrap=max(run.n_bootstrap, 1000), ci=run.ci, seed=run.seed)
    score.update(ids, text, np.stack([audio[i][0] for i in ids]))
    out = [score.compute()]
    note_model(out, clap)
    return out


def mirdd_results(generated: Manifest, reference: Manifest, *, cache: EmbeddingCache | None = None,
                  normalize: bool = True, headroom_db: float = 14.0, n_bootstrap: int = 200, ci: float = 0.95,
                  seed: int = 0, context: str | None = "auto", workers: int = 2) -> list[MetricResult]:
    """MIRDD of a generated set against a reference set: descriptors extracted (and cached) once, then the metric.

    context: see `mir.extract.describe_manifests` ("auto": stem + context mix for stem generation).
    """
    from .metrics import get_metric_class
    from .mir.extract import describe_manifests, weights_id

    gen, ref, key = describe_manifests(generated, reference, context=context, cache=cache, normalize=normalize,
                                       headroom_db=headroom_db, workers=workers)
    metric = get_metric_class("mirdd")(ref, n_bootstrap=n_bootstrap, ci=ci, seed=seed)
    metric.update(gen)
    results = metric.compute()
    results[0].details.update({"extractor": weights_id(), "stem_plus_context": key is not None, "context_stem": key})
    return results


def chroma_results(generated: Manifest, reference: Manifest, *, cache: EmbeddingCache | None = None,
                   normalize: bool = True, headroom_db: float = 14.0, n_bootstrap: int = 200, ci: float = 0.95,
                   seed: int = 0, strict_pairing: bool = False) -> list[MetricResult]:
    """Chroma cosine of each generated clip against the reference clip of the same prompt id."""
    from .metrics import get_metric_class
    from .mir.chroma import ChromaExtractor, paired_chroma

    ids = pair_ids(generated, reference, strict=strict_pairing, what="chroma cosine similarity")
    extractor = ChromaExtractor()
    gen, ref, frames = paired_chroma(generated, reference, ids, extractor=extractor, cache=cache,
                                     normalize=normalize, headroom_db=headroom_db)
    metric = get_metric_class("chroma_cosine")(n_bootstrap=n_bootstrap, ci=ci, seed=seed,
                                               extractor_settings=extractor.settings())
    metric.update(ids, gen, ref, frames)
    return [metric.compute()]


def _mir_metric(run: _Run, name: str) -> list[MetricResult]:
    """MIRDD / chroma cosine (both need reference audio, not statistics)."""
    ref = run.reference_manifest(name)
    if name == "mirdd" and _not_main():  # MIR descriptors are not sharded: rank 0 extracts them all
        return []
    opts = dict(cache=run.cache, normalize=run.normalize, headroom_db=run.headroom_db, n_bootstrap=run.n_bootstrap,
                ci=run.ci, seed=run.seed)
    if name == "mirdd":
        return mirdd_results(run.generated, ref, **opts)
    return chroma_results(run.generated, ref, strict_pairing=run.strict_pairing, **opts)


def _failed_rows(rows: list[str], status: str, message: str, label: str) -> list[tuple[MetricResult, str]]:
    return [(MetricResult(m, math.nan, status=status, details={"error": message}), label) for m in rows]


def evaluate(
    generated: Manifest | str | Path,
    reference: Manifest | ReferenceStats | str | Path | None,
    metrics: Sequence[str] = ("fad",),
    embedder: str | Any = "musicnn",
    system: str = "system",
    *,
    weights: str | Path | None = None,
    kl_classifier: str | Any | None = None,
    clap_model: str | Any = "clap",
    cache: EmbeddingCache | None = None,
    normalize: bool = True,
    headroom_db: float = 14.0,
    n_bootstrap: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    on_missing_weights: str = "raise",
    on_error: str = "raise",
    strict_pairing: bool = False,
    batch_size: int = EMBED_BATCH,
) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Compute `metrics` for one system; returns (results DataFrame, per-sample DataFrame).

    metrics: fad (also gives fad_inf), kad, kl (PaSST; falls back to kl_musicnn offline),
    kl_musicnn, clap, mirdd, chroma_cosine. embedder: the FAD/KAD embedder (name or object);
    weights: an explicit weights file for it (default: its usual cache location).
    kl_classifier: None = PaSST when its weights are present, else musicnn; or a name/object.
    batch_size: clips per embedder call where the embedder batches (the values do not depend on it).
    """
    if on_missing_weights not in ("raise", "row") or on_error not in ("raise", "row"):
        raise MagnetEvalError("on_missing_weights / on_error must be 'raise' or 'row'")
    from .validate import non_negative_int, probability

    non_negative_int("n_bootstrap (--bootstrap)", n_bootstrap)
    probability("ci (--ci)", ci, low_open=True, high_open=True)
    wanted: list[str] = []
    for m in metrics:
        c = canonical(m)
        if c not in wanted:
            wanted.append(c)
    if not wanted:
        raise MagnetEvalError("no metrics asked for")
    gen = _resolve_generated(generated)
    ref = _resolve_reference(reference)
    if isinstance(ref, ReferenceStats):
        ref_label = ref.path or "<stats>"
    elif isinstance(ref, Manifest):
        ref_label = ref.source or "<manifest>"
    else:
        ref_label = ""
    from .validate import positive_int

    run = _Run(gen, ref, system, cache or EmbeddingCache(), normalize, headroom_db, n_bootstrap, ci, seed,
               strict_pairing, ref_label, positive_int("batch_size (--batch-size)", batch_size))

    def guarded(rows: list[str], label: str, fn: Callable[[], list[MetricResult]]) -> None:
        try:
            got = fn()
        except MissingWeightsError as exc:
            if on_missing_weights == "raise":
                raise
            warn(f"{', '.join(rows)}: {WEIGHTS_NOT_AVAILABLE} ({str(exc).splitlines()[0]})")
            run.results += _failed_rows(rows, WEIGHTS_NOT_AVAILABLE, str(exc), label)
            return
        except Exception as exc:  # noqa: BLE001  (a suite records any failure and goes on)
            if on_error == "raise":
                raise
            text = str(exc) if isinstance(exc, MagnetEvalError) else f"{type(exc).__name__}: {exc}"
            warn(f"{', '.join(rows)} failed: {text}")
            run.results += _failed_rows(rows, text.splitlines()[0] if text else type(exc).__name__, text, label)
            return
        run.results += [(r, label) for r in got]

    emb_label = embedder if isinstance(embedder, str) else _model_name(embedder, "embedder")
    set_metrics = [m for m in wanted if m in ("fad", "kad")]
    if set_metrics:
        rows = [r for m in set_metrics for r in ROWS[m]]

        def do_sets() -> list[MetricResult]:
            emb = load_embedder(embedder, weights) if weights else load_embedder(embedder)
            return _fad_kad(run, emb, set_metrics)

        guarded(rows, emb_label, do_sets)

    for m in wanted:
        if m == "kl":
            if kl_classifier is None:
                def do_kl_default() -> list[MetricResult]:
                    try:
                        clf = load_classifier("passt")
                    except MissingWeightsError as exc:
                        info("KL: PaSST weights are not available; computing kl_musicnn over musicnn's tags instead")
                        run.results += _failed_rows(ROWS["kl"], WEIGHTS_NOT_AVAILABLE,
                                                    f"{exc}\n(kl_musicnn computed instead)", "passt")
                        if "kl_musicnn" not in wanted:
                            guarded(ROWS["kl_musicnn"], "musicnn",
                                    lambda: _kl(run, load_classifier("musicnn"), "kl_musicnn"))
                        return []
                    return _kl(run, clf, "kl")

                guarded(ROWS["kl"], "passt", do_kl_default)
            else:
                label = kl_classifier if isinstance(kl_classifier, str) else _model_name(kl_classifier, "classifier")
                guarded(ROWS["kl"], label, lambda: _kl(run, load_classifier(kl_classifier), "kl"))
        elif m == "kl_musicnn":
            spec = kl_classifier if kl_classifier is not None and not isinstance(kl_classifier, str) else "musicnn"
            guarded(ROWS["kl_musicnn"], "musicnn", lambda: _kl(run, load_classifier(spec), "kl_musicnn"))
        elif m == "clap":
            label = clap_model if isinstance(clap_model, str) else _model_name(clap_model, "clap")
            guarded(ROWS["clap"], label, lambda: _clap(run, load_embedder(clap_model)))
        elif m in ("mirdd", "chroma_cosine"):
            guarded(ROWS[m], "essentia", lambda m=m: _mir_metric(run, m))

    # provenance (reference identity, model, protocol) and self-comparison labels: see provenance.py
    stamp(run.results, gen, ref, normalize=normalize, headroom_db=headroom_db)
    return results_frames(run.results, system, ref_label)


def results_frames(results: list[tuple[MetricResult, str]], system: str, reference: str
                   ) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """(results, per-sample) DataFrames in the agreed schema."""
    import pandas as pd

    rows, samples = [], []
    for r, label in results:
        rows.append({
            "system": system, "metric": r.metric, "value": float(r.value) if r.value is not None else math.nan,
            "ci_low": float(r.ci_low), "ci_high": float(r.ci_high), "n_generated": int(r.n_generated),
            "n_reference": int(r.n_reference), "embedder": str(label), "reference": reference,
            "status": r.status, "details": json.dumps(r.details, default=_json_default),
        })
        for metric, values in r.per_sample.items():
            for clip_id, v in values.items():
                samples.append({"system": system, "id": str(clip_id), "metric": metric, "value": float(v)})
    res = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    res = res.astype({"n_generated": "int64", "n_reference": "int64", "value": "float64",
                      "ci_low": "float64", "ci_high": "float64"})
    per = pd.DataFrame(samples, columns=PER_SAMPLE_COLUMNS).astype({"value": "float64"})
    return res, per


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def save_results(results: "pd.DataFrame", per_sample: "pd.DataFrame", out: str | Path) -> dict[str, Path]:
    """results.parquet + results.csv + results.per_sample.parquet beside it (atomic renames)."""
    out = Path(out)
    if out.suffix != ".parquet":
        out = out.with_suffix(".parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"results": out, "csv": out.with_suffix(".csv"),
             "per_sample": out.with_name(out.stem + ".per_sample.parquet")}
    for key, frame, writer in (("results", results, "parquet"), ("csv", results, "csv"),
                               ("per_sample", per_sample, "parquet")):
        tmp = paths[key].with_name(f".{paths[key].name}.tmp")
        if writer == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        tmp.replace(paths[key])
    return paths
