"""`bench latency --models vampnet-tiny,...`: VampNet on the same latency curves as MAGNeT / MusicGen."""

from __future__ import annotations

import pandas as pd
import torch

import magnet_eval.bench.latency as lat
from magnet_eval.models.vampnet_generator import is_vampnet_spec, load_vampnet_generator


def test_vampnet_tiny_beside_magnet_tiny_on_cpu(tmp_path):
    torch.set_num_threads(1)
    table = lat.run_latency_benchmark("vampnet-tiny,magnet-tiny", [1, 2], out_dir=tmp_path, duration=0.3, warmup=0,
                                      repeats=1, plot=True)
    v = table[table.model == "vampnet-tiny"].set_index("batch_size")
    assert list(v.status) == ["ok", "ok"] and (v.latency_median_s > 0).all()
    # 12 coarse + 24 c2f steps, one window each at 0.3 s: 36 forward passes; both token models counted
    assert (v.decoding_steps == 36).all() and (v.forward_passes == 36).all()
    assert (v.n_params > 7e6).all()
    assert set(pd.read_csv(tmp_path / "latency.csv").model) == {"vampnet-tiny", "magnet-tiny"}
    assert (tmp_path / "latency.png").is_file()


def test_generator_counts_windows_and_spec_detection(tmp_path):
    from magnet_eval.models.vampnet_weights import save_vampnet

    gen = load_vampnet_generator("vampnet-tiny")
    codes, wav, sr = gen.generate(["x"], duration=3.5, seed=0, coarse_steps=2, c2f_steps=3)
    assert codes.shape[1:] == (4, 175) and wav.shape[0] == 1 and sr == gen.codec.sample_rate
    assert gen.last_stats == {"decoding_steps": 5, "forward_passes": 2 * 1 + 3 * 2, "decoded": True}
    path = save_vampnet(gen.vampnet, tmp_path / "vn.pt", "tiny")
    assert is_vampnet_spec(path) and is_vampnet_spec("vampnet-paper")
    assert not is_vampnet_spec("magnet-tiny") and not is_vampnet_spec(tmp_path / "missing.pt")
