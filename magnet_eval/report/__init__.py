"""Reports: Table 1 style tables (CSV, parquet, markdown), PNG plots and one self-contained HTML page.

`build_report` is the one entry point (used by `magnet-eval report` and `reproduce`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..files import atomic_write

if TYPE_CHECKING:
    import pandas as pd


def build_report(
    results: Sequence["str | Path | pd.DataFrame"],
    out_dir: str | Path,
    latency_csv: "str | Path | pd.DataFrame | Sequence[str | Path] | None" = None,
    audio_dirs: dict[str, str | Path] | None = None,
    title: str = "magnet-eval report",
    notes: Sequence[str] = (),
    *,
    n_audio: int = 8,
    seed: int = 0,
    params: dict[str, float] | None = None,
    model_for_system: dict[str, str] | None = None,
    sections: Sequence[str] = (),
    extra_files: dict[str, str | Path] | None = None,
) -> Path:
    """Write tables, plots and index.html into out_dir; returns the index.html path.

    results: results files of `evaluate` (.parquet/.csv) or DataFrames in the agreed schema;
    latency_csv: CSV(s) of `bench latency` (or its output folder); audio_dirs: system name ->
    folder written by `generate` (or any folder of wavs / manifest) for the audio players;
    notes: lines shown under the title (e.g. the command line that made the report).
    """
    from ..progress import info
    from .html import _table1_html, collect_audio, render_page
    from .plots import plot_latency, plot_metric_bars
    from .tables import collect_results, not_computed, read_latency, table1, table1_display, write_tables

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = collect_results(list(results))
    missing = not_computed(res)
    notes = list(notes) + ([f"Not computed for any system (no column or panel): {'; '.join(missing)}."]
                           if missing else [])
    latency = read_latency(latency_csv)
    paths = write_tables(res, out, latency, params=params, model_for_system=model_for_system)
    t1 = table1(res, latency, params=params, model_for_system=model_for_system)
    plots: dict[str, Path] = {}
    p = plot_metric_bars(res, out / "metrics.png", title=None)
    if p:
        plots["metrics"] = p
    if latency is not None and len(latency):
        p = plot_latency(latency, out / "latency.png")
        if p:
            plots["latency"] = p
    rows, systems = collect_audio(dict(audio_dirs or {}), out, n=n_audio, seed=seed)
    files = {k: v.name for k, v in paths.items()}
    files.update({f"{k} plot": v.name for k, v in plots.items()})
    files.update({k: Path(v).name for k, v in (extra_files or {}).items()})
    page = render_page(title, table1_html=_table1_html(table1_display(t1), t1), results=res, plots=plots,
                       latency=latency, audio_rows=rows, audio_systems=systems, notes=list(notes), files=files,
                       sections=sections)
    index = out / "index.html"
    with atomic_write(index) as f:
        f.write(page.encode("utf-8"))
    (out / "report.json").write_text(json.dumps({
        "title": title, "notes": list(notes), "systems": list(dict.fromkeys(res["system"])),
        "files": files, "audio": rows,
    }, indent=1), encoding="utf-8")
    info(f"report written to {index}")
    return index


__all__ = ["build_report"]
