"""`reproduce --preset magnet-ablations-tiny` at toy sizes: every ablation row present with its numbers, the
variants trained as asked, the FAD confidence-interval verdict computed from the table, and a rerun that
reuses every stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from magnet_eval.reproduce import TinyPreset
from magnet_eval.reproduce_ablations import (UNRESTRICTED_CONTEXT, AblationsPreset, VariantBudget, ablation_rows,
                                             fad_ci_verdict, run_ablations_tiny)
from magnet_eval.solvers.recipes import TinyBudget

TOY = AblationsPreset(
    tiny=TinyPreset(n_clips=30, clip_seconds=3.0, train=TinyBudget(codec_steps=2, codec_batch=2, codec_segment_seconds=0.5,
                                                                  lm_steps=2, lm_batch=2, lm_segment_seconds=1.0)),
    variants=VariantBudget(steps=2, batch_size=2, segment_seconds=1.0),
    span_lengths=(1, 3), base_steps=(2, 1, 1, 1), steps_sweep=((1, 1, 1, 1),), hybrid_prefixes=(0.0, 0.4), gen_seconds=1.0, gen_batch=4,
    n_clips=4, n_bootstrap=20, latency_repeats=1, audio_examples=1, parallel=False)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablations")
    index = run_ablations_tiny(root / "report", root / "work", TOY, command="magnet-eval reproduce (toy ablations)")
    return root, index


def test_every_ablation_row_has_its_numbers(toy_run):
    root, index = toy_run
    assert index.is_file()
    table = pd.read_csv(root / "report" / "ablations.csv")
    expected = [r.name for r in ablation_rows(TOY)]
    assert list(table["system"]) == expected
    settings = set(zip(table["ablation"], table["setting"]))
    for needle in [("CFG", "fixed 3"), ("decoding steps per stage", "1,1,1,1"), ("span length", "1"),
                   ("restricted context", "off (span 3)"), ("Hybrid prefix", "0 s"), ("Hybrid prefix", "0.4 s")]:
        assert needle in settings, needle
    assert any(a == "rescoring" for a, _ in settings)
    for col in ("fad", "fad_ci_low", "fad_ci_high", "kl", "mirdd", "latency_s"):
        assert table[col].map(math.isfinite).all(), col
    assert (table["fad_ci_low"] <= table["fad"]).all() and (table["fad"] <= table["fad_ci_high"]).all()
    assert table.groupby("group")["baseline"].sum().eq(1).all()
    # more decoding steps and rescoring cost forward passes: the latency column measures the decoding asked for
    passes = table.set_index("ablation")["forward_passes"]
    assert passes["rescoring"] > passes["baseline"]
    assert (root / "report" / "ablations_quality_latency.png").stat().st_size > 0
    md = (root / "report" / "ablations.md").read_text()
    assert "### training" in md and "FAD [musicnn]" in md and "latency (s, batch 1)" in md


def test_variants_are_trained_with_what_they_ablate(toy_run):
    root, _ = toy_run
    models = root / "work" / "ablations" / "models"
    recipes = {d.name: json.loads((d / "recipe_done.json").read_text())["recipe"] for d in models.iterdir()
               if (d / "recipe_done.json").is_file()}
    # the variant budget is the base model's, so span 3 with restricted context IS the base model: not retrained
    assert TOY.span3_is_base()
    assert set(recipes) == {"span1", "context-off", "hybrid"}
    base = json.loads((root / "work" / "models" / "magnet" / "recipe_done.json").read_text())["recipe"]
    assert base["lm"]["span_len"] == 3 and base["lm"]["subcodes_context"] == 5 and not base.get("hybrid")
    assert recipes["span1"]["lm"]["span_len"] == 1
    assert recipes["context-off"]["lm"]["subcodes_context"] == UNRESTRICTED_CONTEXT
    assert recipes["hybrid"].get("hybrid") is True
    # one budget for every variant and the base, so each row differs from the baseline in what it ablates only
    assert len({json.dumps(r["train"], sort_keys=True) for r in [*recipes.values(), base]}) == 1
    for name, r in recipes.items():
        differing = {k for k in set(r["lm"]) | set(base["lm"]) if r["lm"].get(k) != base["lm"].get(k)}
        assert differing <= {"span_len", "subcodes_context"}, (name, differing)
    table = pd.read_csv(root / "report" / "ablations.csv")
    assert table[(table["group"] == "training") & table["baseline"]]["model"].tolist() == ["base"]


def test_a_shorter_variant_budget_trains_its_own_span3_baseline():
    short = AblationsPreset(tiny=TOY.tiny, variants=VariantBudget(steps=1, batch_size=2, segment_seconds=1.0))
    assert not short.span3_is_base()
    rows = ablation_rows(short)
    assert [r.model for r in rows if r.group == "training" and r.baseline] == ["span3"]


def test_the_verdict_in_the_report_is_computed_from_the_table(toy_run):
    root, index = toy_run
    table = pd.read_csv(root / "report" / "ablations.csv")
    verdict = fad_ci_verdict(table)
    assert verdict.startswith("FAD [musicnn] beyond the confidence intervals")
    assert verdict in index.read_text().replace("&gt;", ">")
    for r in table[~table["baseline"]].itertuples():
        assert f"{r.ablation} {r.setting}" in verdict or f"{r.ablation} = {r.setting}" in verdict


def test_fad_ci_verdict_compares_each_row_with_its_group_baseline():
    def row(group, ablation, setting, fad, lo, hi, baseline=False):
        return dict(group=group, ablation=ablation, setting=setting, fad=fad, fad_ci_low=lo, fad_ci_high=hi,
                    baseline=baseline)

    table = pd.DataFrame([
        row("decoding", "baseline", "default", 10.0, 9.0, 11.0, True),
        row("decoding", "CFG", "fixed 3", 14.0, 12.0, 16.0),  # disjoint above: raised
        row("decoding", "steps", "10,5,5,5", 10.5, 9.5, 11.5),  # overlaps: within
        row("training", "span length", "3", 20.0, 19.0, 21.0, True),
        row("training", "span length", "1", 15.0, 14.0, 16.0),  # disjoint below: lowered
        row("training", "restricted context", "off", math.nan, math.nan, math.nan),
    ])
    text = fad_ci_verdict(table)
    assert "CFG = fixed 3 raised it (14 [12, 16] vs baseline 10 [9, 11]; gap 1)" in text
    assert "span length = 1 lowered it (15 [14, 16] vs baseline 20 [19, 21]; gap 3)" in text
    assert "Within the intervals: steps = 10,5,5,5" in text
    assert "Not checked (no interval): restricted context = off" in text
    none = fad_ci_verdict(table.iloc[[0, 2]])
    assert "no ablation moved FAD beyond them" in none


def test_second_run_reuses_every_stage(toy_run):
    root, _ = toy_run
    own = root / "work" / "ablations"

    def stamps(*patterns: str) -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for pat in patterns for p in own.rglob(pat)}

    before = stamps("*.bin", "*.parquet", "*.wav", "latency.csv")
    assert len(before) > 20
    base_models = {p: p.stat().st_mtime_ns for p in (root / "work" / "models").rglob("*.bin")}
    index = run_ablations_tiny(root / "report", root / "work", TOY)
    assert stamps("*.bin", "*.parquet", "*.wav", "latency.csv") == before
    assert {p: p.stat().st_mtime_ns for p in (root / "work" / "models").rglob("*.bin")} == base_models
    html = index.read_text()
    assert "Stages of this run" in html and "The first complete run in this work folder" in html
