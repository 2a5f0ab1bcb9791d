"""Latency benchmark: timing statistics, OOM handling, time budget, resume, counts, CSV + PNG, CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from magnet_eval.bench import latency as lat
from magnet_eval.bench import measure
from magnet_eval.errors import MagnetEvalError


class FakeGenerator:
    """Sleeps per batch element, calls its `lm` `steps` times per generation, can run out of memory."""

    def __init__(self, per_item_s: float = 0.002, steps: int = 5, oom_at: int | None = None,
                 fail_at: int | None = None, alloc_mb: int = 0, report_stats: dict | None = None):
        self.lm = torch.nn.Linear(4, 4)
        self.per_item_s = per_item_s
        self.steps = steps
        self.oom_at = oom_at
        self.fail_at = fail_at
        self.alloc_mb = alloc_mb
        self.calls: list[int] = []
        if report_stats is not None:
            self.last_stats = report_stats

    def generate(self, prompts, duration, seed, batch_size, **params):
        assert len(prompts) == batch_size
        self.calls.append(batch_size)
        if self.oom_at is not None and batch_size >= self.oom_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.fail_at is not None and batch_size == self.fail_at:
            raise ValueError("shape mismatch in the fake model")
        x = torch.zeros(batch_size, 4)
        for _ in range(params.get("steps", self.steps)):
            x = self.lm(x)
        if self.alloc_mb:
            block = np.ones(self.alloc_mb * batch_size * 2**20 // 8)  # touched pages count in the RSS
            time.sleep(0.25)  # several sampling periods, even on a loaded machine
            assert block[-1] == 1.0
        time.sleep(self.per_item_s * batch_size * duration)
        return None, np.zeros((batch_size, int(100 * duration)), np.float32), 100


def _loader(gens: dict, built: list | None = None):
    def load(spec, device, dtype):
        if built is not None:
            built.append(spec)
        return gens[spec]
    return load


def test_sweep_statistics_oom_and_outputs(tmp_path):
    gens = {"fake-a": FakeGenerator(oom_at=4), "fake-b": FakeGenerator(per_item_s=0.004, steps=7)}
    table = lat.run_latency_benchmark("fake-a,fake-b", [1, 2, 4, 8], out_dir=tmp_path, duration=1.0, warmup=1,
                                      repeats=3, loader=_loader(gens))
    csv = pd.read_csv(tmp_path / "latency.csv")
    assert len(csv) == len(table) == 8
    a = csv[csv.model == "fake-a"].set_index("batch_size")
    assert list(a.status) == ["ok", "ok", "oom", "oom"]
    assert "out of memory" in a.loc[4, "error"] and "not tried" in a.loc[8, "error"]
    # OOM stopped the sweep of fake-a: batch 8 was never attempted; warm-up + 3 repeats per ok point
    assert gens["fake-a"].calls == [1, 1, 1, 1, 2, 2, 2, 2, 4]
    b = csv[csv.model == "fake-b"].set_index("batch_size")
    assert (b.status == "ok").all()
    for bs, r in b.iterrows():
        times = json.loads(r.times_s)
        assert len(times) == 3 == r.repeats
        assert r.latency_median_s == pytest.approx(float(np.median(times)), abs=1e-6)
        assert r.latency_min_s <= r.latency_median_s <= r.latency_max_s
        assert r.latency_median_s >= 0.004 * bs  # the fake sleeps that long
        assert r.samples_per_s == pytest.approx(bs / r.latency_median_s)
        assert r.rtf == pytest.approx(r.latency_median_s / (bs * 1.0))
        assert r.decoding_steps == 7 and r.forward_passes == 7  # counted by the forward hook on `lm`
        assert r.n_params == 20  # Linear(4, 4)
        assert r.memory_kind.startswith("cpu")
    png = (tmp_path / "latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_warmup_once_warms_up_before_each_models_first_point_only(tmp_path):
    """--warmup-once: warm-up runs before the first measured point of each model, none before later ones,
    and each row records the warm-up it had; a resumed sweep warms up before its first new point."""
    gens = {"fake-a": FakeGenerator(), "fake-b": FakeGenerator()}
    lat.run_latency_benchmark("fake-a,fake-b", [1, 2], out_dir=tmp_path, duration=1.0, warmup=2, repeats=2,
                              warmup_once=True, loader=_loader(gens))
    assert gens["fake-a"].calls == gens["fake-b"].calls == [1, 1, 1, 1, 2, 2]
    csv = pd.read_csv(tmp_path / "latency.csv")
    assert csv.set_index(["model", "batch_size"])["warmup"].to_dict() == {
        ("fake-a", 1): 2, ("fake-a", 2): 0, ("fake-b", 1): 2, ("fake-b", 2): 0}
    again = FakeGenerator()
    lat.run_latency_benchmark("fake-a", [1, 2, 4], out_dir=tmp_path, duration=1.0, warmup=1, repeats=2,
                              warmup_once=True, loader=_loader({"fake-a": again}))
    assert again.calls == [4, 4, 4]


def test_generator_reported_counts_win_over_the_hook(tmp_path):
    gen = FakeGenerator(steps=3, report_stats={"decoding_steps": [20, 10, 10, 10], "forward_passes": 50})
    table = lat.run_latency_benchmark(["m"], [1], out_dir=tmp_path, duration=0.5, warmup=0, repeats=1,
                                      loader=_loader({"m": gen}), plot=False)
    assert table.iloc[0].decoding_steps == 50 and table.iloc[0].forward_passes == 50
    # stats kept by the LM itself (as MagnetLM / MusicGenLM do)
    gen = FakeGenerator(steps=3)
    gen.lm.last_stats = {"decoding_steps": 253, "forward_passes": 253}
    table = lat.run_latency_benchmark(["m"], [1], out_dir=tmp_path / "lm", duration=0.5, warmup=0, repeats=1,
                                      loader=_loader({"m": gen}), plot=False)
    assert table.iloc[0].decoding_steps == 253 and table.iloc[0].forward_passes == 253


def test_error_is_recorded_and_sweep_goes_on(tmp_path):
    gen = FakeGenerator(fail_at=2)
    table = lat.run_latency_benchmark(["m"], [1, 2, 4], out_dir=tmp_path, duration=0.5, warmup=0, repeats=1,
                                      loader=_loader({"m": gen}), plot=False).set_index("batch_size")
    assert list(table.status) == ["ok", "error", "ok"]
    assert "shape mismatch" in table.loc[2, "error"]


def test_resume_skips_points_already_measured(tmp_path):
    built: list[str] = []
    gens = {"m": FakeGenerator()}
    lat.run_latency_benchmark(["m"], [1, 2], out_dir=tmp_path, duration=0.5, warmup=0, repeats=1,
                              loader=_loader(gens, built), plot=False)
    first = pd.read_csv(tmp_path / "latency.csv")
    gens["m"].calls.clear()
    table = lat.run_latency_benchmark(["m"], [1, 2, 4], out_dir=tmp_path, duration=0.5, warmup=0, repeats=1,
                                      loader=_loader(gens, built), plot=False)
    assert gens["m"].calls == [4]  # only the new point ran
    assert sorted(table.batch_size) == [1, 2, 4]
    kept = table[table.batch_size <= 2].sort_values("batch_size")
    assert list(kept.latency_median_s) == pytest.approx(list(first.sort_values("batch_size").latency_median_s))
    # everything done: the model is not even built
    built.clear()
    lat.run_latency_benchmark(["m"], [1, 2, 4], out_dir=tmp_path, duration=0.5, warmup=0, repeats=1,
                              loader=_loader(gens, built), plot=False)
    assert built == []
    # another duration is another point
    lat.run_latency_benchmark(["m"], [1], out_dir=tmp_path, duration=0.25, warmup=0, repeats=1,
                              loader=_loader(gens, built), plot=False)
    assert built == ["m"] and len(pd.read_csv(tmp_path / "latency.csv")) == 4


def test_time_budget_skips_large_batches(tmp_path):
    # 0.1 s per item: batch 2 is estimated at (1 warm-up + 1 run) x 2 x 0.1 = 0.4 s < 0.5 s and runs;
    # batch 4 at >= 0.65 s (even with a noisy batch-1 timing) and is skipped, and so is batch 8
    gen = FakeGenerator(per_item_s=0.1)
    table = lat.run_latency_benchmark(["m"], [1, 2, 4, 8], out_dir=tmp_path, duration=1.0, warmup=1, repeats=2,
                                      time_budget_s=0.5, loader=_loader({"m": gen}), plot=False)
    st = table.set_index("batch_size").status
    assert st[1] == "ok" and st[2] == "ok"
    assert st[4] == "skipped" and st[8] == "skipped"
    assert 4 not in gen.calls and 8 not in gen.calls
    # skipped points are measured when asked again without the budget (they are not "done")
    gen.calls.clear()
    lat.run_latency_benchmark(["m"], [1, 2, 4], out_dir=tmp_path, duration=1.0, warmup=0, repeats=1,
                              loader=_loader({"m": gen}), plot=False)
    assert gen.calls == [4]


def test_estimate_latency():
    assert lat.estimate_latency([], 4) is None
    assert lat.estimate_latency([(8, 1.0)], 4) is None  # nothing below
    assert lat.estimate_latency([(1, 2.0)], 4) == pytest.approx(8.0)  # one point: linear
    assert lat.estimate_latency([(1, 1.0), (2, 4.0)], 4) == pytest.approx(16.0)  # quadratic growth kept
    assert lat.estimate_latency([(1, 1.0), (2, 1.1)], 8) == pytest.approx(1.1 * 4 ** 0.5)  # clipped at 0.5
    assert lat.estimate_latency([(1, 1.0), (2, 9.0)], 4) == pytest.approx(36.0)  # clipped at 2


def test_cpu_peak_memory_sees_allocations(tmp_path):
    gen = FakeGenerator(alloc_mb=64)
    table = lat.run_latency_benchmark(["m"], [1], out_dir=tmp_path, duration=0.1, warmup=0, repeats=1,
                                      loader=_loader({"m": gen}), plot=False)
    assert table.iloc[0].peak_memory_mb > 40


def test_is_oom_and_inputs():
    assert lat.is_oom(torch.OutOfMemoryError("x"))
    assert lat.is_oom(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert lat.is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"))
    assert lat.is_oom(MemoryError())
    assert not lat.is_oom(RuntimeError("shape mismatch"))
    assert lat.default_duration("cpu") < lat.default_duration("cuda") == 10.0
    assert lat.dtype_label("bf16") == "bf16" and lat.torch_dtype("fp16") == torch.float16
    with pytest.raises(MagnetEvalError):
        lat.torch_dtype("int8")
    with pytest.raises(MagnetEvalError):
        lat.parse_models("a,a")
    assert lat.parse_models("small=magnet-small,musicgen-small") == [("small", "magnet-small"),
                                                                      ("musicgen-small", "musicgen-small")]
    with pytest.raises(MagnetEvalError, match="batch sizes"):
        lat.run_latency_benchmark(["m"], [0], out_dir="/tmp/never", loader=_loader({}))


def test_prompts_from_manifest_and_text(tmp_path):
    from magnet_eval.manifest import Manifest, ManifestEntry

    Manifest([ManifestEntry("a", "first caption"), ManifestEntry("b", "second caption")]).write(tmp_path / "p.jsonl")
    assert lat.read_prompts(tmp_path / "p.jsonl") == ["first caption", "second caption"]
    assert lat.read_prompts("solo violin") == ["solo violin"]
    assert measure._batch_prompts(["x", "y"], 5) == ["x", "y", "x", "y", "x"]


def test_cli_latency(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    gens = {"fake-small": FakeGenerator(oom_at=2)}
    monkeypatch.setattr(lat, "default_loader", _loader(gens))
    res = CliRunner().invoke(app, ["bench", "latency", "--models", "fake-small", "--batch-sizes", "1,2,4",
                                   "--out", str(tmp_path / "b"), "--warmup", "0", "--repeats", "2",
                                   "--param", "steps=4"])
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "b" / "latency.csv").set_index("batch_size")
    assert list(csv.status) == ["ok", "oom", "oom"]
    assert csv.loc[1, "duration_s"] == lat.default_duration("cpu")  # reduced duration on CPU by default
    assert csv.loc[1, "forward_passes"] == 4  # --param reached generate()
    assert (tmp_path / "b" / "latency.png").is_file()


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.skipif(not (_importable("magnet_eval.models.generator") and _importable("magnet_eval.models.codec")),
                    reason="the models (generator + codec) are not all in this checkout yet")
def test_tiny_models_on_cpu(tmp_path):
    """The real tiny presets through `load_generator` (LM + codec + text encoder), on CPU."""
    magnet = lat.run_latency_benchmark("magnet-tiny", [1, 2], out_dir=tmp_path, duration=0.5, warmup=0, repeats=1,
                                       params={"decoding_steps": "4,2,2,2"}, plot=False)
    assert (magnet.status == "ok").all(), magnet.error.tolist()
    assert magnet.decoding_steps.tolist() == [10, 10] and magnet.forward_passes.tolist() == [10, 10]
    assert (magnet.n_params > 1e6).all() and (magnet.latency_median_s > 0).all()
    musicgen = lat.run_latency_benchmark("musicgen-tiny", [1], out_dir=tmp_path, duration=0.2, warmup=0, repeats=1)
    row = musicgen[musicgen.model == "musicgen-tiny"].iloc[0]
    assert row.status == "ok", row.error
    assert row.decoding_steps == 10 + 3  # one step per frame (0.2 s at 50 Hz) plus the delays [0, 1, 2, 3]
    assert set(pd.read_csv(tmp_path / "latency.csv").model) == {"magnet-tiny", "musicgen-tiny"}
    assert (tmp_path / "latency.png").is_file()
