"""Answer a mix with a stem: StemGen (a preset with random weights or a checkpoint) listens to --context and writes one stem.

Writes OUT/{id}_{instrument}.wav (the stem), OUT/{id}_{instrument}_mix.wav (stem + context) and OUT/log.jsonl.
--context is an audio file or a manifest (.jsonl; per-entry labels.instrument overrides --instrument).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def main(
    context: str = typer.Option(..., "--context", "-c", help="Context mix (audio file) or a manifest of contexts (.jsonl)."),
    instrument: Optional[str] = typer.Option(None, "--instrument", "-i", help="Instrument class of the stem (bass, drums, guitar, piano, synth_lead, ...; see docs/stemgen.md)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: str = typer.Option("stemgen-tiny", "--model", "-m", help="Preset (stemgen-tiny, stemgen-paper; random weights) or a StemGen checkpoint."),
    codec: Optional[str] = typer.Option(None, "--codec", help="Codec spec overriding the model's (e.g. a trained tiny codec's compression_state_dict.bin)."),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Cut or pad the context to this many seconds."),
    seed: int = typer.Option(0, "--seed", help="Run seed; each clip's seed is derived from it and the clip id."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, ..."),
    decoding_steps: Optional[str] = typer.Option(None, "--decoding-steps", help="Iterations per codebook level (default 128,64,32,32, the paper's)."),
    cfg_context: float = typer.Option(3.0, "--cfg-context", help="Multi-source guidance weight of the audio context."),
    cfg_instrument: float = typer.Option(3.0, "--cfg-instrument", help="Multi-source guidance weight of the instrument."),
    no_cfg: bool = typer.Option(False, "--no-cfg", help="No guidance: one fully conditional pass per step."),
    causal_bias: float = typer.Option(0.1, "--causal-bias", help="Bias of the unmasking order toward earlier frames (0 = off; paper 0.1)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
) -> None:
    """Answer a mix with a stem (StemGen); writes the stem, the stem + context mix and OUT/log.jsonl."""
    from ..models.generator import parse_steps
    from ..progress import info
    from ..stemgen_run import run_stem

    steps = parse_steps(decoding_steps) if decoding_steps else None
    records = run_stem(model, context, out, instrument=instrument, duration=duration, seed=seed, device=device,
                       decoding_steps=steps, cfg_weights=None if no_cfg else (cfg_context, cfg_instrument),
                       causal_bias=causal_bias, temperature=temperature, codec=codec)
    info(f"{len(records)} stem(s) in {out}")
