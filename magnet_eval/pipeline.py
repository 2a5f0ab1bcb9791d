"""The one generate-then-evaluate pipeline: requests -> generation -> audio on disk with a log -> evaluation
-> results files + ledger.

Why one: `generate`, `evaluate`, `compare` (checkpoints) and `reproduce` all run these stages, and
they must agree; above all on seeding. The rule, for every caller: clip `id` of a run with seed
`seed` is generated with `derive_seed(seed, id)`, so its audio does not depend on the other
prompts, the batch size or the order (on CPU in float32 it is bit-identical; docs/determinism.md).

Generation (`generate`): OUT/{id}.wav per request, OUT/manifest.jsonl and OUT/log.jsonl (one line
per clip: prompt, seeds, settings, time per sample). A killed run resumes: clips already written and
logged are not redone; a resume must use the same settings, and the batch size may change only
where generation is batch-invariant (`batch_invariant`). Systems come from the registry (`systems/`).
Evaluation is `evaluation.evaluate`; `evaluate_to_files` writes its results and appends them to the ledger.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from .errors import MagnetEvalError

if TYPE_CHECKING:
    import pandas as pd

    from .manifest import Manifest
    from .systems.registry import Request

LOG_FILE = "log.jsonl"
MANIFEST_FILE = "manifest.jsonl"


# ---------------------------------------------------------------------------------------------- requests


def read_prompts(prompts: str, need_text: bool = True) -> "Manifest":
    """A manifest (.jsonl, a folder with manifest.jsonl), a .txt file (one prompt per line) or a literal prompt.

    need_text False (families that answer audio: VampNet, StemGen): entries without a caption are
    kept, and so is each entry's audio (its context).
    """
    from .errors import ManifestError
    from .manifest import Manifest, ManifestEntry, prompts_manifest, read_any
    from .validate import non_empty_text, read_text

    non_empty_text("--prompts", prompts)  # before Path(""), which is the current folder
    p = Path(prompts).expanduser()
    if p.exists():
        if p.is_file() and p.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in read_text(p, "prompts file", ManifestError).splitlines() if ln.strip()]
            if not lines:
                raise ManifestError(f"{p}: prompts file holds no prompt (only blank lines)")
            return prompts_manifest(lines)
        manifest = read_any(p)
        missing = [e.id for e in manifest if not (e.caption or "").strip()]
        if missing and need_text:
            raise ManifestError(f"{p}: {len(missing)} entries have no caption to use as a prompt "
                                f"(first: {', '.join(missing[:5])})")
        bad = [e.id for e in manifest if re.search(r"[/\\\x00]", e.id)]
        if bad:
            raise ManifestError(f"{p}: ids must be usable as file names, these are not: {', '.join(bad[:5])}")
        return Manifest([ManifestEntry(id=e.id, caption=e.caption, labels=dict(e.labels),
                                       audio_path=None if need_text else e.audio_path) for e in manifest],
                        source=str(p))
    if not prompts.strip():
        raise ManifestError("--prompts is empty: give a prompt text, a .txt file or a manifest")
    return prompts_manifest([prompts])


def requests_from(manifest: "Manifest") -> list["Request"]:
    """One registry request per manifest entry: caption as text, labels.instrument / labels.prompt_mask if any."""
    from .systems.registry import Request

    return [Request(id=e.id, text=e.caption or None, audio=e.audio_path or None,
                    prompt_mask=e.labels.get("prompt_mask"), instrument=e.labels.get("instrument"))
            for e in manifest]


# ---------------------------------------------------------------------------------------------- resume rules


def read_log(path: Path) -> dict[str, dict]:
    """Finished clips of a previous run, by id; a line half-written by a kill is cut off the file."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text, encoding="utf-8")
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "id" in rec:
            done[str(rec["id"])] = rec
    return done


RANK_LOG = "log.rank{rank}.jsonl"
RANK_LOG_GLOB = "log.rank*.jsonl"


def merge_rank_logs(out: Path, order: Sequence[str]) -> None:
    """Fold the per-rank logs of a sharded run (finished or killed) into OUT/log.jsonl, the whole log
    rewritten in manifest order (ids not in `order` last; a rank's record, the newer, replaces one
    already there for a clip generated again); written atomically, then the rank logs are removed.

    The whole log, not only the new records: a rank killed ahead of the others leaves later clips in
    the log before earlier ones, which the resumed run then generates.
    """
    from .files import atomic_write

    rank_logs = sorted(out.glob(RANK_LOG_GLOB))
    if not rank_logs:
        return
    log_path = out / LOG_FILE
    records = read_log(log_path)
    for p in rank_logs:
        records.update(read_log(p))
    pos = {clip_id: i for i, clip_id in enumerate(order)}
    with atomic_write(log_path, "w") as f:
        f.write("".join(json.dumps(records[k]) + "\n" for k in sorted(records, key=lambda k: (pos.get(k, len(pos)), k))))
    for p in rank_logs:
        p.unlink(missing_ok=True)


def batch_invariant(device: str, dtype: Optional[str]) -> bool:
    """Whether a clip's audio is bit-identical whatever its batch on this device and precision.

    True on CPU in float32 (tested); on GPU the forward pass's float rounding can depend on the batch
    size, and half precision makes that visible (docs/determinism.md).
    """
    return str(device).split(":")[0] == "cpu" and dtype in ("float32", "fp32")


def check_resume(out: Path, done: dict[str, dict], settings: dict[str, Any], batch_size: int, device: str) -> None:
    """Refuse to add clips to a run made otherwise: other model/decoding/seed/precision settings, another
    kind of device, or another batch size unless generation is bit-invariant to it (CPU float32)."""
    hint = "use another --out, or --overwrite to start again"
    kind = device.split(":")[0]
    for rec in done.values():
        if rec.get("settings") != settings:
            raise MagnetEvalError(
                f"{out} holds clips generated with other settings ({json.dumps(rec.get('settings'))}); {hint}")
        old_kind = str(rec.get("device", kind)).split(":")[0]
        if old_kind != kind:
            raise MagnetEvalError(f"{out} holds clips generated on {old_kind}, this run is on {kind}: the audio "
                                  f"would not be what one run gives; use --device {old_kind}, or {hint}")
        old_bs = rec.get("batch_size")
        if old_bs is not None and int(old_bs) != batch_size and not batch_invariant(kind, settings.get("dtype")):
            raise MagnetEvalError(
                f"{out} holds clips generated with --batch-size {old_bs}, this run asks for {batch_size}: on "
                f"{kind} in {settings.get('dtype')} a clip's audio may depend on its batch size "
                f"(docs/determinism.md); resume with --batch-size {old_bs}, or {hint}")


def check_lm_options(decoding: dict[str, Any], rescorer: Optional[str], prompt_audio: Optional[Path]) -> None:
    """--rescore-weight in [0, 1] and only with --rescorer; --hybrid-prefix >= 0; --prompt-audio readable."""
    from .errors import InvalidOptionError
    from .validate import non_empty_text, non_negative_float, probability, readable_audio_file

    if decoding.get("rescore_weight") is not None:
        probability("--rescore-weight", decoding["rescore_weight"], low_open=False)
        if not rescorer:
            raise InvalidOptionError("--rescore-weight needs --rescorer MODEL (the MusicGen that rescores MAGNeT's tokens)")
    if rescorer is not None:
        non_empty_text("--rescorer", rescorer)
    if decoding.get("hybrid_prefix") is not None:
        non_negative_float("--hybrid-prefix", decoding["hybrid_prefix"])
    if prompt_audio is not None:
        readable_audio_file(prompt_audio)


# ---------------------------------------------------------------------------------------------- generation


def generate(model: str, prompts: str, out: Path, *, duration: float = 10.0, batch_size: int = 4,
             seed: int = 0, device: str = "cpu", dtype: Optional[str] = None, overwrite: bool = False,
             text_encoder: Optional[str] = None, stage_attention: Optional[str] = None,
             generator: Any = None, rescorer: Optional[str] = None, prompt_audio: Optional[Path] = None,
             part: Optional[tuple[int, Sequence[str]]] = None, **decoding: Any) -> Path:
    """Generate every prompt of `prompts` into `out` (see the module docstring); returns the manifest path.

    model: a spec the system registry resolves (preset, checkpoint, hub name); generator: an already
    loaded MAGNeT/MusicGen Generator (or a stand-in with its `generate`) used instead. rescorer: a
    MusicGen that rescores MAGNeT's tokens (its weight is the decoding knob rescore_weight);
    prompt_audio: a clip every generation continues (its tokens kept). part (k, ids): only the prompts
    in `ids`, logged to rank k's log as a sharded run's rank would, without merging logs or writing the
    manifest (the next whole run does): how processes outside a process group split one generation
    (the tiny preset's two training workers). decoding: the model's knobs, passed through untouched.
    """
    from .audio import save_audio
    from .manifest import Manifest, ManifestEntry
    from .models.generator import derive_seed
    from .progress import info, track
    from .systems.magnet import TORCH_DTYPES, lm_system
    from .systems.registry import family_for
    from .validate import decoding_options, generation_duration, positive_int, writable_output

    # options first (before a model is loaded or a clip generated); the duration bound is refined below
    generation_duration("--duration", duration)
    positive_int("--batch-size", batch_size)
    decoding_options(decoding)
    check_lm_options(decoding, rescorer, prompt_audio)
    writable_output(out, "--out", kind="dir")
    family = family_for(model) if generator is None else None
    manifest = read_prompts(prompts, need_text=family is None or "text" in family.needs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if dtype is None:  # as audiocraft: half precision on GPU, full on CPU
        dtype = "float16" if str(device).startswith("cuda") else "float32"
    if dtype not in TORCH_DTYPES:
        raise MagnetEvalError(f"--dtype must be float32, float16 or bfloat16, got {dtype!r}")
    requests = requests_from(manifest)
    if generator is not None:
        system: Any = lm_system(generator, device=device, dtype=dtype, text_encoder=text_encoder,
                                rescorer=rescorer, prompt_audio=prompt_audio)
    else:
        family.validate(requests)
        system = family.build(model, device, dtype, text_encoder=text_encoder, stage_attention=stage_attention,
                              rescorer=rescorer, prompt_audio=prompt_audio)
    generation_duration("--duration", duration, float(getattr(system, "frame_rate", 50.0)),
                        float(getattr(system, "max_period", 10000.0)))
    # what a resumed run must share with the clips already there (the batch size: see check_resume)
    settings = {"model": model, "duration": duration, "seed": seed, "dtype": dtype, **system.settings(**decoding)}
    sys_device = str(getattr(system, "device", device))

    from . import sharding

    log_path = out / LOG_FILE
    order = [r.id for r in requests]
    if part is not None and overwrite:
        raise MagnetEvalError("a part of a generation cannot --overwrite (the whole run decides that)")
    if sharding.is_main() and part is None:  # before any rank reads the log: start again, or take in rank logs
        if overwrite:
            for p in [log_path, *out.glob(RANK_LOG_GLOB)]:
                p.unlink(missing_ok=True)
        else:
            merge_rank_logs(out, order)
    sharding.barrier()
    done = read_log(log_path)
    if part is not None:  # the given prompts, into rank k's log (which may already hold some of them)
        log_path = out / RANK_LOG.format(rank=int(part[0]))
        done.update(read_log(log_path))
    check_resume(out, done, settings, batch_size, sys_device)
    rank, world = sharding.rank_world()
    if part is not None:
        wanted = set(part[1])
        mine = [r for r in requests if r.id in wanted]
    else:  # every world-th prompt in manifest order; each rank logs to its own file, merged by rank 0
        if world > 1:
            log_path = out / RANK_LOG.format(rank=rank)
        mine = sharding.shard(requests)
    todo = [r for r in mine if not (r.id in done and (out / f"{r.id}.wav").is_file())]
    if len(todo) < len(mine):
        info(f"resuming: {len(mine) - len(todo)} of {len(mine)} clips already in {out}")
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    for batch in (track(batches, f"generating with {system.name}") if batches else []):
        seeds = [derive_seed(seed, r.id) for r in batch]
        t0 = time.perf_counter()
        wavs, sr, stats = system.generate(batch, seeds, duration, **decoding)
        elapsed = time.perf_counter() - t0
        with log_path.open("a", encoding="utf-8") as log:
            for r, w, s in zip(batch, wavs, seeds):
                save_audio(out / f"{r.id}.wav", w, sr)
                rec = {"id": r.id, "prompt": r.text, "audio": f"{r.id}.wav", "seed": seed, "sample_seed": s,
                       "settings": settings, "time_per_sample_s": elapsed / len(batch), "batch_time_s": elapsed,
                       "batch_size": batch_size, "batch_len": len(batch), "sample_rate": sr, "samples": int(w.shape[-1]),
                       "frames": stats.get("frames"), "decoding_steps": stats.get("decoding_steps"),
                       "forward_passes": stats.get("forward_passes"),
                       "rescorer_forward_passes": stats.get("rescorer_forward_passes"), "device": sys_device}
                log.write(json.dumps(rec) + "\n")
            log.flush()
    if part is not None:
        return out / MANIFEST_FILE  # written by the whole run that follows
    sharding.barrier()
    if not sharding.is_main():
        return out / MANIFEST_FILE  # rank 0 merges the logs and writes the manifest
    merge_rank_logs(out, order)
    entries = []
    for e in manifest:
        wav_path = out / f"{e.id}.wav"
        if wav_path.is_file():
            entries.append(ManifestEntry(id=e.id, caption=e.caption, audio_path=str(wav_path.resolve()),
                                         duration=duration, labels=dict(e.labels)))
    path = Manifest(entries).write(out / MANIFEST_FILE)
    info(f"{len(entries)} clips in {out} ({MANIFEST_FILE}, {LOG_FILE})")
    return path


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_to_files(generated: str | Path, system: str, jobs: Sequence[dict[str, Any]], out: str | Path, *,
                      ledger: Any = False, checkpoint: Optional[str] = None,
                      **common: Any) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, Path]]:
    """Evaluate `generated` once per job (reference, metrics, embedder, and any other `evaluate` option)
    into one results table; write it (results .parquet/.csv, .per_sample.parquet) and, unless ledger is
    False, append it to the ledger (None: the default one). common: `evaluate` options shared by the jobs.
    """
    import pandas as pd

    from .evaluation import evaluate, save_results

    frames, samples = [], []
    for job in jobs:
        job = dict(job)
        res, per = evaluate(generated, job.pop("reference"), list(job.pop("metrics")), job.pop("embedder"), system,
                            **{**common, **job})
        frames.append(res)
        samples.append(per)
    results = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    per_sample = samples[0] if len(samples) == 1 else pd.concat(samples, ignore_index=True)
    from . import sharding

    if not sharding.is_main():  # under torchrun rank 0 writes the one results file and ledger row
        return results, per_sample, _results_paths(out)
    paths = save_results(results, per_sample, out)
    if ledger is not False:
        from .ledger import record_results

        record_results(results, checkpoint=checkpoint or system, source=paths["results"], ledger=ledger)
    return results, per_sample, paths


def _results_paths(out: str | Path) -> dict[str, Path]:
    """Where `save_results` writes (what ranks other than 0 report without writing)."""
    out = Path(out).with_suffix(".parquet")
    return {"results": out, "csv": out.with_suffix(".csv"),
            "per_sample": out.with_name(out.stem + ".per_sample.parquet")}


def generate_and_evaluate(model: str, prompts: str | Path, reference: str | Path | None, out_dir: str | Path, *,
                          name: str, metrics: Sequence[str], embedder: Any, duration: float, seed: int,
                          batch_size: int, device: str = "cpu", n_bootstrap: int = 200, generator: Any = None,
                          ledger: Any = False) -> Path:
    """Generate the prompts with one model into OUT_DIR/<name>/ and evaluate them into
    OUT_DIR/<name>.results.parquet (returned); metrics whose weights are missing or that fail give rows."""
    folder = Path(out_dir) / safe_name(name)
    manifest = generate(model, str(prompts), folder, duration=duration, batch_size=batch_size, seed=seed,
                        device=device, generator=generator)
    job = {"reference": reference, "metrics": list(metrics), "embedder": embedder}
    _, _, paths = evaluate_to_files(manifest.parent, name, [job], Path(out_dir) / f"{safe_name(name)}.results.parquet",
                                    ledger=ledger, n_bootstrap=n_bootstrap, seed=seed, on_missing_weights="row",
                                    on_error="row")
    return paths["results"]


def safe_name(text: str) -> str:
    """A file-name-safe form of a model or system name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"
