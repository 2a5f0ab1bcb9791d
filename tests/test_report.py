"""Report tables (MAGNeT Table 1 layout), plots and the files `build_report` writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from magnet_eval.errors import MagnetEvalError
from magnet_eval.report import build_report
from magnet_eval.report.plots import metric_panels
from magnet_eval.report.tables import (collect_results, fmt_cell, fmt_params, metrics_wide, not_computed, table1,
                                       table1_display, to_markdown)

COLS = ["system", "metric", "value", "ci_low", "ci_high", "n_generated", "n_reference", "embedder", "reference",
        "status", "details"]


def results_frame(system: str, fad: float, kl: float, mirdd: float, clap_status: str = "weights not available",
                  **extra) -> pd.DataFrame:
    rows = [
        (system, "fad", fad, fad * 0.9, fad * 1.1, 20, 20, "musicnn", "ref", "ok", "{}"),
        (system, "fad_inf", fad * 0.8, math.nan, math.nan, 20, 20, "musicnn", "ref", "ok", "{}"),
        (system, "kl", math.nan, math.nan, math.nan, 20, 20, "passt", "ref", "weights not available", "{}"),
        (system, "kl_musicnn", kl, kl - 0.1, kl + 0.1, 20, 20, "musicnn", "ref", "ok", "{}"),
        (system, "clap", math.nan, math.nan, math.nan, 20, 20, "clap", "ref", clap_status, "{}"),
        (system, "mirdd", mirdd, math.nan, math.nan, 20, 20, "essentia", "ref", "ok", json.dumps(extra)),
        (system, "mirdd/tempo", mirdd * 2, math.nan, math.nan, 20, 20, "essentia", "ref", "ok", "{}"),
    ]
    return pd.DataFrame(rows, columns=COLS)


def latency_frame() -> pd.DataFrame:
    rows = []
    for model, base, steps, params in (("magnet-tiny", 0.5, 50, 3.2e6), ("musicgen-tiny", 2.0, 253, 3.1e6)):
        for b, status in ((1, "error"), (2, "ok"), (4, "ok"), (8, "oom")):
            ok = status == "ok"
            med = base * b ** 0.5 if ok else math.nan
            rows.append(dict(model=model, device="cpu", dtype="fp32", batch_size=b, duration_s=1.0, status=status,
                             latency_median_s=med, latency_min_s=med * 0.9 if ok else math.nan,
                             latency_max_s=med * 1.1 if ok else math.nan, latency_iqr_s=0.01,
                             samples_per_s=b / med if ok else math.nan, rtf=med / b if ok else math.nan,
                             decoding_steps=steps if ok else math.nan, forward_passes=steps if ok else math.nan,
                             n_params=params, repeats=3 if ok else 0, peak_memory_mb=10.0))
    return pd.DataFrame(rows)


def test_table1_layout_and_values():
    res = pd.concat([results_frame("magnet-tiny", 4.2, 1.1, 0.3), results_frame("musicgen-tiny", 4.9, 1.4, 0.5),
                     results_frame("held-out real", 0.5, 0.2, 0.05, n_params=0)], ignore_index=True)
    res.loc[(res.system == "musicgen-tiny") & (res.metric == "clap"), ["value", "status"]] = (0.3, "ok")
    res.loc[res.metric == "kl", "details"] = json.dumps({"error": "PaSST weights passt.pt not found\n"
                                                                  "Put the file at: /cache/passt.pt"})
    res = collect_results([res])
    t1 = table1(res, latency_frame())
    assert list(t1.model) == ["magnet-tiny", "musicgen-tiny", "held-out real"]
    m = t1.set_index("model")
    assert m.loc["magnet-tiny", "fad"] == pytest.approx(4.2)
    assert m.loc["musicgen-tiny", "fad_ci_high"] == pytest.approx(4.9 * 1.1)
    assert m.loc["musicgen-tiny", "kl_musicnn"] == pytest.approx(1.4)
    # computed for one system only: a column, the other system's cell says why it is empty
    assert m.loc["musicgen-tiny", "clap"] == pytest.approx(0.3)
    assert m.loc["magnet-tiny", "clap_status"] == "weights not available" and math.isnan(m.loc["magnet-tiny", "clap"])
    # computed for no system (PaSST KL): no column at all, listed once by not_computed
    assert "kl_status" not in t1.columns and "kl" not in t1.columns
    assert not_computed(res) == ["kl [passt]: weights not available (put it at /cache/passt.pt)"]
    # latency of the smallest batch that ran (batch 1 failed): batch 2
    assert m.loc["magnet-tiny", "latency_batch"] == 2
    assert m.loc["magnet-tiny", "latency_s"] == pytest.approx(0.5 * 2 ** 0.5)
    assert m.loc["musicgen-tiny", "decoding_steps"] == 253
    assert m.loc["magnet-tiny", "params"] == 3.2e6
    assert m.loc["held-out real", "params"] == 0  # from the results' details
    assert math.isnan(m.loc["held-out real", "latency_s"])
    disp = table1_display(t1)
    assert list(disp.columns[:2]) == ["Model", "Params"]
    assert "FAD [musicnn] ↓" in disp.columns and "CLAP ↑" in disp.columns
    assert "Latency (s, batch 2)" in disp.columns and "Decoding steps" in disp.columns
    row = disp.set_index("Model").loc["magnet-tiny"]
    assert row["CLAP ↑"] == "weights not available"
    assert row["FAD [musicnn] ↓"] == "4.20 [3.78, 4.62]"
    assert row["Params"] == "3.2M" and row["Decoding steps"] == "50"
    md = to_markdown(disp)
    assert md.count("\n") == 2 + len(disp)
    assert md.splitlines()[1].startswith("| ---")
    assert "weights not available" in md


def test_formatting_helpers():
    assert fmt_params(3.3e9) == "3.3B" and fmt_params(300e6) == "300M" and fmt_params(math.nan) == "-"
    assert fmt_cell(4.22, 3.9, 4.51, "ok") == "4.22 [3.90, 4.51]"
    assert fmt_cell(1.0, math.nan, math.nan, "ok") == "1.00"
    assert fmt_cell(math.nan, math.nan, math.nan, "weights not available") == "weights not available"
    assert fmt_cell(math.nan, math.nan, math.nan, "RuntimeError: boom").startswith("RuntimeError")


def test_metrics_wide_separates_embedders_and_later_inputs_win():
    a = results_frame("s", 4.0, 1.0, 0.3)
    b = results_frame("s", 4.0, 1.0, 0.3)
    b.loc[b.metric == "fad", "embedder"] = "vggish"
    b.loc[b.metric == "fad", "value"] = 7.0
    c = results_frame("s", 5.0, 1.0, 0.3)  # same (system, metric, embedder) as a: replaces it
    res = collect_results([a, b, c])
    wide = metrics_wide(res).set_index("system")
    assert wide.loc["s", "fad (musicnn)"] == 5.0 and wide.loc["s", "fad (vggish)"] == 7.0
    assert wide.loc["s", "mirdd/tempo"] == pytest.approx(0.6)
    with pytest.raises(MagnetEvalError):
        collect_results([])


def test_build_report_files(tmp_path):
    r1 = tmp_path / "r1.parquet"
    results_frame("magnet-tiny", 4.2, 1.1, 0.3).to_parquet(r1, index=False)
    r2 = tmp_path / "r2.csv"
    results_frame("musicgen-tiny", 4.9, 1.4, 0.5).to_csv(r2, index=False)
    lat_csv = tmp_path / "latency.csv"
    latency_frame().to_csv(lat_csv, index=False)
    index = build_report([r1, r2], tmp_path / "rep", latency_csv=lat_csv, title="T", notes=["made by a test"])
    out = tmp_path / "rep"
    for name in ("table1.csv", "table1.parquet", "table1.md", "metrics.csv", "results_all.parquet", "metrics.png",
                 "latency.png", "latency.csv", "report.json"):
        assert (out / name).is_file(), name
    t1 = pd.read_parquet(out / "table1.parquet")
    assert t1.equals(pd.read_parquet(out / "table1.parquet")) and len(t1) == 2
    assert pd.read_csv(out / "table1.csv").fad.tolist() == pytest.approx([4.2, 4.9])
    page = index.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "weights not available" in page and "made by a test" in page
    # PaSST KL and CLAP were computed for no system: named once in the notes, no column, no panel
    assert "Not computed for any system (no column or panel): kl [passt]" in page
    assert "clap [clap]: weights not available" in page
    assert "CLAP" not in pd.read_csv(out / "table1.csv").columns and "kl" not in t1.columns
    assert "<audio" not in page  # no audio dirs given
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_audio_sample_prefers_prompts_every_system_has(tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.report.html import collect_audio

    sr = 8000
    dirs = {}
    for system, ids in (("A", [f"p{i}" for i in range(6)]), ("B", ["p1", "p3", "p4", "p5"])):
        d = tmp_path / system
        entries = [ManifestEntry(i, f"caption {i}", str(save_audio(d / f"{i}.wav", np.zeros(sr // 10), sr)))
                   for i in ids]
        Manifest(entries).write(d / "manifest.jsonl")
        dirs[system] = d
    rows, systems = collect_audio(dirs, tmp_path / "rep", n=3, seed=1)
    assert systems == ["A", "B"] and len(rows) == 3
    assert all(r["id"] in ("p1", "p3", "p4", "p5") for r in rows)  # all covered by both systems
    for r in rows:
        assert r["caption"] == f"caption {r['id']}"
        for s in systems:
            assert (tmp_path / "rep" / r["files"][s]).is_file()
    rows, _ = collect_audio(dirs, tmp_path / "rep2", n=6)
    assert len(rows) == 6 and sum(r["files"]["B"] is None for r in rows) == 2


def test_metric_panels_one_per_computed_embedder():
    """FAD on musicnn (computed) and on VGGish (weights missing): one FAD panel, the musicnn one."""
    a = results_frame("s", 4.0, 1.0, 0.3)
    b = results_frame("s", math.nan, 1.0, 0.3)
    b = b[b.metric.isin(["fad", "fad_inf"])].assign(embedder="vggish", status="weights not available")
    res = collect_results([a, b])
    panels = metric_panels(res)
    assert ("fad", "musicnn") in panels and ("fad_inf", "musicnn") in panels
    assert not any(e == "vggish" for _, e in panels) and ("kl", "passt") not in panels and ("clap", "clap") not in panels
    t1 = table1(res).set_index("model")  # the one FAD column holds the musicnn value, not the VGGish status
    assert t1.loc["s", "fad"] == 4.0 and t1.loc["s", "fad_status"] == "ok" and t1.loc["s", "fad_embedder"] == "musicnn"
    c = b.assign(status="ok", value=7.0)  # now VGGish FAD is computed too: a second FAD panel
    assert ("fad", "vggish") in metric_panels(collect_results([a, c]))
    assert [line.split(":")[0] for line in not_computed(res)] == ["kl [passt]", "clap [clap]", "fad, fad_inf [vggish]"]
