"""Generate audio from text prompts with MAGNeT or MusicGen (a preset with random weights, a checkpoint or a hub name).

Writes OUT/{id}.wav per prompt, OUT/manifest.jsonl (ids, prompts, audio) and OUT/log.jsonl (one line per clip:
prompt, seeds, settings, time per sample). A killed run resumes: clips already written and logged are not redone.
Each clip's seed is derived from --seed and its id, so it does not depend on the other prompts of its batch.
A resume must use the same settings; the batch size may change only on CPU in float32, where a clip's audio
is bit-identical whatever its batch (docs/determinism.md). Under `torchrun --nproc_per_node N --no-python
magnet-eval generate ...` each process generates every N-th prompt; rank 0 merges the logs and writes the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

# the pipeline's generation stage; re-exported for callers of the old names
from ..pipeline import LOG_FILE, MANIFEST_FILE, batch_invariant  # noqa: F401
from ..pipeline import check_resume as _check_resume  # noqa: F401
from ..pipeline import generate as run_generation
from ..pipeline import safe_name as _safe_name


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
    from ..sharding import sharded_run

    # under torchrun each process generates every N-th prompt (`--device cuda`: its own GPU, LOCAL_RANK)
    with sharded_run("cuda" if device.startswith("cuda") else "cpu") as dist_info:
        if dist_info is not None and device == "cuda":
            device = str(dist_info.device)
        run_generation(model, prompts, out, duration=duration, batch_size=batch_size, seed=seed, device=device,
                       dtype=dtype, overwrite=overwrite, text_encoder=text_encoder, stage_attention=stage_attention,
                       rescorer=rescorer, prompt_audio=prompt_audio, **{k: v for k, v in knobs.items() if v is not None})
