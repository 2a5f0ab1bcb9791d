"""Report tables: MAGNeT Table 1 layout (model, params, FAD, KL, CLAP, MIRDD, latency, decoding steps).

Inputs are results tables of `evaluate` (agreed schema, one row per metric) and optionally
latency CSVs of `bench latency`. Columns are made only for what was computed for at least one
system; a metric computed for none (its weights are missing, or it failed) gets no column and no
panel, and `not_computed` lists it once, with the file it needs, for the report's notes. A cell of
a computed column that one system lacks keeps that system's status, so nothing is hidden.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from ..compare import direction, load_results, normalize_results
from ..errors import MagnetEvalError

if TYPE_CHECKING:
    import pandas as pd

# (column key, header, candidate metric names): the MAGNeT Table 1 columns, in order
TABLE1_SLOTS: list[tuple[str, str, list[str]]] = [
    ("fad", "FAD", ["fad"]),
    ("kl", "KL", ["kl"]),
    ("kl_musicnn", "KL (musicnn)", ["kl_musicnn"]),
    ("clap", "CLAP", ["clap"]),
    ("mirdd", "MIRDD", ["mirdd"]),
]
WEIGHTS_NOT_AVAILABLE = "weights not available"


def table1_slots(results: "pd.DataFrame") -> list[tuple[str, str, list[str], str | None]]:
    """(column key, header, metric names, embedder whose rows fill it) of the Table 1 columns these results fill.

    A metric computed with one embedder gets one column (key 'fad'); computed with several (FAD on
    musicnn and on VGGish), one column each (keys 'fad@musicnn', 'fad@vggish'). An embedder for which
    no system has a value makes no column (see `not_computed`).
    """
    slots: list[tuple[str, str, list[str], str | None]] = []
    for key, header, names in TABLE1_SLOTS:
        rows = results[results["metric"].isin(names)]
        embs = list(dict.fromkeys(rows.loc[rows["status"] == "ok", "embedder"].astype(str)))
        if not embs:  # computed for no system: listed by `not_computed`, not a column of statuses
            continue
        if len(embs) == 1:
            slots.append((key, header, names, embs[0]))
        else:
            slots += [(f"{key}@{e}", f"{header} [{e}]", names, e) for e in embs]
    return slots


def computed_pairs(results: "pd.DataFrame") -> set[tuple[str, str]]:
    """(metric, embedder) pairs with a value for at least one system."""
    ok = results[results["status"] == "ok"]
    return set(zip(ok["metric"].astype(str), ok["embedder"].astype(str)))


def _needs(details: object) -> str:
    """What a missing-weights row needs, from its error text: 'NAME at PATH', else the error's first line."""
    text = str(_details(details).get("error", ""))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    where = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("put the file at:")), "")
    return f"put it at {where}" if where else (lines[0] if lines else "")


def not_computed(results: "pd.DataFrame") -> list[str]:
    """One line per (embedder, status) whose metrics have a value for no system, naming what each needs.

    E.g. "fad, fad_inf [vggish]: weights not available (put it at ~/.cache/torch/hub/checkpoints/vggish-...)".
    """
    done = computed_pairs(results)
    groups: dict[tuple[str, str], tuple[list[str], str]] = {}
    for metric, emb, status, details in zip(results["metric"].astype(str), results["embedder"].astype(str),
                                            results["status"].astype(str), results["details"]):
        if status == "ok" or (metric, emb) in done:
            continue
        metrics, needs = groups.setdefault((emb, status), ([], _needs(details)))
        if metric not in metrics:
            metrics.append(metric)
    lines = []
    for (emb, status), (metrics, needs) in groups.items():
        head = ", ".join(metrics) + (f" [{emb}]" if emb else "")
        lines.append(f"{head}: {status}" + (f" ({needs})" if needs and needs != status else ""))
    return lines


def slot_keys(t1: "pd.DataFrame") -> list[tuple[str, str, list[str]]]:
    """(key, header, metric names) of the metric columns of a `table1` frame, in column order."""
    base = {k: (h, n) for k, h, n in TABLE1_SLOTS}
    out = []
    for col in t1.columns:
        if not col.endswith("_status"):
            continue
        key = col[: -len("_status")]
        b, _, emb = key.partition("@")
        if b in base:
            header, names = base[b]
            out.append((key, f"{header} [{emb}]" if emb else header, names))
    return out


def collect_results(results: Sequence[str | Path | "pd.DataFrame"]) -> "pd.DataFrame":
    """All results in one table (agreed schema), later inputs winning on a repeated (system, metric, embedder)."""
    import pandas as pd

    frames = []
    for item in results:
        frame = normalize_results(item) if isinstance(item, pd.DataFrame) else load_results(item)[0]
        frames.append(frame)
    if not frames:
        raise MagnetEvalError("no results given to the report")
    allr = pd.concat(frames, ignore_index=True)
    return allr.drop_duplicates(["system", "metric", "embedder"], keep="last").reset_index(drop=True)


def read_latency(paths: Iterable[str | Path | "pd.DataFrame"] | str | Path | "pd.DataFrame" | None) -> "pd.DataFrame | None":
    """One latency table from one or more `bench latency` CSVs (None when none given)."""
    import pandas as pd

    if paths is None:
        return None
    if isinstance(paths, (str, Path, pd.DataFrame)):
        paths = [paths]
    frames = []
    for p in paths:
        if isinstance(p, pd.DataFrame):
            frames.append(p)
            continue
        p = Path(p)
        if p.is_dir():
            p = p / "latency.csv"
        if not p.is_file():
            raise MagnetEvalError(f"{p}: latency CSV does not exist (written by `magnet-eval bench latency --out DIR`)")
        frames.append(pd.read_csv(p))
    if not frames:
        return None
    lat = pd.concat(frames, ignore_index=True)
    need = {"model", "batch_size", "status", "latency_median_s"}
    if not need <= set(lat.columns):
        raise MagnetEvalError(f"latency CSV lacks columns {sorted(need - set(lat.columns))}")
    return lat


def systems_in_order(results: "pd.DataFrame") -> list[str]:
    return list(dict.fromkeys(results["system"].astype(str)))


def _match_model(system: str, models: Sequence[str], mapping: dict[str, str]) -> str | None:
    if system in mapping:
        return mapping[system]
    if system in models:
        return system
    low = {m.lower(): m for m in models}
    return low.get(system.lower())


def _details(text) -> dict:
    try:
        d = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def latency_summary(latency: "pd.DataFrame | None") -> dict[str, dict]:
    """Per model: latency at its smallest measured batch (the paper's Table 1 latency), steps, params."""
    out: dict[str, dict] = {}
    if latency is None or len(latency) == 0:
        return out
    for model, rows in latency.groupby("model", sort=False):
        ok = rows[rows["status"] == "ok"].sort_values("batch_size")
        first = ok.iloc[0] if len(ok) else None
        anyrow = rows.iloc[0]
        out[str(model)] = {
            "latency_s": float(first["latency_median_s"]) if first is not None else math.nan,
            "latency_batch": int(first["batch_size"]) if first is not None else 0,
            "decoding_steps": float(first["decoding_steps"]) if first is not None and "decoding_steps" in ok else math.nan,
            "params": float(anyrow["n_params"]) if "n_params" in rows and math.isfinite(float(anyrow["n_params"])) else math.nan,
            "device": str(anyrow.get("device", "")),
            "duration_s": float(first["duration_s"]) if first is not None and "duration_s" in ok else math.nan,
        }
    return out


def table1(
    results: "pd.DataFrame",
    latency: "pd.DataFrame | None" = None,
    *,
    params: dict[str, float] | None = None,
    model_for_system: dict[str, str] | None = None,
) -> "pd.DataFrame":
    """The MAGNeT Table 1 layout, numeric: one row per system.

    Columns: model, params, then per metric slot VALUE / _ci_low / _ci_high / _status /
    _embedder (slots with no row for any system are left out), latency_s, latency_batch,
    decoding_steps. params / latency come from the latency CSV (matched by model name) or
    `params`, or an `n_params` entry of the results' details.
    """
    import pandas as pd

    params = params or {}
    mapping = model_for_system or {}
    lat = latency_summary(latency)
    models = list(lat)
    slots = table1_slots(results)
    rows = []
    for system in systems_in_order(results):
        sub = results[results["system"] == system]
        row: dict = {"model": system}
        model = _match_model(system, models, mapping)
        info = lat.get(model, {}) if model else {}
        p = params.get(system, math.nan)
        if not math.isfinite(p):
            p = info.get("params", math.nan)
        if not math.isfinite(p):
            for d in sub["details"]:
                v = _details(d).get("n_params")
                if isinstance(v, (int, float)):
                    p = float(v)
                    break
        row["params"] = p
        for key, _, names, emb in slots:
            hit = sub[sub["metric"].isin(names) & ((sub["embedder"].astype(str) == emb) if emb else True)]
            if len(hit):
                r = hit.iloc[-1]
                row.update({key: float(r["value"]), f"{key}_ci_low": float(r["ci_low"]),
                            f"{key}_ci_high": float(r["ci_high"]), f"{key}_status": str(r["status"]),
                            f"{key}_embedder": str(r["embedder"])})
            else:
                row.update({key: math.nan, f"{key}_ci_low": math.nan, f"{key}_ci_high": math.nan,
                            f"{key}_status": "not run", f"{key}_embedder": ""})
        row["latency_s"] = info.get("latency_s", math.nan)
        row["latency_batch"] = info.get("latency_batch", 0)
        row["decoding_steps"] = info.get("decoding_steps", math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def metrics_wide(results: "pd.DataFrame") -> "pd.DataFrame":
    """Every metric as a column (system rows); a metric measured with several embedders gets one column each."""
    import pandas as pd

    labels = []
    for metric, emb in zip(results["metric"], results["embedder"]):
        n_emb = results.loc[results["metric"] == metric, "embedder"].nunique()
        labels.append(f"{metric} ({emb})" if n_emb > 1 else metric)
    frame = results.assign(column=labels)
    wide = frame.pivot_table(index="system", columns="column", values="value", aggfunc="last", dropna=False, sort=False)
    wide = wide.reindex(systems_in_order(results))
    return pd.DataFrame(wide).reset_index()


# ----------------------------------------------------------------------------- formatting


def fmt_number(v: float, digits: int = 3) -> str:
    """Three significant digits; large values without decimals, tiny ones in scientific notation."""
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    if abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    return f"{v:#.{digits}g}".rstrip(".")  # '#': keep trailing zeros (4.20), then no bare '123.'


def fmt_params(n: float) -> str:
    if not isinstance(n, (int, float)) or not math.isfinite(n):
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{int(n)}"


def fmt_cell(value: float, lo: float, hi: float, status: str) -> str:
    """'4.22 [3.90, 4.51]', or the status when the metric was not computed."""
    if status != "ok":
        return status if len(status) <= 60 else status[:57] + "..."
    if not math.isfinite(value):
        return "-"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{fmt_number(value)} [{fmt_number(lo)}, {fmt_number(hi)}]"
    return fmt_number(value)


def table1_display(t1: "pd.DataFrame") -> "pd.DataFrame":
    """Table 1 as strings, headers naming the embedder / classifier and the metric direction."""
    import pandas as pd

    out = pd.DataFrame({"Model": t1["model"], "Params": [fmt_params(p) for p in t1["params"]]})
    for key, header, names in slot_keys(t1):
        embs = sorted({e for e, s in zip(t1[f"{key}_embedder"], t1[f"{key}_status"]) if e and s == "ok"})
        arrow = " ↓" if direction(names[0]) < 0 else (" ↑" if direction(names[0]) > 0 else "")
        label = header + (f" [{', '.join(embs)}]" if embs and key in ("fad", "kl") else "") + arrow
        out[label] = [fmt_cell(v, lo, hi, s) for v, lo, hi, s in
                      zip(t1[key], t1[f"{key}_ci_low"], t1[f"{key}_ci_high"], t1[f"{key}_status"])]
    batches = sorted({int(b) for b in t1["latency_batch"] if b})
    lat_label = "Latency (s" + (f", batch {batches[0]}" if len(batches) == 1 else "") + ")"
    out[lat_label] = [fmt_number(v) for v in t1["latency_s"]]
    out["Decoding steps"] = [str(int(v)) if isinstance(v, (int, float)) and math.isfinite(v) else "-"
                             for v in t1["decoding_steps"]]
    return out


def to_markdown(frame: "pd.DataFrame") -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    sep = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


def write_tables(
    results: "pd.DataFrame",
    out_dir: str | Path,
    latency: "pd.DataFrame | None" = None,
    *,
    params: dict[str, float] | None = None,
    model_for_system: dict[str, str] | None = None,
) -> dict[str, Path]:
    """table1.{csv,parquet,md}, metrics.{csv,parquet} (wide), results_all.{csv,parquet} (long), latency.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t1 = table1(results, latency, params=params, model_for_system=model_for_system)
    display = table1_display(t1)
    wide = metrics_wide(results)
    paths = {
        "table1_csv": out / "table1.csv", "table1_parquet": out / "table1.parquet", "table1_md": out / "table1.md",
        "metrics_csv": out / "metrics.csv", "metrics_parquet": out / "metrics.parquet",
        "results_csv": out / "results_all.csv", "results_parquet": out / "results_all.parquet",
    }
    t1.to_csv(paths["table1_csv"], index=False)
    t1.to_parquet(paths["table1_parquet"], index=False)
    paths["table1_md"].write_text(to_markdown(display), encoding="utf-8")
    wide.to_csv(paths["metrics_csv"], index=False)
    wide.to_parquet(paths["metrics_parquet"], index=False)
    results.to_csv(paths["results_csv"], index=False)
    results.to_parquet(paths["results_parquet"], index=False)
    if latency is not None:
        paths["latency_csv"] = out / "latency.csv"
        latency.to_csv(paths["latency_csv"], index=False)
    return paths
