"""`magnet-eval generate` and the Generator: presets offline, outputs, log, resume, seeds, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import magnet_eval.models.generator as gen_mod
from magnet_eval.cli import app
from magnet_eval.errors import MagnetEvalError, MissingWeightsError
from magnet_eval.manifest import Manifest, ManifestEntry
from magnet_eval.models.generator import Generator, derive_seed, load_generator

try:
    from magnet_eval.models.codec import load_codec  # noqa: F401  (C2's codec)

    HAVE_CODEC = True
except ImportError:
    HAVE_CODEC = False


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class StandInCodec(torch.nn.Module):
    """Only used while magnet_eval.models.codec is absent: codes -> a deterministic waveform."""

    sample_rate, frame_rate, n_q, card, hop = 8000, 50, 4, 2048, 160

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        B, K, F = codes.shape
        freq = 100 + codes[:, 0].float().repeat_interleave(self.hop, dim=-1)  # [B, F * hop]
        t = torch.arange(F * self.hop) / self.sample_rate
        return (0.3 * torch.sin(2 * math.pi * freq * t)).unsqueeze(1)


@pytest.fixture
def codec(monkeypatch):
    if not HAVE_CODEC:
        monkeypatch.setattr(gen_mod, "_load_codec", lambda spec, device, random_ok: StandInCodec())


def invoke(args):
    res = CliRunner().invoke(app, args)
    return res


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["magnet-tiny", "musicgen-tiny"])
def test_cli_generates_a_preset_offline(tmp_path, codec, model):
    out = tmp_path / model
    res = invoke(["generate", "--model", model, "--prompts", "lofi piano", "--duration", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    wav, sr = sf.read(out / "p000.wav")
    g = load_generator(model)
    assert sr == g.sample_rate
    frames = round(1 * g.frame_rate)
    if model.startswith("magnet"):
        frames -= frames % 3  # MAGNeT cuts to whole spans
    assert abs(len(wav) / sr - frames / g.frame_rate) < 0.05
    assert np.abs(wav).max() > 0
    (rec,) = read_log(out)
    assert rec["prompt"] == "lofi piano" and rec["seed"] == 0 and rec["sample_seed"] == derive_seed(0, "p000")
    assert rec["time_per_sample_s"] > 0 and rec["settings"]["model"] == model and rec["settings"]["duration"] == 1.0
    assert rec["decoding_steps"] == (50 if model.startswith("magnet") else frames + 3)
    m = Manifest.read(out / "manifest.jsonl")
    assert m.ids() == ["p000"] and m[0].caption == "lofi piano" and Path(m[0].audio_path).is_file()


def test_decoding_knobs_reach_the_model_and_are_logged(tmp_path, codec):
    out = tmp_path / "o"
    res = invoke(["generate", "-m", "magnet-tiny", "-p", "jazz", "-d", "0.5", "-o", str(out), "--decoding-steps",
                  "3,2,1,1", "--span-scoring", "prod", "--span-arrangement", "stride1", "--temperature", "2",
                  "--top-k", "20", "--top-p", "0", "--max-cfg-coef", "5", "--min-cfg-coef", "2", "--no-anneal-temp"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    (rec,) = read_log(out)
    d = rec["settings"]["decoding"]
    assert d == {"decoding_steps": [3, 2, 1, 1], "temperature": 2.0, "top_k": 20, "top_p": 0.0, "max_cfg_coef": 5.0,
                 "min_cfg_coef": 2.0, "anneal_temp": False, "span_scoring": "prod", "span_arrangement": "stride1",
                 "use_sampling": True}
    assert rec["decoding_steps"] == 7 and rec["forward_passes"] == 7
    res = invoke(["generate", "-m", "magnet-tiny", "-p", "jazz", "-d", "0.5", "-o", str(tmp_path / "x"),
                  "--cfg-coef", "3"])
    assert isinstance(res.exception, MagnetEvalError) and "cfg_coef" in str(res.exception)


def test_resume_skips_finished_clips_and_is_deterministic(tmp_path, codec):
    prompts = Manifest([ManifestEntry(id=f"c{i}", caption=f"prompt number {i}") for i in range(5)])
    mpath = prompts.write(tmp_path / "prompts.jsonl")
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    args = ["generate", "-m", "musicgen-tiny", "-p", str(mpath), "-d", "0.4", "-b", "2", "--seed", "3"]
    assert invoke(args + ["-o", str(fresh)]).exit_code == 0
    assert invoke(args + ["-o", str(out)]).exit_code == 0
    for i in range(5):  # same settings, same audio
        assert np.array_equal(sf.read(out / f"c{i}.wav")[0], sf.read(fresh / f"c{i}.wav")[0])
    # simulate a kill: the last clip's wav is gone and its log line half-written; c3 was never logged
    lines = (out / "log.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["id"] not in ("c3", "c4")]
    (out / "log.jsonl").write_text("\n".join(kept) + "\n" + lines[-1][:20])
    (out / "c4.wav").unlink()
    mtimes = {i: (out / f"c{i}.wav").stat().st_mtime_ns for i in range(4)}
    res = invoke([a if a != "2" else "1" for a in args] + ["-o", str(out)])  # resuming with another batch size
    assert res.exit_code == 0, res.output
    assert all((out / f"c{i}.wav").stat().st_mtime_ns == mtimes[i] for i in range(3))  # not redone
    assert (out / "c3.wav").stat().st_mtime_ns != mtimes[3]  # not in the log: redone
    ids = [json.loads(ln)["id"] for ln in (out / "log.jsonl").read_text().splitlines() if ln.startswith("{\"id")
           and ln.endswith("}")]
    assert sorted(set(ids)) == [f"c{i}" for i in range(5)]
    for i in range(5):  # the resumed clips equal the uninterrupted run's, byte for byte (CPU float32:
        # a clip's audio does not depend on its batch, so c3 and c4, now generated alone, are unchanged)
        assert (out / f"c{i}.wav").read_bytes() == (fresh / f"c{i}.wav").read_bytes(), i
    assert Manifest.read(out / "manifest.jsonl").ids() == [f"c{i}" for i in range(5)]
    # other settings in the same folder are refused, --overwrite starts again
    res = invoke(args[:-1] + ["4", "-o", str(out)])
    assert isinstance(res.exception, MagnetEvalError) and "other settings" in str(res.exception)
    assert invoke(args[:-1] + ["4", "-o", str(out), "--overwrite"]).exit_code == 0
    assert all(r["seed"] == 4 for r in read_log(out))


def test_generator_api_seeds_and_batching(codec):
    g = load_generator("magnet-tiny")
    assert isinstance(g, Generator) and g.kind == "magnet" and g.n_params > 0
    codes, wav, sr = g.generate(["a", "b", "c"], duration=0.3, seed=1, batch_size=3, decoding_steps=[2, 1, 1, 1])
    assert codes.shape[:2] == (3, 4) and wav.shape[0] == 3 and wav.dtype == np.float32 and sr == g.sample_rate
    assert g.last_stats["decoding_steps"] == 5 and g.last_stats["forward_passes"] == 5
    codes2, _, _ = g.generate(["a", "b", "c"], duration=0.3, seed=1, batch_size=2, decoding_steps=[2, 1, 1, 1])
    assert torch.equal(codes, codes2)  # per-sample RNGs: the batching does not change the tokens
    assert g.last_stats["decoding_steps"] == 10 and g.last_stats["batches"] == 2
    codes3, _, _ = g.generate(["a", "b", "c"], duration=0.3, seed=2, decoding_steps=[2, 1, 1, 1])
    assert not torch.equal(codes, codes3)
    with pytest.raises(MagnetEvalError):
        g.generate(["a"], duration=0.3, decoding_steps=[2, 1])
    with pytest.raises(MagnetEvalError):
        g.generate(["a"], duration=0.3, bogus=1)


def test_bad_specs_say_what_to_do(tmp_path, monkeypatch, codec):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError, match="state_dict.bin"):
        load_generator("facebook/musicgen-small")
    with pytest.raises(MagnetEvalError, match="preset"):
        load_generator("magnet-huge")
    res = invoke(["generate", "-m", "magnet-tiny", "-p", str(tmp_path / "missing.jsonl") + "x", "-o",
                  str(tmp_path / "o"), "-d", "0.2"])  # not a file: taken as a literal prompt
    assert res.exit_code == 0
    empty = Manifest([ManifestEntry(id="a", caption="")]).write(tmp_path / "empty.jsonl")
    res = invoke(["generate", "-m", "magnet-tiny", "-p", str(empty), "-o", str(tmp_path / "e")])
    assert isinstance(res.exception, MagnetEvalError) and "no caption" in str(res.exception)


def test_checkpoint_folder_with_audiocraft_package(tmp_path, codec):
    from test_checkpoints import write_package

    folder = tmp_path / "ckpt"
    write_package(folder / "state_dict.bin", "musicgen", dim=32, heads=4, layers=1)
    if HAVE_CODEC:  # the codec beside the LM, as in a hub snapshot (here the tiny one: 4 x 2048 too)
        from magnet_eval.models.codec import build_codec, save_codec

        with pytest.raises(MissingWeightsError):  # without it: the 32 kHz codec of xp.cfg, not on this machine
            load_generator(folder, text_encoder="random")
        save_codec(build_codec("tiny"), folder / "compression_state_dict.bin")
    g = load_generator(folder, text_encoder="random")
    assert g.kind == "musicgen" and g.lm.cfg.dim == 32
    if HAVE_CODEC:
        assert g.codec.config.name == "tiny"
    codes, wav, sr = g.generate(["a drum loop"], duration=0.2, seed=0)
    assert codes.shape == (1, 4, 10) and wav.shape[0] == 1


def test_generation_beyond_free_memory_is_refused_before_it_starts(monkeypatch):
    """The duration bound from memory: MAGNeT's attention grows with frames^2; refuse what cannot fit."""
    import magnet_eval.validate as validate
    from magnet_eval.errors import InvalidOptionError
    from magnet_eval.models.generator import load_generator

    gen = load_generator("magnet-tiny")
    need_10s = gen.peak_memory_bytes(2, gen.frames_for(10.0))
    assert gen.peak_memory_bytes(2, gen.frames_for(20.0)) == 4 * need_10s  # quadratic in frames
    monkeypatch.setattr(validate, "available_memory_bytes", lambda device="cpu": need_10s - 1)
    calls = []
    monkeypatch.setattr(gen.lm, "generate", lambda *a, **k: calls.append(1))
    with pytest.raises(InvalidOptionError, match=r"--duration 10 s at --batch-size 2 needs about .* lower --duration"):
        gen.generate(["a", "b"], duration=10.0)
    assert calls == []  # nothing was generated
