"""The system registry (issue 15.1): which family claims a spec, what a request needs, and that a
family registered once is found by every caller; the audio-in families through the one pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from magnet_eval.errors import InvalidOptionError, MagnetEvalError
from magnet_eval.systems import registry
from magnet_eval.systems.registry import Request, SystemFamily, build_system, family_for, families


def test_every_family_is_registered_and_claims_its_presets():
    names = [f.name for f in families()]
    assert names[:4] == ["magnet", "musicgen", "vampnet", "stemgen"]
    for spec, fam in [("magnet-tiny", "magnet"), ("musicgen-small", "musicgen"), ("vampnet-tiny", "vampnet"),
                      ("stemgen-tiny", "stemgen"), ("facebook/magnet-small-10secs", "magnet"),
                      ("facebook/audio-magnet-medium", "magnet"), ("facebook/musicgen-small", "musicgen")]:
        assert family_for(spec).name == fam, spec
    with pytest.raises(MagnetEvalError, match="unknown model 'magnet-huge'.*preset"):
        family_for("magnet-huge")


def test_checkpoints_are_claimed_by_the_kind_they_record(tmp_path):
    import torch

    from test_checkpoints import write_package

    from magnet_eval.models.stemgen import build_stemgen, save_stemgen

    write_package(tmp_path / "mg" / "state_dict.bin", "musicgen", dim=32, heads=4, layers=1)
    write_package(tmp_path / "mn" / "state_dict.bin", "magnet", dim=32, heads=4, layers=1)
    assert family_for(str(tmp_path / "mg")).name == "musicgen"  # a folder with state_dict.bin
    assert family_for(str(tmp_path / "mn" / "state_dict.bin")).name == "magnet"
    lm, _ = build_stemgen("stemgen-tiny")
    save_stemgen(lm, tmp_path / "stem.pt")
    assert family_for(str(tmp_path / "stem.pt")).name == "stemgen"
    torch.save({"kind": "vampnet"}, tmp_path / "vn.pt")
    assert family_for(str(tmp_path / "vn.pt")).name == "vampnet"
    # a file that records nothing goes to the LM loader, whose error names the problem
    (tmp_path / "junk.bin").write_bytes(b"not a torch file")
    assert family_for(str(tmp_path / "junk.bin")).name == registry.FALLBACK_FAMILY


def test_requests_are_validated_against_what_the_family_needs():
    family_for("stemgen-tiny").validate([Request("a", audio="x.wav", instrument="bass")])
    with pytest.raises(InvalidOptionError, match="request 'b': stemgen needs instrument"):
        family_for("stemgen-tiny").validate([Request("b", audio="x.wav")])
    with pytest.raises(InvalidOptionError, match="request 'c': magnet needs text"):
        family_for("magnet-tiny").validate([Request("c", audio="x.wav")])


def test_a_new_family_is_one_registration(monkeypatch):
    """Registering an entry is all it takes for build_system (and so generate, compare, reproduce) to find it."""
    built = []

    class Echo:
        family, name, sample_rate = "echo", "echo", 8000

        def settings(self, **decoding):
            return {"decoding": decoding}

        def generate(self, requests, seeds, duration, **decoding):
            return [np.full(int(duration * 8000), s % 7 / 10, np.float32) for s in seeds], 8000, {}

    fam = SystemFamily("echo", needs=("text",), build=lambda spec, device, dtype, **o: built.append(spec) or Echo(),
                       presets=("echo-1",))
    monkeypatch.setitem(registry._FAMILIES, "echo", fam)
    assert isinstance(build_system("echo-1"), Echo) and built == ["echo-1"]
    with pytest.raises(InvalidOptionError, match="cannot time the echo family"):
        registry.build_timed("echo-1")
    assert dataclasses.is_dataclass(Request) and "instrument" in registry.REQUEST_FIELDS


def test_echo_family_runs_through_the_pipeline_with_per_clip_seeds(monkeypatch, tmp_path):
    from magnet_eval.models.generator import derive_seed
    from magnet_eval.pipeline import generate

    class Echo:
        family, name, sample_rate = "echo", "echo", 8000

        def settings(self, **decoding):
            return {"decoding": decoding}

        def generate(self, requests, seeds, duration, **decoding):
            return [np.full(int(duration * 8000), (s % 1000) / 1000, np.float32) for s in seeds], 8000, {}

    monkeypatch.setitem(registry._FAMILIES, "echo", SystemFamily("echo", needs=("text",),
                        build=lambda spec, device, dtype, **o: Echo(), presets=("echo-1",)))
    (tmp_path / "p.txt").write_text("one\ntwo\nthree\n")
    generate("echo-1", str(tmp_path / "p.txt"), tmp_path / "out", duration=0.5, batch_size=2, seed=9)
    from magnet_eval.manifest import Manifest

    for e in Manifest.read(tmp_path / "out" / "manifest.jsonl"):
        wav, sr = sf.read(e.audio_path, dtype="float32")
        assert sr == 8000 and abs(float(wav[0]) - (derive_seed(9, e.id) % 1000) / 1000) < 1e-4


def test_stemgen_through_the_pipeline_makes_the_stem_that_stem_makes(tmp_path):
    """The registry's StemGen system and `magnet-eval stem` (stemgen_run) share one clip function and seed rule."""
    from magnet_eval.audio import save_audio
    from magnet_eval.manifest import Manifest, ManifestEntry
    from magnet_eval.pipeline import generate
    from magnet_eval.stemgen_run import run_stem

    sr = 24000
    t = np.arange(sr) / sr
    entries = [ManifestEntry(f"c{i}", None, str(save_audio(tmp_path / f"c{i}.wav",
                             (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), sr)), 1.0,
                             {"instrument": "bass"}) for i in range(2)]
    ctx = Manifest(entries).write(tmp_path / "ctx.jsonl")
    generate("stemgen-tiny", str(ctx), tmp_path / "pipe", duration=1.0, batch_size=2, seed=4,
             decoding_steps=[2, 1, 1, 1])
    run_stem("stemgen-tiny", ctx, tmp_path / "stem", seed=4, duration=1.0, decoding_steps=[2, 1, 1, 1])
    for i in range(2):
        a, _ = sf.read(str(tmp_path / "pipe" / f"c{i}.wav"), dtype="float32")
        b, _ = sf.read(str(tmp_path / "stem" / f"c{i}_bass.wav"), dtype="float32")
        assert a.shape == b.shape and np.array_equal(a, b)
