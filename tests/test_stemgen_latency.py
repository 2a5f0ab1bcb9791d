"""`bench latency --models stemgen-tiny,...`: StemGen on the same latency curves as MAGNeT / MusicGen."""

from __future__ import annotations

import pandas as pd
import torch

import magnet_eval.bench.latency as lat
from magnet_eval.models.stemgen_generator import load_stemgen_generator


def test_stemgen_tiny_beside_magnet_tiny_on_cpu(tmp_path):
    torch.set_num_threads(1)
    table = lat.run_latency_benchmark("stemgen-tiny,magnet-tiny", [1, 2], out_dir=tmp_path, duration=0.3, warmup=0,
                                      repeats=1, plot=True, params={"decoding_steps": [8, 4, 2, 2]})
    s = table[table.model == "stemgen-tiny"].set_index("batch_size")
    assert list(s.status) == ["ok", "ok"] and (s.latency_median_s > 0).all()
    # 8 + 4 + 2 + 2 iterations, each one batched forward (the guidance rows in the same batch): 16 LM calls counted
    assert (s.decoding_steps == 16).all() and (s.forward_passes == 16).all()
    assert (s.n_params > 7e6).all()
    assert set(pd.read_csv(tmp_path / "latency.csv").model) == {"stemgen-tiny", "magnet-tiny"}


def test_generator_decodes_stems_and_counts_passes(tmp_path):
    from magnet_eval.models.stemgen import save_stemgen

    gen = load_stemgen_generator("stemgen-tiny")
    gen.generate(["a"], duration=0.1, seed=0)
    assert gen.last_stats["decoding_steps"] == 256  # the paper's 128 + 64 + 32 + 32 by default
    codes, wav, sr = gen.generate(["a", "b"], duration=0.4, seed=0, decoding_steps=[2, 1, 1, 1])
    assert codes.shape == (2, 4, 20) and wav.shape[0] == 2 and sr == gen.codec.sample_rate
    assert gen.last_stats == {"decoding_steps": 5, "forward_passes": 5, "rows_per_pass": 6}
    gen.generate(["a"], duration=0.2, seed=0, decoding_steps=[1, 1, 1, 1], cfg=False)
    assert gen.last_stats["rows_per_pass"] == 1
    # a checkpoint is timed through the same registry route as a preset
    path = save_stemgen(gen.lm, tmp_path / "sg.pt")
    from magnet_eval.systems.registry import build_timed

    timed = build_timed(str(path), "cpu", "fp32")
    assert timed.lm.n_q == 4 and sum(p.numel() for p in timed.lm.parameters()) == sum(
        p.numel() for p in gen.lm.parameters())
