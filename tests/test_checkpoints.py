"""audiocraft export import: the real audiocraft fixtures, fabricated packages, refusals, round trip, lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from magnet_eval.errors import CheckpointError, MissingWeightsError
from magnet_eval.models.checkpoints import (check_state_dict, config_from_xp, load_lm, resolve_lm_checkpoint,
                                            save_lm)
from magnet_eval.models.build import build_lm
from magnet_eval.models.lm import LMConfig
from magnet_eval.models.magnet import MagnetDecoding, MagnetLM
from magnet_eval.models.musicgen import MusicGenDecoding, MusicGenLM
from magnet_eval.models.sampling import make_generators

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "audiocraft-fixtures"
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "reference_logits_shared.pt").is_file(),
                                    reason=f"audiocraft fixtures not found at {FIXTURES}")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- fabricated audiocraft packages (key names written out here, independently of our model) ----
def audiocraft_state(dim: int, layers: int, n_q: int = 4, card: int = 2048, text_dim: int = 768,
                     hidden: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(dim * 100 + layers)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.05  # noqa: E731
    sd = {
        "condition_provider.conditioners.description.output_proj.weight": r(dim, text_dim),
        "condition_provider.conditioners.description.output_proj.bias": r(dim),
    }
    for k in range(n_q):
        sd[f"emb.{k}.weight"] = r(card + 1, dim)
    for i in range(layers):
        p = f"transformer.layers.{i}."
        sd[p + "self_attn.in_proj_weight"] = r(3 * dim, dim)
        sd[p + "self_attn.out_proj.weight"] = r(dim, dim)
        sd[p + "linear1.weight"] = r(hidden * dim, dim)
        sd[p + "linear2.weight"] = r(dim, hidden * dim)
        for n in ("norm1", "norm2", "norm_cross"):
            sd[p + n + ".weight"] = 1 + r(dim)
            sd[p + n + ".bias"] = r(dim)
        sd[p + "cross_attention.in_proj_weight"] = r(3 * dim, dim)
        sd[p + "cross_attention.out_proj.weight"] = r(dim, dim)
    sd["out_norm.weight"] = 1 + r(dim)
    sd["out_norm.bias"] = r(dim)
    for k in range(n_q):
        sd[f"linears.{k}.weight"] = r(card, dim)
    return sd


def audiocraft_xp_cfg(kind: str, dim: int, heads: int, layers: int, card: int = 2048, **lm_overrides) -> str:
    """An xp.cfg shaped like audiocraft's (the parts the import reads, with audiocraft's values)."""
    from omegaconf import OmegaConf

    magnet = kind == "magnet"
    lm = {"dim": dim, "num_heads": heads, "num_layers": layers, "hidden_scale": 4, "n_q": 4, "card": card,
          "dropout": 0.0, "activation": "gelu", "norm_first": True, "bias_ff": False, "bias_attn": False,
          "bias_proj": False, "past_context": None, "causal": not magnet, "custom": False,
          "memory_efficient": True, "layer_scale": None, "positional_embedding": "sin", "xpos": False,
          "norm": "layer_norm", "cross_attention": False, "qk_layer_norm": False, "qk_layer_norm_cross": False,
          "kv_repeat": 1, "two_step_cfg": False}
    if magnet:
        lm.update(subcodes_context=5, compression_model_framerate=50, segment_duration=10, span_len=3)
    lm.update(lm_overrides)
    tree = {"solver": "magnet" if magnet else "musicgen", "sample_rate": 32000, "channels": 1,
            "compression_model_checkpoint": "//pretrained/facebook/encodec_32khz",
            "dataset": {"segment_duration": 10, "batch_size": 192},
            "lm_model": "transformer_lm_magnet" if magnet else "transformer_lm",
            "codebooks_pattern": {"modeling": "parallel" if magnet else "delay",
                                  "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0, "empty_initial": 0}},
            "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [],
                      "prepend": [], "cross": ["description"], "input_interpolate": []},
            "conditioners": {"description": {"model": "t5", "t5": {"name": "t5-base", "finetune": False}}},
            "transformer_lm": lm}
    if magnet:
        tree["masking"] = {"span_len": 3}
    return OmegaConf.to_yaml(OmegaConf.create(tree))


def write_package(path: Path, kind: str, dim: int = 32, heads: int = 4, layers: int = 2, card: int = 2048,
                  state: dict | None = None, **lm_overrides) -> Path:
    pkg = {"best_state": state if state is not None else audiocraft_state(dim, layers, card=card),
           "xp.cfg": audiocraft_xp_cfg(kind, dim, heads, layers, card=card, **lm_overrides),
           "version": "1.3.0", "exported": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pkg, path)
    return path


# ---- the real audiocraft exports ------------------------------------------------------------------
TOL = 1e-5  # the fixtures' README: a faithful fp32 implementation agrees to about 1e-5


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@needs_fixtures
def test_default_magnet_matches_released_attention_band_at_every_stage():
    """reference_logits_shared.pt: released models' path (stages > 0 attend within |i - j| <= subcodes_context)."""
    ref = torch.load(FIXTURES / "reference_logits_shared.pt", weights_only=True)
    other = torch.load(FIXTURES / "reference_logits_shared_torch_backend.pt", weights_only=True)
    cond = (ref["cond"], ref["cond_mask"])
    magnet = load_lm(FIXTURES / "audiocraft_magnet_tiny_state_dict.bin")
    assert isinstance(magnet, MagnetLM) and magnet.cfg.subcodes_context == 5 and magnet.cfg.span_len == 3
    assert magnet.cfg.stage_attention == "restricted"
    with torch.no_grad():
        for stage in range(4):
            codes = ref["magnet"][stage]["codes_in"]
            assert torch.equal(codes, other["magnet"][stage]["codes_in"])
            want = ref["magnet"][stage]["logits"]
            assert _max_diff(magnet(codes, cond, stage=stage), want) < TOL, stage
            if stage > 0:  # the two references really differ there, so the check above discriminates
                assert _max_diff(other["magnet"][stage]["logits"], want) > 1e-3, stage


@needs_fixtures
def test_audiocraft_sdpa_mode_matches_torch_backend_logits():
    """reference_logits_shared_torch_backend.pt: audiocraft's torch backend (SDPA is_causal for stages > 0)."""
    ref = torch.load(FIXTURES / "reference_logits_shared_torch_backend.pt", weights_only=True)
    cond = (ref["cond"], ref["cond_mask"])
    as_torch_backend = load_lm(FIXTURES / "audiocraft_magnet_tiny_state_dict.bin", stage_attention="audiocraft-sdpa")
    with torch.no_grad():
        for stage in range(4):
            got = as_torch_backend(ref["magnet"][stage]["codes_in"], cond, stage=stage)
            assert _max_diff(got, ref["magnet"][stage]["logits"]) < TOL, stage


@needs_fixtures
def test_musicgen_matches_reference_logits():
    for name in ("reference_logits_shared.pt", "reference_logits_shared_torch_backend.pt"):
        ref = torch.load(FIXTURES / name, weights_only=True)
        musicgen = load_lm(FIXTURES / "audiocraft_musicgen_tiny_state_dict.bin")
        assert isinstance(musicgen, MusicGenLM) and musicgen.cfg.causal and musicgen.cfg.pattern == "delay"
        with torch.no_grad():
            logits, mask = musicgen.compute_predictions(ref["musicgen"]["codes_in"], (ref["cond"], ref["cond_mask"]))
        assert torch.equal(mask, ref["musicgen"]["mask"])
        want = ref["musicgen"]["logits"]
        assert _max_diff(logits[mask], want[mask]) < TOL, name
        assert torch.isnan(logits[~mask]).all() and torch.isnan(want[~mask]).all()


@needs_fixtures
def test_fixture_keys_equal_our_model_keys_and_round_trip(tmp_path):
    for name in ("audiocraft_magnet_tiny_state_dict.bin", "audiocraft_musicgen_tiny_state_dict.bin"):
        pkg = torch.load(FIXTURES / name, weights_only=True)
        lm = load_lm(FIXTURES / name)
        assert set(lm.state_dict()) == set(pkg["best_state"])
        saved = save_lm(lm, tmp_path / name.split("_")[1])
        back = load_lm(saved)
        assert back.cfg == lm.cfg
        for k, v in pkg["best_state"].items():
            assert torch.equal(back.state_dict()[k], v), k


# ---- fabricated packages ---------------------------------------------------------------------------
def test_fabricated_magnet_and_musicgen_packages_load_and_generate(tmp_path):
    for kind in ("magnet", "musicgen"):
        path = write_package(tmp_path / kind / "state_dict.bin", kind, dim=32, heads=4, layers=2, card=2048)
        lm = load_lm(path)
        assert lm.cfg.kind == kind and lm.cfg.dim == 32 and lm.cfg.num_layers == 2 and lm.cfg.text_dim == 768
        assert lm.cfg.text_encoder == "t5-base" and lm.cfg.codec == "encodec_32khz"
        sd = torch.load(path, weights_only=True)["best_state"]
        for k, v in sd.items():
            assert torch.equal(lm.state_dict()[k], v)
        condition = (torch.randn(2, 3, 32), torch.ones(2, 3))
        dec = MagnetDecoding(decoding_steps=[3, 2, 2, 2]) if kind == "magnet" else MusicGenDecoding()
        codes = lm.generate(condition, 2, 12, dec, generators=make_generators([1, 2]))
        assert codes.shape == (2, 4, 12) and codes.min() >= 0 and codes.max() < 2048


def test_missing_and_misshaped_keys_are_listed(tmp_path):
    state = audiocraft_state(32, 2)
    del state["transformer.layers.1.linear2.weight"]
    state["linears.2.weight"] = torch.zeros(2048, 16)
    state["transformer.layers.0.self_attn.in_proj_bias"] = torch.zeros(96)
    path = write_package(tmp_path / "bad.bin", "magnet", state=state)
    with pytest.raises(CheckpointError) as err:
        load_lm(path)
    msg = str(err.value)
    assert "missing keys (1)" in msg and "transformer.layers.1.linear2.weight" in msg
    assert "unexpected keys (1)" in msg and "transformer.layers.0.self_attn.in_proj_bias" in msg
    assert "shape mismatches (1)" in msg and "linears.2.weight: checkpoint (2048, 16) vs model (2048, 32)" in msg


def test_unsupported_options_and_non_packages_are_refused(tmp_path):
    path = write_package(tmp_path / "bias.bin", "musicgen", bias_ff=True, positional_embedding="rope")
    with pytest.raises(CheckpointError) as err:
        load_lm(path)
    assert "bias_ff" in str(err.value) and "positional_embedding" in str(err.value)
    torch.save({"model": {}}, tmp_path / "plain.bin")
    with pytest.raises(CheckpointError, match="not an audiocraft export"):
        load_lm(tmp_path / "plain.bin")
    (tmp_path / "junk.bin").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_lm(tmp_path / "junk.bin")


def test_config_from_xp_reads_architecture():
    cfg = config_from_xp(audiocraft_xp_cfg("magnet", 48, 6, 3, card=1024))
    assert (cfg.kind, cfg.dim, cfg.num_heads, cfg.num_layers, cfg.card) == ("magnet", 48, 6, 3, 1024)
    assert cfg.pattern == "parallel" and not cfg.causal and cfg.subcodes_context == 5 and cfg.cross_attention
    cfg = config_from_xp(audiocraft_xp_cfg("musicgen", 48, 6, 3))
    assert cfg.kind == "musicgen" and cfg.causal and cfg.pattern == "delay" and cfg.delays == [0, 1, 2, 3]
    assert cfg.subcodes_context is None


def test_save_load_round_trip_of_our_model(tmp_path):
    cfg = LMConfig(kind="magnet", dim=32, num_heads=4, num_layers=2, card=64, text_encoder="minilm", text_dim=384,
                   codec="tiny", span_len=3, segment_duration=5.0)
    lm = build_lm(cfg).eval()
    path = save_lm(lm, tmp_path / "out")
    assert path.name == "state_dict.bin"
    pkg = torch.load(path, weights_only=True)
    assert pkg["exported"] is True and isinstance(pkg["xp.cfg"], str) and "transformer_lm" in pkg["xp.cfg"]
    back = load_lm(path)
    assert back.cfg == cfg
    codes = torch.randint(0, 65, (1, 4, 10))
    with torch.no_grad():
        assert torch.equal(back(codes, stage=2), lm(codes, stage=2))
    check_state_dict(back, lm.state_dict())


def test_hub_names_resolve_from_the_hf_cache_or_say_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError) as err:
        resolve_lm_checkpoint("facebook/magnet-small-10secs")
    msg = str(err.value)
    assert "state_dict.bin" in msg and "models--facebook--magnet-small-10secs" in msg
    snap = tmp_path / "hf" / "hub" / "models--facebook--magnet-small-10secs" / "snapshots" / "abc123"
    write_package(snap / "state_dict.bin", "magnet")
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc123")
    assert resolve_lm_checkpoint("facebook/magnet-small-10secs") == snap / "state_dict.bin"
    assert resolve_lm_checkpoint(snap) == snap / "state_dict.bin"  # a folder
    with pytest.raises(CheckpointError):
        resolve_lm_checkpoint(tmp_path / "nothing-here")


def test_save_lm_unwraps_training_wrappers_and_keeps_the_text_projection(tmp_path):
    cfg = LMConfig(kind="musicgen", dim=32, num_heads=4, num_layers=1, card=64, causal=True, pattern="delay",
                   subcodes_context=None, text_encoder="random", text_dim=24)
    lm = build_lm(cfg)

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.lm = inner

    path = save_lm(Wrapper(lm), tmp_path / "w" / "state_dict.bin")
    back = load_lm(path)
    assert set(back.state_dict()) == set(lm.state_dict())
    proj = back.text_conditioner.output_proj.weight.clone()
    back.set_text_encoder("random")  # swapping the frozen encoder keeps the learned projection
    assert torch.equal(back.text_conditioner.output_proj.weight, proj)
    with pytest.raises(ValueError):
        back.set_text_encoder("minilm")  # 384-d, the projection takes 24-d
    with pytest.raises(CheckpointError):
        save_lm(torch.nn.Linear(2, 2), tmp_path / "x")
