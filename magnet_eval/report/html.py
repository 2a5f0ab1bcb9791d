"""One self-contained HTML page: tables, plots embedded as base64 PNG, and audio players side by side.

The page needs no network and no server: CSS is inline, plots are data: URIs, and audio files are
copied next to the page under `audio/<system>/` and referenced by relative paths, so the folder
can be zipped, moved or opened straight from disk (file://). Like the MAGNeT demo page, a sample
of prompts is shown as rows with one player per system in columns.
"""

from __future__ import annotations

import base64
import html
import math
import random
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..progress import track, warn

if TYPE_CHECKING:
    import pandas as pd

CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#d0d5dd; --accent:#3559c7; --na:#fff4e5; --bad:#fdecec; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1280px; padding: 24px 32px 64px; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.8em 0; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.wide { min-width: 220px; font-size: 0.85em; }
.scroll { overflow-x: auto; max-width: 100%; }
td.na { background: var(--na); color: #8a5a00; font-style: italic; }
td.err { background: var(--bad); color: #9b1c1c; font-style: italic; }
img.plot { max-width: 100%; border: 1px solid var(--line); margin: 0.6em 0; }
table.audio td { min-width: 220px; }
table.audio td.prompt { max-width: 340px; font-size: 0.92em; }
table.audio .pid { color: var(--muted); font-size: 0.85em; display: block; }
audio { width: 230px; height: 36px; }
ul.notes li { margin: 0.2em 0; }
details summary { cursor: pointer; color: var(--accent); margin: 0.6em 0; }
code { background: #f2f4f7; padding: 1px 4px; border-radius: 3px; }
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def frame_to_html(frame: "pd.DataFrame", numeric: Sequence[str] = (), status_col: str | None = None,
                  css_class: str = "", wide: Sequence[str] = ()) -> str:
    """An HTML table; 'weights not available' cells are amber, other non-ok statuses in `status_col` red."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for col, val in zip(frame.columns, row):
            text = "-" if val is None or (isinstance(val, float) and math.isnan(val)) else str(val)
            cls = "num" if col in numeric else ("wide" if col in wide else "")
            if text == "weights not available" or text == "not run":
                cls = "na"
            elif col == status_col and text not in ("ok", "-"):
                cls = "err"
            cells.append(f'<td class="{cls}">{_e(text)}</td>' if cls else f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls_attr = f' class="{css_class}"' if css_class else ""
    return (f'<div class="scroll"><table{cls_attr}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _table1_html(display: "pd.DataFrame", t1: "pd.DataFrame") -> str:
    """Table 1 with status cells marked (weights not available = amber, errors = red)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in display.columns)
    status_of = {}
    from .tables import slot_keys

    keys = [k for k, _, _ in slot_keys(t1)]
    metric_cols = [c for c in display.columns if c not in ("Model", "Params") and not c.startswith(("Latency", "Decoding"))]
    for col, key in zip(metric_cols, keys):
        status_of[col] = key
    body = []
    for i in range(len(display)):
        cells = []
        for col in display.columns:
            text = str(display.iloc[i][col])
            cls = "" if col == "Model" else "num"
            if col in status_of:
                st = str(t1.iloc[i][f"{status_of[col]}_status"])
                if st == "weights not available" or st == "not run":
                    cls = "na"
                elif st != "ok":
                    cls = "err"
            cells.append(f'<td class="{cls}">{_e(text)}</td>' if cls else f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def png_data_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _ogg_copy(src: Path, dst: Path) -> bool:
    """Write an Ogg Vorbis listening copy of src (False when src cannot be read: it is copied as is)."""
    import soundfile as sf

    try:
        wav, sr = sf.read(str(src), dtype="float32", always_2d=True)
        tmp = dst.with_name(dst.name + ".part")
        sf.write(str(tmp), wav, sr, format="OGG", subtype="VORBIS")
        tmp.replace(dst)
        return True
    except Exception as exc:  # noqa: BLE001  (an odd file still gets its column, copied unchanged)
        warn(f"{src}: no Ogg listening copy ({exc}); copying the file as is")
        return False


def collect_audio(audio_dirs: dict[str, str | Path], out_dir: str | Path, n: int = 8, seed: int = 0,
                  ids: Sequence[str] | None = None, listening_format: str = "ogg") -> tuple[list[dict], list[str]]:
    """Copy a sample of clips per system under out_dir/audio/<system>/ and describe the rows.

    listening_format 'ogg': the page gets Ogg Vorbis listening copies (about a tenth of a WAV's
    size, so a committed example report stays small; the metrics never read them); 'copy' keeps
    the original files.

    Returns (rows, systems): each row {id, caption, files: {system: relative path or None}}.
    Prompts present in every system are preferred; the sample is random but seeded.
    """
    from ..manifest import read_any

    out_dir = Path(out_dir)
    manifests = {}
    for system, folder in audio_dirs.items():
        try:
            manifests[system] = read_any(folder)
        except Exception as exc:  # noqa: BLE001  (a bad folder loses its column, not the report)
            warn(f"audio for {system}: {exc}")
    systems = list(manifests)
    if not systems:
        return [], []
    order: list[str] = []
    for m in manifests.values():
        order += [e.id for e in m if e.audio_path and Path(e.audio_path).is_file()]
    order = list(dict.fromkeys(order))
    have = {s: {e.id: e for e in m if e.audio_path and Path(e.audio_path).is_file()} for s, m in manifests.items()}
    if ids is not None:
        chosen = [i for i in ids if any(i in have[s] for s in systems)]
    else:
        coverage = {i: sum(i in have[s] for s in systems) for i in order}
        best = max(coverage.values()) if coverage else 0
        pool = [i for i in order if coverage[i] == best]
        rng = random.Random(seed)
        picked = set(rng.sample(pool, min(n, len(pool))))
        if len(picked) < n:  # not enough prompts shared by all: fill with the next best covered
            rest = sorted((i for i in order if i not in picked), key=lambda i: -coverage[i])
            picked |= set(rest[: n - len(picked)])
        chosen = [i for i in order if i in picked]
    rows = []
    for clip_id in track(chosen, "copying audio for the report"):
        caption = ""
        files: dict[str, str | None] = {}
        for s in systems:
            e = have[s].get(clip_id)
            if e is None:
                files[s] = None
                continue
            caption = caption or e.caption
            src = Path(e.audio_path)
            rel = Path("audio") / _safe(s) / (_safe(clip_id) + (".ogg" if listening_format == "ogg" else src.suffix.lower()))
            dst = out_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            stale = (not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime
                     or (listening_format != "ogg" and dst.stat().st_size != src.stat().st_size))
            if stale and not (listening_format == "ogg" and _ogg_copy(src, dst)):
                rel = rel.with_suffix(src.suffix.lower())  # a plain copy (or the fallback when Ogg fails)
                dst = out_dir / rel
                shutil.copy2(src, dst)
            files[s] = rel.as_posix()
        rows.append({"id": clip_id, "caption": caption, "files": files})
    return rows, systems


def _audio_html(rows: list[dict], systems: list[str]) -> str:
    head = "<th>prompt</th>" + "".join(f"<th>{_e(s)}</th>" for s in systems)
    body = []
    for r in rows:
        cells = [f'<td class="prompt">{_e(r["caption"] or "(no caption)")}<span class="pid">{_e(r["id"])}</span></td>']
        for s in systems:
            rel = r["files"].get(s)
            if rel:
                cells.append(f'<td><audio controls preload="metadata" src="{_e(rel)}"></audio></td>')
            else:
                cells.append('<td class="na">no audio</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="audio"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


LATENCY_COLUMNS = [("model", "model"), ("device", "device"), ("dtype", "dtype"), ("batch_size", "batch"),
                   ("duration_s", "duration (s)"), ("status", "status"), ("latency_median_s", "latency median (s)"),
                   ("latency_iqr_s", "IQR (s)"), ("latency_min_s", "min (s)"), ("latency_max_s", "max (s)"),
                   ("repeats", "repeats"), ("samples_per_s", "samples/s"), ("rtf", "RTF"),
                   ("decoding_steps", "decoding steps"), ("forward_passes", "forward passes"),
                   ("peak_memory_mb", "peak memory (MB)"), ("error", "note")]
_INT_COLUMNS = ("batch_size", "repeats", "decoding_steps", "forward_passes")


def latency_display(latency: "pd.DataFrame") -> "pd.DataFrame":
    import pandas as pd

    from .tables import fmt_number

    cols = [(c, h) for c, h in LATENCY_COLUMNS if c in latency.columns]
    out = pd.DataFrame()
    for c, h in cols:
        if c in _INT_COLUMNS:
            out[h] = [str(int(v)) if _finite(v) else "-" for v in latency[c]]
        elif latency[c].dtype.kind in "fi":
            out[h] = [fmt_number(float(v)) for v in latency[c]]
        else:
            out[h] = [("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))[:90] for v in latency[c]]
    return out


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def results_display(results: "pd.DataFrame") -> "pd.DataFrame":
    """Every result row of a metric computed for at least one system (the others are listed once in the notes)."""
    import pandas as pd

    from .tables import computed_pairs, fmt_number

    done = computed_pairs(results)
    results = results[[(m, e) in done for m, e in zip(results["metric"].astype(str), results["embedder"].astype(str))]]

    return pd.DataFrame({
        "system": results["system"], "metric": results["metric"],
        "value": [fmt_number(float(v)) for v in results["value"]],
        "CI": [f"[{fmt_number(float(a))}, {fmt_number(float(b))}]" if math.isfinite(float(a)) else "-"
               for a, b in zip(results["ci_low"], results["ci_high"])],
        "n gen": results["n_generated"].astype(str), "n ref": results["n_reference"].astype(str),
        "embedder": results["embedder"], "status": results["status"],
    })


def render_page(
    title: str,
    *,
    table1_html: str,
    results: "pd.DataFrame",
    plots: dict[str, Path],
    latency: "pd.DataFrame | None",
    audio_rows: list[dict],
    audio_systems: list[str],
    notes: Sequence[str] = (),
    files: dict[str, str] | None = None,
    sections: Sequence[str] = (),
) -> str:
    """The page as one string; `sections`: extra HTML blocks (a preset's own tables and figures) after Table 1."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Generated by magnet-eval on {stamp}. '
        f"Systems: {_e(', '.join(dict.fromkeys(results['system'])))}.</p>",
    ]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts += ["<h2>Results (MAGNeT Table 1 layout)</h2>",
              '<p class="meta">Values with bootstrap 95% confidence intervals in brackets. ↓ lower is better, '
              "↑ higher is better. A cell that could not be computed shows why; metrics computed for no system are "
              "listed in the notes above.</p>", table1_html]
    if "metrics" in plots:
        parts.append(f'<img class="plot" alt="metric bars" src="{png_data_uri(plots["metrics"])}">')
    parts += list(sections)
    if latency is not None and len(latency):
        parts.append("<h2>Latency and throughput vs batch size</h2>")
        if "latency" in plots:
            parts.append(f'<img class="plot" alt="latency and throughput" src="{png_data_uri(plots["latency"])}">')
        parts.append(frame_to_html(latency_display(latency), numeric=[h for c, h in LATENCY_COLUMNS if c not in
                                                                      ("model", "device", "dtype", "status", "error")],
                                   status_col="status", wide=["note"]))
    if audio_rows:
        parts += ["<h2>Audio samples</h2>",
                  f'<p class="meta">{len(audio_rows)} prompts, one player per system.</p>',
                  _audio_html(audio_rows, audio_systems)]
    parts += ["<h2>All metrics</h2>", "<details open><summary>every result row</summary>",
              frame_to_html(results_display(results), numeric=["value", "CI", "n gen", "n ref"], status_col="status"),
              "</details>"]
    if files:
        parts.append("<h2>Files</h2><ul>" + "".join(f'<li><a href="{_e(v)}">{_e(v)}</a></li>' for v in dict.fromkeys(files.values()))
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
