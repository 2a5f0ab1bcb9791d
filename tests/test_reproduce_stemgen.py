"""`reproduce --preset stemgen-tiny` at toy sizes: the table, the note's verdicts, audio players, and reuse on rerun."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from magnet_eval.reproduce import TinyPreset
from magnet_eval.reproduce_stemgen import (CEILING, FLOOR, MODEL, StemGenTinyPreset, ablation_verdicts, ablations,
                                           between_verdict, held_out_items, mismatched_stems, run_stemgen_tiny)
from magnet_eval.solvers.recipes import TinyBudget

TOY = StemGenTinyPreset(
    tiny=TinyPreset(n_clips=16, clip_seconds=2.0, train=TinyBudget(codec_steps=2, codec_batch=2, codec_segment_seconds=0.5,
                                                                   lm_steps=2, lm_batch=2, lm_segment_seconds=1.0)),
    train_clips=4, steps=2, batch_size=2, segment_seconds=1.0, n_clips=4, clip_seconds=1.5, decoding_steps=(2, 1, 1, 1),
    fewer_steps=(1, 1, 1, 1), batch=4, n_reference=4, min_fad_clips=2, n_bootstrap=10, audio_examples=2)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stemgen_reproduce")
    index = run_stemgen_tiny(root / "report", root / "work", TOY, command="magnet-eval reproduce --preset stemgen-tiny (toy)")
    return root, index


def test_toy_preset_writes_the_stem_table_notes_and_players(toy_run):
    root, index = toy_run
    rep = root / "report"
    table = pd.read_csv(rep / "stemgen_table.csv")
    names = [CEILING, FLOOR] + [a.name for a in ablations(TOY)]
    assert list(table.system) == names
    for m in ("beat_f", "onset_f", "fad_mix"):
        assert np.isfinite(table[m]).all(), m
    assert table["fad_mix"].gt(0).all()
    md = (rep / "stemgen_table.md").read_text()
    assert "beat F" in md and "MIRDD" in md
    notes = json.loads((rep / "report.json").read_text())["notes"]
    text = " ".join(notes)
    assert "Does StemGen tiny sit between the mismatched-context floor and the real-stem ceiling?" in text
    for ab in ablations(TOY)[1:]:
        assert f"Ablation '{ab.name}' vs StemGen tiny" in text
    html = index.read_text()
    assert "Stem evaluation (StemGen tiny)" in html
    audio = rep / "audio"
    assert len([p for p in audio.iterdir() if p.is_dir()]) == 1 + len(names)  # context alone + every system


def test_second_run_reuses_model_generations_and_results(toy_run):
    root, _ = toy_run
    own = root / "work" / "stemgen"
    watched = [p for p in own.rglob("*") if p.suffix in (".parquet", ".pt", ".wav") or p.name == "alignment.json"]
    assert watched
    before = {p: p.stat().st_mtime_ns for p in watched}
    run_stemgen_tiny(root / "report", root / "work", TOY)
    assert {p: p.stat().st_mtime_ns for p in watched} == before


def test_held_out_contexts_are_the_other_stems_and_mismatches_come_from_other_clips(toy_run):
    from magnet_eval.audio import fit_length, load_audio
    from magnet_eval.stems import read_corpus

    root, _ = toy_run
    tracks = read_corpus(root / "work" / "corpus" / "manifest.jsonl")
    test = [t for t in tracks if t.split == "test"][:3]
    sr = 32000
    items = held_out_items(test, sr, 1.0)
    n = sr
    for it, t in zip(items, test):
        others = sum(fit_length(load_audio(p, sr=sr)[0], n) for k, p in t.stems.items() if k != it.part)
        assert np.allclose(it.context, others, atol=1e-6)
        assert np.allclose(it.stem, fit_length(load_audio(t.stems[it.part], sr=sr)[0], n))
    mism = mismatched_stems(items, tracks, sr, 1.0)
    assert all(src != it.id for it, (src, _) in zip(items, mism))


def _table(floor: float, model: float, ceiling: float) -> pd.DataFrame:
    rows = []
    for name, v in ((CEILING, ceiling), (FLOOR, floor), (MODEL, model), ("causal bias off", model - 0.1)):
        rows.append({"system": name, "beat_f": v, "onset_f": v, "chroma_agreement": v, "key_agreement": math.nan,
                     "fad_mix": 1 - v, "mirdd": 1 - v})
    return pd.DataFrame(rows)


def test_verdicts_follow_the_numbers():
    text = between_verdict(_table(0.2, 0.5, 0.9))
    assert text.count("between floor and ceiling") == 3 and "key agreement: not defined" in text
    assert "BELOW both" in between_verdict(_table(0.2, 0.1, 0.9))
    assert "ABOVE both" in between_verdict(_table(0.2, 0.95, 0.9))
    (line,) = ablation_verdicts(_table(0.2, 0.5, 0.9), ["causal bias off"])
    assert "beat F (context vs mix) 0.500 -> 0.400 (worse)" in line
    assert "MIRDD of stem + context 0.500 -> 0.600 (worse)" in line
