"""Sweep curves and tables for presets that vary one knob (VampNet's prompt period P, its sampling steps).

A sweep table has one row per system with `sweep` ("prompt" / "steps"), `kind` (periodic,
compression, noise), `name`, `period`, `codebooks`, `coarse_steps`, `c2f_steps`, `bitrate_bps`,
`mel_distance` (+ `mel_ci_low/high`) and `fad` (+ `fad_ci_low/high`); these functions draw it
(`plot_prompt_sweep`: distance against bitrate; `plot_steps_sweep`: against the number of
steps) and render it for the report page (`sweep_section`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .plots import _pyplot

if TYPE_CHECKING:
    import pandas as pd

METRICS = (("mel_distance", "mel distance to the original", "mel_ci_low", "mel_ci_high"),
           ("fad", "FAD [musicnn] vs the originals", "fad_ci_low", "fad_ci_high"))


def _err(rows: "pd.DataFrame", col: str, lo: str, hi: str):
    import numpy as np

    v = rows[col].to_numpy(float)
    low = np.nan_to_num(v - rows[lo].to_numpy(float), nan=0.0).clip(min=0)
    high = np.nan_to_num(rows[hi].to_numpy(float) - v, nan=0.0).clip(min=0)
    return [low, high]


def plot_prompt_sweep(table: "pd.DataFrame", out_png: str | Path) -> Optional[Path]:
    """Mel distance and FAD against the kept-token bitrate: the periodic-P curve (points labelled P), the
    codec-only compression curve, and the noise floor as a horizontal line (it keeps 0 bits/s)."""
    plt = _pyplot()
    t = table[table.sweep == "prompt"]
    if not len(t):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (col, label, lo, hi) in zip(axes, METRICS):
        per = t[t.kind == "periodic"].sort_values("bitrate_bps")
        comp = t[t.kind == "compression"].sort_values("bitrate_bps")
        if len(per):
            ax.errorbar(per.bitrate_bps, per[col], yerr=_err(per, col, lo, hi), marker="o", capsize=3,
                        label="VampNet, periodic prompt P")
            for _, r in per.iterrows():
                if math.isfinite(r[col]):
                    ax.annotate(f"P={int(r.period)}", (r.bitrate_bps, r[col]), textcoords="offset points",
                                xytext=(4, 4), fontsize=8)
        if len(comp):
            ax.errorbar(comp.bitrate_bps, comp[col], yerr=_err(comp, col, lo, hi), marker="s", capsize=3,
                        label="codec only (lowest n codebooks)")
        noise = t[t.kind == "noise"]
        if len(noise) and math.isfinite(float(noise[col].iloc[0])):
            ax.axhline(float(noise[col].iloc[0]), color="grey", ls="--", label="noise floor (random tokens)")
        ax.set_xscale("log")
        ax.set_xlabel("bitrate of the kept tokens (bits/s, log)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Prompt sweep: lower is closer to the original")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def plot_steps_sweep(table: "pd.DataFrame", out_png: str | Path) -> Optional[Path]:
    """FAD and mel distance against the number of coarse sampling steps (the c2f model runs twice as many)."""
    plt = _pyplot()
    t = table[table.sweep == "steps"].sort_values("coarse_steps")
    if not len(t):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (col, label, lo, hi) in zip(axes[::-1], METRICS):
        ax.errorbar(t.coarse_steps, t[col], yerr=_err(t, col, lo, hi), marker="o", capsize=3)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("coarse sampling steps (c2f: twice as many)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    period = t.period.dropna()
    fig.suptitle(f"Sampling steps, periodic prompt P={int(period.iloc[0])}" if len(period) else "Sampling steps")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def sweep_display(table: "pd.DataFrame") -> "pd.DataFrame":
    """The sweep table as shown: one row per point, numbers rounded, intervals in brackets."""
    import pandas as pd

    def num(v, fmt="{:.4g}") -> str:
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)

    def with_ci(v, lo, hi) -> str:
        if not (isinstance(v, float) and math.isfinite(v)):
            return "-"
        return f"{v:.4g}" + (f" [{lo:.3g}, {hi:.3g}]" if math.isfinite(lo) and math.isfinite(hi) else "")

    rows = []
    for r in table.itertuples(index=False):
        steps = f"{int(r.coarse_steps)}+{int(r.c2f_steps)}" if isinstance(r.coarse_steps, (int, float)) and \
            math.isfinite(r.coarse_steps) else "-"
        rows.append({"sweep": r.sweep, "system": r.name, "kept tokens": num(r.kept_fraction, "{:.3f}"),
                     "bitrate (bps)": num(r.bitrate_bps, "{:.0f}"), "steps (coarse+c2f)": steps,
                     "mel distance ↓": with_ci(r.mel_distance, r.mel_ci_low, r.mel_ci_high),
                     "FAD [musicnn] ↓": with_ci(r.fad, r.fad_ci_low, r.fad_ci_high)})
    return pd.DataFrame(rows)


def sweep_section(table: "pd.DataFrame", figures: dict[str, Optional[Path]]) -> str:
    """The HTML block of the report page: the two figures and the table."""
    from .html import frame_to_html, png_data_uri

    parts = ["<h2>Prompt and sampling-step sweeps</h2>",
             '<p class="meta">Every point is measured against the original held-out clips; bitrate = kept tokens x '
             "log2(codebook size) per second. Intervals: bootstrap 95% over clips.</p>"]
    for name, fig in figures.items():
        if fig is not None:
            parts.append(f'<img class="plot" alt="{name} sweep" src="{png_data_uri(fig)}">')
    disp = sweep_display(table)
    parts.append(frame_to_html(disp, numeric=["kept tokens", "bitrate (bps)", "mel distance ↓", "FAD [musicnn] ↓"]))
    return "\n".join(parts)
