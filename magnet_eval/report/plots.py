"""Report plots (PNG, matplotlib Agg): metric bars with confidence intervals, latency/throughput curves.

The latency figure has the shape of the MAGNeT paper's Figure 2: latency against batch size
and throughput (samples/s) against batch size, batch on a log2 axis, one line per model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..compare import direction

if TYPE_CHECKING:
    import pandas as pd

# metrics drawn by default, in this order, when present
MAIN_METRICS = ["fad", "fad_inf", "kad", "kl", "kl_rev", "kl_musicnn", "clap", "mirdd", "chroma_cosine"]
# metrics whose value depends on the embedding model: their panels always name it
EMBEDDING_METRICS = ("fad", "fad_inf", "kad")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_panels(results: "pd.DataFrame", metrics: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(metric, embedder) of the panels to draw: only pairs computed for at least one system, one panel per
    embedder (FAD on musicnn and on VGGish are two panels), headline metrics first, in MAIN_METRICS order."""
    ok = results[results["status"] == "ok"]
    pairs = list(dict.fromkeys(zip(ok["metric"].astype(str), ok["embedder"].astype(str))))
    order = list(metrics or MAIN_METRICS)
    panels = [p for m in order for p in pairs if p[0] == m]
    if not metrics and not panels:  # MIRDD descriptors etc. are in the tables; the figure keeps to the headline
        panels = pairs[:8]
    return panels


def plot_metric_bars(results: "pd.DataFrame", out_png: str | Path, metrics: Sequence[str] | None = None,
                     title: str | None = None) -> Path | None:
    """One panel per computed (metric, embedder), one bar per system with its CI as error bar; a system
    without a value in a panel is an empty slot labelled with its status. None when nothing was computed."""
    import numpy as np

    plt = _pyplot()
    wanted = metric_panels(results, metrics)
    if not wanted:
        return None
    systems = list(dict.fromkeys(results["system"]))
    ncols = min(3, len(wanted))
    nrows = math.ceil(len(wanted) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 0.35 * len(systems) + 2.6 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n_embedders = {m: sum(1 for p in wanted if p[0] == m) for m, _ in wanted}
    for ax, (metric, embedder) in zip(axes.flat, wanted):
        sub = results[(results["metric"] == metric) & (results["embedder"].astype(str) == embedder)]
        y = np.arange(len(systems))
        for i, system in enumerate(systems):
            rows = sub[sub["system"] == system]
            if not len(rows):
                ax.text(0.02, i, "not run", va="center", ha="left", fontsize=7, color="0.5",
                        transform=ax.get_yaxis_transform())
                continue
            r = rows.iloc[-1]
            v = float(r["value"])
            if r["status"] != "ok" or not math.isfinite(v):
                label = str(r["status"])[:40] if r["status"] != "ok" else "no value"
                ax.text(0.02, i, label, va="center", ha="left", fontsize=7, color="0.35",
                        style="italic", transform=ax.get_yaxis_transform())
                continue
            lo, hi = float(r["ci_low"]), float(r["ci_high"])
            xerr = None
            if math.isfinite(lo) and math.isfinite(hi):
                xerr = [[max(v - lo, 0.0)], [max(hi - v, 0.0)]]
            ax.barh(i, v, color=colors[i % len(colors)], xerr=xerr, capsize=3, height=0.7)
        ax.set_yticks(y)
        ax.set_yticklabels(systems, fontsize=8)
        ax.set_ylim(len(systems) - 0.5, -0.5)  # first system on top, also when no bar was drawn
        d = direction(metric)
        name = f"{metric} [{embedder}]" if embedder and (n_embedders[metric] > 1 or metric in EMBEDDING_METRICS) else metric
        ax.set_title(name + (" (lower is better)" if d < 0 else " (higher is better)" if d > 0 else ""), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(wanted):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(plt, fig, out_png)


def plot_latency(latency: "pd.DataFrame", out_png: str | Path, title: str | None = None) -> Path | None:
    """Figure 2 shape: latency (s) vs batch size and throughput (samples/s) vs batch size, log2 x.

    Error bars span min..max of the timed repeats; batch sizes that ran out of memory are marked
    with an x on the axis and labelled "OOM". None when no point was measured.
    """
    plt = _pyplot()
    if latency is None or len(latency) == 0:
        return None
    fig, (ax_l, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (label, rows) in enumerate(latency.groupby(_series_label(latency), sort=False)):
        c = colors[i % len(colors)]
        ok = rows[rows["status"] == "ok"].sort_values("batch_size")
        if len(ok):
            drawn = True
            b = ok["batch_size"].to_numpy(dtype=float)
            med = ok["latency_median_s"].to_numpy(dtype=float)
            lo = med - ok.get("latency_min_s", ok["latency_median_s"]).to_numpy(dtype=float)
            hi = ok.get("latency_max_s", ok["latency_median_s"]).to_numpy(dtype=float) - med
            ax_l.errorbar(b, med, yerr=[lo.clip(0), hi.clip(0)], marker="o", color=c, capsize=3, label=label)
            ax_t.plot(b, ok["samples_per_s"].to_numpy(dtype=float), marker="o", color=c, label=label)
        oom = rows[rows["status"].astype(str).str.startswith("oom")]
        for ax in (ax_l, ax_t):
            for bsz in oom["batch_size"]:
                ax.plot([bsz], [0], marker="x", color=c, markersize=9, clip_on=False, transform=ax.get_xaxis_transform())
                ax.annotate("OOM", (bsz, 0.02), xycoords=("data", "axes fraction"), color=c, fontsize=7, ha="center")
    if not drawn and not len(latency):
        plt.close(fig)
        return None
    for ax, ylabel in ((ax_l, "latency (s)"), (ax_t, "throughput (samples / s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        batches = sorted({int(b) for b in latency["batch_size"]})
        ax.set_xticks(batches)
        ax.set_xticklabels([str(b) for b in batches])
        ax.set_ylim(bottom=0)
    ax_l.set_title("Latency vs batch size")
    ax_t.set_title("Throughput vs batch size")
    ax_l.legend(fontsize=8)
    sub = _subtitle(latency)
    fig.suptitle((title + "\n" if title else "") + sub, fontsize=9)
    return _save(plt, fig, out_png)


def _save(plt, fig, out_png: str | Path) -> Path:
    """Lay out, write (parents created) and close `fig`: both figures leave the same way, at the same dpi."""
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _series_label(latency: "pd.DataFrame") -> "pd.Series":
    """Model name, plus device/dtype/duration when the table mixes several."""
    label = latency["model"].astype(str)
    for col, fmt in (("device", "{}"), ("dtype", "{}"), ("duration_s", "{:g}s")):
        if col in latency and latency[col].nunique() > 1:
            label = label + " " + latency[col].map(lambda v, f=fmt: f.format(v))
    return label


def _subtitle(latency: "pd.DataFrame") -> str:
    parts = []
    for col, name in (("device", "device"), ("dtype", "dtype"), ("duration_s", "duration (s)")):
        if col in latency and latency[col].nunique() == 1:
            parts.append(f"{name}: {latency[col].iloc[0]}")
    return ", ".join(parts)
