"""Build a report from results files: MAGNeT Table 1 layout tables (CSV, parquet, markdown), PNG plots and one self-contained HTML page with audio players side by side.

RESULTS are results files of `evaluate` (.parquet/.csv). --latency adds the latency CSV of `bench latency` (latency and decoding steps columns, latency curves); --audio-dirs name=DIR adds, for a sample of prompts, one audio player per system (files are copied under OUT/audio/ so the page works from disk).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import List

import typer


def _parse_pairs(items: List[str], what: str) -> dict[str, str]:
    from ..errors import MagnetEvalError

    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise MagnetEvalError(f"{what}: expected NAME=VALUE, got {part!r}")
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def main(
    results: List[Path] = typer.Argument(..., help="Results files of `evaluate` (.parquet or .csv)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder, e.g. reports/NAME (index.html is written there)."),
    latency: List[Path] = typer.Option([], "--latency", help="Latency CSV of `bench latency` (or its --out folder); repeatable."),
    audio_dirs: List[str] = typer.Option([], "--audio-dirs", "--audio", help="SYSTEM=DIR: generated audio folder per system; repeatable or comma-separated."),
    title: str = typer.Option("magnet-eval report", "--title", help="Page title."),
    note: List[str] = typer.Option([], "--note", help="A line shown under the title; repeatable."),
    n_audio: int = typer.Option(8, "--n-audio", help="How many prompts get audio players."),
    seed: int = typer.Option(0, "--seed", help="Seed of the choice of prompts for the audio players."),
    model_for_system: List[str] = typer.Option([], "--model", help="SYSTEM=MODEL: which latency-CSV model a results system is (default: same name)."),
    check: bool = typer.Option(False, "--check", help="Open the page in headless Chromium: fail on console errors or unplayable audio; save OUT/screenshot.png."),
) -> None:
    """Build a report from results files: Table 1 layout tables, PNG plots and one self-contained HTML page."""
    from ..errors import ManifestError
    from ..report import build_report
    from ..validate import non_negative_int, read_text, readable_file, writable_output

    for r in results:
        readable_file(r, "results file")
        if r.suffix == ".csv":
            read_text(r, "results CSV", ManifestError)
    for lat in latency:
        path = lat / "latency.csv" if lat.is_dir() else lat
        read_text(path, "latency CSV", ManifestError)  # exists, readable, UTF-8
    non_negative_int("--n-audio", n_audio)
    writable_output(out, "--out", kind="dir")
    # the command line that makes this report again (from the parsed options, so it is exact under any caller)
    argv = ["magnet-eval", "report", *map(str, results), "--out", str(out)]
    argv += [a for p in latency for a in ("--latency", str(p))] + [a for d in audio_dirs for a in ("--audio-dirs", d)]
    argv += [a for m in model_for_system for a in ("--model", m)] + [a for n in note for a in ("--note", n)]
    argv += ["--title", title] if title != "magnet-eval report" else []
    argv += (["--n-audio", str(n_audio)] if n_audio != 8 else []) + (["--seed", str(seed)] if seed else [])
    argv += ["--check"] if check else []
    notes = list(note) + ["Command: " + " ".join(shlex.quote(a) for a in argv)]
    index = build_report(
        list(results), out, latency_csv=list(latency) or None,
        audio_dirs={k: Path(v) for k, v in _parse_pairs(audio_dirs, "--audio-dirs").items()},
        title=title, notes=notes, n_audio=n_audio, seed=seed,
        model_for_system=_parse_pairs(model_for_system, "--model"),
    )
    if check:
        from ..errors import MagnetEvalError
        from ..progress import info
        from ..report.browser import check_page

        result = check_page(index, out / "screenshot.png")
        problems = result.console_errors + [f"audio file missing: {s}" for s in result.missing_audio] + \
            [f"audio not playable: {s}" for s in result.unplayable_audio]
        if problems:
            raise MagnetEvalError("the report page has problems in Chromium:\n  " + "\n  ".join(problems))
        info(f"Chromium: page loads without console errors, {len(result.audio)} audio players load; "
             f"screenshot {result.screenshot}")
    typer.echo(str(index))
