"""Run the main job end to end: corpus, training, generation, metrics, latency, report (`--preset tiny` is offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def main(
    preset: str = typer.Option("tiny", "--preset", help="tiny (offline default) | vampnet-tiny (VampNet prompt sweeps, offline) | stemgen-tiny (StemGen stem evaluation, offline) | magnet-ablations-tiny (the MAGNeT paper's ablations, offline) | paper-musiccaps | paper-audiocaps."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (index.html, tables, plots, audio; default reports/PRESET)."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Cache of every stage (default ~/.cache/magnet-eval/reproduce/PRESET)."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="paper presets: the caption CSV (default: ../shared/data)."),
    audio_dir: Optional[Path] = typer.Option(None, "--audio-dir", help="paper presets: folder of the reference clips."),
    device: str = typer.Option("cuda", "--device", help="paper presets: generation device."),
    limit: Optional[int] = typer.Option(None, "--limit", help="paper presets: use only the first N clips."),
) -> None:
    """Reproduce a results table end to end (`--preset tiny` runs offline; paper presets list what they need)."""
    from ..errors import MagnetEvalError
    from ..paths import cache_dir
    from ..progress import info
    from ..reproduce import PAPER, command_line, run_paper, run_tiny
    from ..validate import existing_path, one_of, positive_int, writable_output

    one_of("--preset", preset, ["tiny", "vampnet-tiny", "stemgen-tiny", "magnet-ablations-tiny", *PAPER])
    out = out or Path("reports") / preset
    work_name = "tiny" if preset in ("vampnet-tiny", "stemgen-tiny", "magnet-ablations-tiny") else preset  # they reuse the tiny corpus and codec
    writable_output(out, "--out", kind="dir")
    writable_output(work_dir or cache_dir() / "reproduce" / work_name, "--work-dir", kind="dir")
    if limit is not None:
        positive_int("--limit", limit)
    if preset not in PAPER:  # a paper preset lists everything it lacks at once (paper_requirements), these included
        for opt, value in (("--captions", captions), ("--audio-dir", audio_dir)):
            if value is not None:
                existing_path(value, opt)
    work = work_dir or cache_dir() / "reproduce" / work_name
    work.mkdir(parents=True, exist_ok=True)
    if preset == "tiny":
        index = run_tiny(out, work, command=command_line())
    elif preset == "vampnet-tiny":
        from ..reproduce_vampnet import run_vampnet_tiny

        index = run_vampnet_tiny(out, work, command=command_line())
    elif preset == "stemgen-tiny":
        from ..reproduce_stemgen import run_stemgen_tiny

        index = run_stemgen_tiny(out, work, command=command_line())
    elif preset == "magnet-ablations-tiny":
        from ..reproduce_ablations import run_ablations_tiny

        index = run_ablations_tiny(out, work, command=command_line())
    elif preset in PAPER:
        index = run_paper(preset, out, work, captions, audio_dir, device=device, limit=limit, command=command_line())
    else:
        raise MagnetEvalError(f"unknown preset {preset!r}: tiny, {', '.join(PAPER)}")
    info(f"report: {index}")
