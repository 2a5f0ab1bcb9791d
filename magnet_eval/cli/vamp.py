"""Vamp an audio file with VampNet: keep the tokens a prompt selects, regenerate the rest (coarse, then coarse-to-fine).

Prompts (repeatable --prompt, combined as the reference's interface: time prompts OR-ed, then dropout,
then `upper:N` restricts kept tokens to the lowest N codebooks): periodic:P[:W], upper:N, beat:W, onset:W,
inpaint:T0-T1, prefix:S, suffix:S, dropout:P, all, none. Writes OUT/{input}_vamp{i}.wav per loop,
OUT/{input}_loop.wav (the loops back to back) and OUT/log.jsonl (prompt, seed, bitrate of the kept tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def main(
    input: Path = typer.Argument(..., help="Input audio (any file the toolkit reads)."),
    model: str = typer.Option("vampnet-tiny", "--model", "-m", help="vampnet-tiny (random weights on the tiny codec) or a folder with the released coarse.pth / c2f.pth / codec.pth."),
    prompt: Optional[list[str]] = typer.Option(None, "--prompt", "-p", help="A prompt, e.g. periodic:16, upper:3, beat:0.1, inpaint:1.0-2.0, prefix:2.0 (repeatable). Default: periodic:7 + upper:3 (the reference's defaults), or keep the whole input with --continue."),
    loops: int = typer.Option(1, "--loops", help="Number of variations (seeds seed, seed+1, ...), also written back to back as a loop."),
    continue_s: float = typer.Option(0.0, "--continue", help="Seconds to generate after the input."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first variation."),
    out: Path = typer.Option(Path("vamped"), "--out", "-o", help="Output folder."),
    coarse_steps: int = typer.Option(12, "--coarse-steps", help="Decoding steps of the coarse model (reference: 12)."),
    c2f_steps: int = typer.Option(24, "--c2f-steps", help="Decoding steps of the coarse-to-fine model (reference: 24)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.0, "--top-p", help="Nucleus sampling (0 = off, the reference's default)."),
    typical: bool = typer.Option(True, "--typical/--no-typical", help="Typical filtering (mass 0.15, at least 64 tokens)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, ..."),
) -> None:
    from ..errors import InvalidOptionError
    from ..models.vampnet import VampDecoding
    from ..progress import info
    from ..prompts.masks import parse_prompts
    from ..vamp import load_vamp_system, read_input, vamp_audio, write_results

    if loops < 1:
        raise InvalidOptionError(f"--loops must be >= 1, got {loops}")
    texts = list(prompt or [])
    if not texts and continue_s <= 0:
        texts = ["periodic:7", "upper:3"]
    prompts = parse_prompts(texts)  # bad strings fail before any model is loaded
    wav, sr = read_input(input)
    beats = onsets = None
    if any(p.needs_beats for p in prompts):
        from ..prompts.events import find_beats

        beats = find_beats(wav, sr)
    if any(p.needs_onsets for p in prompts):
        from ..prompts.events import find_onsets

        onsets = find_onsets(wav, sr)
    system = load_vamp_system(model, device)
    dec = dict(temperature=temperature, top_p=top_p, typical_filtering=typical)
    results = vamp_audio(system, wav, sr, prompts, [seed + i for i in range(loops)], continue_s,
                         coarse=VampDecoding(steps=coarse_steps, **dec), c2f=VampDecoding(steps=c2f_steps, **dec),
                         beats_s=beats, onsets_s=onsets)
    paths = write_results(results, int(system.codec.sample_rate), out, Path(input).stem)
    r = results[0].record
    info(f"kept {r['kept_fraction']:.1%} of the tokens ({r['kept_bitrate_bps']:.0f} bit/s); "
         f"wrote {len(paths)} files to {out}")
