"""Generate audio from text prompts with MAGNeT or MusicGen (a preset with random weights, a checkpoint or a hub name).

Writes OUT/{id}.wav per prompt, OUT/manifest.jsonl (ids, prompts, audio) and OUT/log.jsonl (one line per clip:
prompt, seeds, settings, time per sample). A killed run resumes: clips already written and logged are not redone.
Each clip's seed is derived from --seed and its id, so it does not depend on the other prompts of its batch.
A resume must use the same settings; the batch size may change only on CPU in float32, where a clip's audio
is bit-identical whatever its batch (docs/determinism.md).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Optional

import typer

LOG_FILE = "log.jsonl"
MANIFEST_FILE = "manifest.jsonl"


def _read_prompts(prompts: str):
    """A manifest (.jsonl, a folder with manifest.jsonl), a .txt file (one prompt per line) or a literal prompt."""
    from ..errors import ManifestError
    from ..manifest import Manifest, ManifestEntry, prompts_manifest, read_any

    from ..validate import non_empty_text, read_text

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
        if missing:
            raise ManifestError(f"{p}: {len(missing)} entries have no caption to use as a prompt "
                                f"(first: {', '.join(missing[:5])})")
        bad = [e.id for e in manifest if re.search(r"[/\\\x00]", e.id)]
        if bad:
            raise ManifestError(f"{p}: ids must be usable as file names, these are not: {', '.join(bad[:5])}")
        return Manifest([ManifestEntry(id=e.id, caption=e.caption, labels=dict(e.labels)) for e in manifest],
                        source=str(p))
    if not prompts.strip():
        raise ManifestError("--prompts is empty: give a prompt text, a .txt file or a manifest")
    return prompts_manifest([prompts])


def _read_log(path: Path) -> dict[str, dict]:
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


def batch_invariant(device: str, dtype: Optional[str]) -> bool:
    """Whether a clip's audio is bit-identical whatever its batch on this device and precision.

    True on CPU in float32 (tested); on GPU the forward pass's float rounding can depend on the batch
    size, and half precision makes that visible (docs/determinism.md).
    """
    return str(device).split(":")[0] == "cpu" and dtype in ("float32", "fp32")


def _check_resume(out: Path, done: dict[str, dict], settings: dict[str, Any], batch_size: int, device: str) -> None:
    """Refuse to add clips to a run made otherwise: other model/decoding/seed/precision settings, another
    kind of device, or another batch size unless generation is bit-invariant to it (CPU float32)."""
    from ..errors import MagnetEvalError

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


def _check_new_options(decoding: dict[str, Any], rescorer: Optional[str], prompt_audio: Optional[Path]) -> None:
    """--rescore-weight in [0, 1] and only with --rescorer; --hybrid-prefix >= 0; --prompt-audio readable."""
    from ..errors import InvalidOptionError
    from ..validate import non_empty_text, non_negative_float, probability, readable_audio_file

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


def _prompt_codes(gen: Any, prompt_audio: Optional[Path]) -> tuple[Any, Optional[dict[str, Any]]]:
    """The --prompt-audio clip as codes [1, K, P] and what the resume settings record of it (name, hash, frames)."""
    if prompt_audio is None:
        return None, None
    from ..audio import load_audio
    from ..files import file_sha1

    wav, sr = load_audio(prompt_audio, sr=gen.sample_rate)
    codes = gen.encode_prompt(wav, sr)
    return codes, {"file": Path(prompt_audio).name, "sha1": file_sha1(Path(prompt_audio)),
                   "frames": int(codes.shape[-1])}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def run_generation(model: str, prompts: str, out: Path, *, duration: float = 10.0, batch_size: int = 4,
                   seed: int = 0, device: str = "cpu", dtype: Optional[str] = None, overwrite: bool = False,
                   text_encoder: Optional[str] = None, stage_attention: Optional[str] = None,
                   generator: Any = None, rescorer: Optional[str] = None, prompt_audio: Optional[Path] = None,
                   **decoding: Any) -> Path:
    """The body of `magnet-eval generate` (importable: tests and `compare` use it); returns the manifest path.

    rescorer: a MusicGen (preset, checkpoint or hub name) that rescores MAGNeT's tokens (its weight is the
    decoding knob rescore_weight); prompt_audio: a clip every generation continues (its tokens kept).
    """
    import torch

    from ..audio import save_audio
    from ..errors import MagnetEvalError
    from ..manifest import Manifest, ManifestEntry
    from ..models.generator import derive_seed, load_generator
    from ..progress import info, track

    from ..validate import decoding_options, generation_duration, positive_int, writable_output

    # options first (before a model is loaded or a clip generated); the duration bound is refined below
    generation_duration("--duration", duration)
    positive_int("--batch-size", batch_size)
    decoding_options(decoding)
    _check_new_options(decoding, rescorer, prompt_audio)
    writable_output(out, "--out", kind="dir")
    manifest = _read_prompts(prompts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch_dtype = {None: None, "float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
                   "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype is None:  # as audiocraft: half precision on GPU, full on CPU
        dtype = "float16" if str(device).startswith("cuda") else "float32"
    if dtype not in torch_dtype:
        raise MagnetEvalError(f"--dtype must be float32, float16 or bfloat16, got {dtype!r}")
    gen = generator or load_generator(model, device=device, dtype=torch_dtype[dtype], text_encoder=text_encoder,
                                      stage_attention=stage_attention)
    lm_cfg = getattr(getattr(gen, "lm", None), "cfg", None)  # the bound of this model's own positions
    generation_duration("--duration", duration, float(getattr(gen, "frame_rate", 50.0)),
                        float(getattr(lm_cfg, "max_period", 10000.0)))
    prompt_codes, prompt_record = _prompt_codes(gen, prompt_audio)
    if rescorer:
        gen.set_rescorer(load_generator(rescorer, device=device, dtype=torch_dtype[dtype], text_encoder=text_encoder),
                         name=rescorer)
    dec = gen.decoding(**decoding)
    # what a resumed run must share with the clips already there (the batch size: see _check_resume)
    settings = {"model": model, "duration": duration, "seed": seed,
                "decoding": gen.settings(dec) if hasattr(gen, "settings") else dec.to_dict(), "dtype": dtype,
                "text_encoder": gen.lm.text_conditioner.encoder_name,
                "stage_attention": gen.lm.cfg.stage_attention if gen.kind == "magnet" else None}
    if prompt_record is not None:
        settings["prompt_audio"] = prompt_record

    log_path = out / LOG_FILE
    done = _read_log(log_path)
    if overwrite:
        done = {}
        log_path.unlink(missing_ok=True)
    _check_resume(out, done, settings, batch_size, str(gen.device))
    todo = [e for e in manifest if not (e.id in done and (out / f"{e.id}.wav").is_file())]
    if len(todo) < len(manifest):
        info(f"resuming: {len(manifest) - len(todo)} of {len(manifest)} clips already in {out}")
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    for batch in (track(batches, f"generating with {gen.name}") if batches else []):
        seeds = [derive_seed(seed, e.id) for e in batch]
        t0 = time.perf_counter()
        extra = {"prompt_codes": prompt_codes} if prompt_codes is not None else {}
        _, wav, sr = gen.generate([e.caption for e in batch], duration=duration, seed=seed, seeds=seeds,
                                  batch_size=len(batch), **extra, **decoding)
        elapsed = time.perf_counter() - t0
        stats = dict(gen.last_stats)
        with log_path.open("a", encoding="utf-8") as log:
            for e, w, s in zip(batch, wav, seeds):
                save_audio(out / f"{e.id}.wav", w, sr)
                rec = {"id": e.id, "prompt": e.caption, "audio": f"{e.id}.wav", "seed": seed, "sample_seed": s,
                       "settings": settings, "time_per_sample_s": elapsed / len(batch), "batch_time_s": elapsed,
                       "batch_size": batch_size, "batch_len": len(batch), "sample_rate": sr, "samples": int(w.shape[-1]),
                       "frames": stats.get("frames"), "decoding_steps": stats.get("decoding_steps"),
                       "forward_passes": stats.get("forward_passes"),
                       "rescorer_forward_passes": stats.get("rescorer_forward_passes"), "device": str(gen.device)}
                log.write(json.dumps(rec) + "\n")
            log.flush()
    entries = []
    for e in manifest:
        wav_path = out / f"{e.id}.wav"
        if wav_path.is_file():
            entries.append(ManifestEntry(id=e.id, caption=e.caption, audio_path=str(wav_path.resolve()),
                                         duration=duration, labels=dict(e.labels)))
    path = Manifest(entries).write(out / MANIFEST_FILE)
    info(f"{len(entries)} clips in {out} ({MANIFEST_FILE}, {LOG_FILE})")
    return path


def main(
    model: str = typer.Option(..., "--model", "-m", help="Preset (magnet-tiny|small|medium|large, musicgen-tiny|...; random weights), a checkpoint (state_dict.bin or its folder) or a hub name (facebook/magnet-small-10secs)."),
    prompts: str = typer.Option(..., "--prompts", "-p", help="A prompt text, a .txt file (one prompt per line) or a manifest (.jsonl / folder with manifest.jsonl)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: generated/<model>)."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds of audio per prompt."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", help="Prompts generated together; on CPU in float32 a clip's audio is bit-identical for any batch size (GPU: see docs/determinism.md)."),
    seed: int = typer.Option(0, "--seed", help="Run seed; each clip's seed is derived from it and the clip id."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="LM precision: float32, float16, bfloat16 (default: float16 on GPU, float32 on CPU)."),
    decoding_steps: Optional[str] = typer.Option(None, "--decoding-steps", help="MAGNeT: steps per codebook stage, e.g. 20,10,10,10 (default)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (MAGNeT 3.0 annealed to ~0; MusicGen 1.0)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k sampling (MAGNeT 0 = off; MusicGen 250)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling (MAGNeT 0.9; MusicGen 0 = off); wins over top-k."),
    max_cfg_coef: Optional[float] = typer.Option(None, "--max-cfg-coef", help="MAGNeT: CFG coefficient when everything is masked (10)."),
    min_cfg_coef: Optional[float] = typer.Option(None, "--min-cfg-coef", help="MAGNeT: CFG coefficient at the end of a stage (1)."),
    cfg_coef: Optional[float] = typer.Option(None, "--cfg-coef", help="MusicGen: classifier-free guidance coefficient (3)."),
    anneal_temp: Optional[bool] = typer.Option(None, "--anneal-temp/--no-anneal-temp", help="MAGNeT: anneal the temperature linearly to 0 over each stage (on)."),
    span_scoring: Optional[str] = typer.Option(None, "--span-scoring", help="MAGNeT: max (1 - max prob in the span, default) or prod (sum of -log p)."),
    span_arrangement: Optional[str] = typer.Option(None, "--span-arrangement", help="MAGNeT: nonoverlap (default) or stride1."),
    use_sampling: Optional[bool] = typer.Option(None, "--sampling/--greedy", help="Sample tokens (default) or take the argmax."),
    text_encoder: Optional[str] = typer.Option(None, "--text-encoder", help="Override the text encoder: t5-base, t5-large, minilm, or random (benchmarks)."),
    stage_attention: Optional[str] = typer.Option(None, "--stage-attention", help="MAGNeT stages > 0: restricted (|q-k| <= 5, default) or audiocraft-sdpa (causal, as audiocraft's torch backend)."),
    rescorer: Optional[str] = typer.Option(None, "--rescorer", help="MAGNeT: a MusicGen (preset, checkpoint or hub name, same codec) that rescores the sampled tokens (MAGNeT paper, section 3.4)."),
    rescore_weight: Optional[float] = typer.Option(None, "--rescore-weight", help="MAGNeT: the rescorer's share w_r in w_r * p_rescorer + (1 - w_r) * p_MAGNeT (default 0.8; 0 = plain MAGNeT)."),
    hybrid_prefix: Optional[float] = typer.Option(None, "--hybrid-prefix", help="MAGNeT: seconds decoded autoregressively by the model before parallel decoding (Hybrid-MAGNeT; 0 = off)."),
    prompt_audio: Optional[Path] = typer.Option(None, "--prompt-audio", help="Continue this clip: its tokens are kept and --duration counts it (as audiocraft's generate_continuation)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of resuming the run in --out."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice; 1 is often fastest for tiny models on a busy machine)."),
) -> None:
    """Generate audio from text prompts with MAGNeT or MusicGen (a preset with random weights, a checkpoint or a hub name).

    Writes OUT/{id}.wav per prompt, OUT/manifest.jsonl and OUT/log.jsonl (prompt, seeds, settings, time per sample).
    A killed run resumes without redoing finished clips. Each clip's seed is derived from --seed and its id.
    """
    if threads is not None:
        import torch

        from ..validate import positive_int

        torch.set_num_threads(positive_int("--threads", threads))
    knobs = {"decoding_steps": decoding_steps, "temperature": temperature, "top_k": top_k, "top_p": top_p,
             "max_cfg_coef": max_cfg_coef, "min_cfg_coef": min_cfg_coef, "cfg_coef": cfg_coef,
             "anneal_temp": anneal_temp, "span_scoring": span_scoring, "span_arrangement": span_arrangement,
             "use_sampling": use_sampling, "rescore_weight": rescore_weight, "hybrid_prefix": hybrid_prefix}
    out = out or Path("generated") / _safe_name(Path(model).name if Path(model).exists() else model)
    run_generation(model, prompts, out, duration=duration, batch_size=batch_size, seed=seed, device=device,
                   dtype=dtype, overwrite=overwrite, text_encoder=text_encoder, stage_attention=stage_attention,
                   rescorer=rescorer, prompt_audio=prompt_audio, **{k: v for k, v in knobs.items() if v is not None})
