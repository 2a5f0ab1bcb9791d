"""VampNet models: shapes, the reference's layout, decoding (kept tokens, seeds), released-checkpoint loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from magnet_eval.errors import CheckpointError, MagnetEvalError, MissingWeightsError
from magnet_eval.models.vampnet import (VampDecoding, VampNet, VampNetConfig, VampNetModel, build_vampnet,
                                        mask_schedule, sample_tokens, typical_filter)
from magnet_eval.models.sampling import make_generators
from magnet_eval.modules.relative_transformer import relative_position_bucket
from magnet_eval.prompts import masks as M

FAST = VampDecoding(steps=4)


def small_cfg(**kw) -> VampNetConfig:
    base = dict(n_codebooks=2, vocab_size=32, latent_dim=4, embedding_dim=16, n_heads=2, n_layers=2, dropout=0.0,
                frame_rate=50.0, sample_rate=32000, chunk_duration=0.4)
    return VampNetConfig(**{**base, **kw})


def small_pair(seed: int = 0) -> VampNet:
    torch.manual_seed(seed)
    coarse = VampNetModel(small_cfg()).eval()
    c2f = VampNetModel(small_cfg(n_codebooks=4, n_conditioning_codebooks=2, chunk_duration=0.2)).eval()
    return VampNet(coarse, c2f)


def tokens(B: int = 2, K: int = 4, T: int = 30, V: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, K, T), generator=torch.Generator().manual_seed(seed))


def test_tiny_preset_on_tiny_codec_shapes() -> None:
    from magnet_eval.models.codec import load_codec

    codec = load_codec("tiny", pretrained=False)
    vn = build_vampnet("vampnet-tiny", codec)
    assert (vn.n_coarse, vn.n_codebooks) == (2, 4)
    assert vn.c2f.cfg.n_conditioning_codebooks == 2 and vn.coarse.cfg.vocab_size == codec.card
    z = torch.randint(0, codec.card, (2, 4, 12))
    assert vn.coarse(z[:, :2]).shape == (2, 2, 12, codec.card)
    assert vn.c2f(z).shape == (2, 2, 12, codec.card)  # predicts only the 2 fine codebooks
    # the embedding looks tokens up in the codec's own vectors (and the MASK vector for id = card)
    lat = vn.coarse.embedding.latents(z[:, :2])
    book1 = codec.quantizer.vq.layers[1]._codebook.embed
    book1 = book1 / book1.pow(2).mean().sqrt()  # vampnet-tiny scales each codebook to unit RMS (normalize_codebooks)
    assert torch.allclose(lat[0, 64:128, 5], book1[z[0, 1, 5]], rtol=1e-4, atol=1e-5)
    masked = z[:, :2].clone()
    masked[0, 0, 3] = codec.card
    assert torch.allclose(vn.coarse.embedding.latents(masked)[0, :64, 3], vn.coarse.embedding.special["MASK"][0])
    # same weights every time a preset is built
    vn2 = build_vampnet("vampnet-tiny", codec)
    assert torch.equal(vn.coarse.classifier.weight, vn2.coarse.classifier.weight)


def test_paper_preset_sizes() -> None:
    from magnet_eval.models.vampnet import preset_configs

    coarse, c2f = preset_configs("vampnet-paper")
    assert (coarse.n_codebooks, coarse.n_layers, coarse.embedding_dim, coarse.n_heads) == (4, 20, 1280, 20)
    assert (c2f.n_codebooks, c2f.n_conditioning_codebooks, c2f.n_layers) == (14, 4, 16)
    with pytest.raises(MagnetEvalError, match="unknown VampNet preset"):
        preset_configs("vampnet-huge")


def test_relative_position_buckets() -> None:
    rel = torch.tensor([0, -1, -7, 1, 7, 8, -8, 200, -200])
    # 16 buckets per side: 8 exact, 8 log-spaced up to distance 128; positive offsets in the upper half
    assert relative_position_bucket(rel).tolist() == [0, 1, 7, 17, 23, 24, 8, 31, 15]


def test_mask_schedule_and_typical_filter() -> None:
    assert float(mask_schedule(0.0)) == 1.0 and float(mask_schedule(1.0)) == pytest.approx(1e-10)
    assert float(mask_schedule(0.5)) == pytest.approx(math.cos(math.pi / 4))
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    # surprisal - entropy (bits): 0.75, 0.25, 1.25, 1.25 -> typical order 1, 0, 2, 3
    kept = lambda mass: torch.isfinite(typical_filter(logits, mass, 1)).nonzero()[:, 1].tolist()
    assert kept(0.2) == [1] and kept(0.5) == [0, 1] and kept(0.99) == [0, 1, 2, 3]
    assert torch.isfinite(typical_filter(logits, 0.2, 3)).sum() == 3  # min tokens


def test_vamp_keeps_prompt_and_is_seeded() -> None:
    vn = small_pair()
    z = tokens()
    keep = M.keep_or(M.periodic(z, 3), M.lowest_codebooks(z, 1))
    out = vn.vamp(z, keep, [5, 6], coarse=FAST, c2f=FAST)
    assert out.shape == z.shape
    assert torch.equal(out[keep], z[keep])  # kept tokens unchanged
    assert (out[~keep] != z[~keep]).float().mean() > 0.5  # the rest regenerated
    assert int(out.max()) < 32  # no mask token left
    assert torch.equal(out, vn.vamp(z, keep, [5, 6], coarse=FAST, c2f=FAST))
    assert not torch.equal(out, vn.vamp(z, keep, [7, 6], coarse=FAST, c2f=FAST))
    # a row's output depends on its own seed and input only, not on the batch around it
    assert torch.equal(out[1:], vn.vamp(z[1:], keep[1:], [6], coarse=FAST, c2f=FAST))
    # periodic:1 keeps everything: vamp returns the input unchanged
    assert torch.equal(vn.vamp(z, M.periodic(z, 1), [1, 2]), z)


def test_c2f_never_changes_conditioning_codebooks() -> None:
    vn = small_pair()
    z = tokens()
    out = sample_tokens(vn.c2f, z, M.keep_none(z), FAST, make_generators([1, 2]))
    assert torch.equal(out[:, :2], z[:, :2])
    assert (out[:, 2:] != z[:, 2:]).any()


def test_decoding_unmasks_on_the_cosine_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    vn = small_pair()
    z = tokens(B=1, K=2, T=20)
    seen: list[int] = []
    real = VampNetModel.forward

    def spy(self, x):  # count mask tokens fed at each step
        seen.append(int((x == self.mask_token).sum()))
        return real(self, x)

    monkeypatch.setattr(VampNetModel, "forward", spy)
    sample_tokens(vn.coarse, z, M.keep_none(z), VampDecoding(steps=5), make_generators([0]))
    n0 = 40
    expected = [n0] + [max(1, math.floor(math.cos((i + 1) / 5 * math.pi / 2) * n0)) for i in range(4)]
    assert seen == expected


# ---- released-checkpoint layout ------------------------------------------------------------------


def reference_state(n_codebooks: int, n_cond: int, vocab: int = 32, latent: int = 4, dim: int = 16, heads: int = 2,
                    layers: int = 2, lora: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict named and shaped exactly as vampnet/modules/transformer.py's VampNet (d_cond 0, lora r 8)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.1
    P = n_codebooks - n_cond
    sd = {"embedding.special.MASK": r(n_codebooks, latent),
          "embedding.out_proj.weight": r(dim, n_codebooks * latent, 1), "embedding.out_proj.bias": r(dim)}
    for i in range(layers):
        pre = f"transformer.layers.{i}."
        sd[pre + "norm_1.weight"] = 1 + r(dim)
        for name in ("w_qs", "w_ks", "w_vs", "fc"):
            sd[pre + f"self_attn.{name}.weight"] = r(dim, dim)
            if lora and name != "w_ks":  # the reference's w_ks is a plain nn.Linear
                sd[pre + f"self_attn.{name}.lora_A"] = r(8, dim)
                sd[pre + f"self_attn.{name}.lora_B"] = r(dim, 8)
        if i == 0:
            sd[pre + "self_attn.relative_attention_bias.weight"] = r(32, heads)
        sd[pre + "norm_3.weight"] = 1 + r(dim)
        sd[pre + "feed_forward.w_1.weight"] = r(4 * dim, dim)
        sd[pre + "feed_forward.w_2.weight"] = r(dim, 2 * dim)
    sd["transformer.norm.weight"] = 1 + r(dim)
    sd["classifier.layers.0.weight_g"] = 1 + r(vocab * P, 1, 1).abs()
    sd["classifier.layers.0.weight_v"] = r(vocab * P, dim, 1)
    sd["classifier.layers.0.bias"] = r(vocab * P)
    return sd


def write_reference_files(folder: Path, vocab: int = 32, latent: int = 4) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    kw = dict(n_heads=2, n_layers=2, vocab_size=vocab, latent_dim=latent, embedding_dim=16, flash_attn=False,
              noise_mode="mask", dropout=0.1, r_cond_dim=0)
    coarse = reference_state(2, 0)
    c2f = reference_state(4, 2, seed=1)
    torch.save({"state_dict": coarse, "metadata": {"kwargs": {**kw, "n_codebooks": 2, "n_conditioning_codebooks": 0}}},
               folder / "coarse.pth")
    torch.save({"state_dict": c2f, "metadata": {"kwargs": {**kw, "n_codebooks": 4, "n_conditioning_codebooks": 2}}},
               folder / "c2f.pth")
    books = {f"quantizer.quantizers.{i}.codebook.weight": torch.randn(vocab, latent) for i in range(4)}
    codec = {**books, "quantizer.quantizers.0.in_proj.bias": torch.zeros(latent)}
    torch.save({"state_dict": codec, "metadata": {"kwargs": {"n_codebooks": 4, "codebook_size": vocab}}},
               folder / "codec.pth")
    return {"coarse": coarse, "c2f": c2f, "codec": codec}


def test_load_released_layout(tmp_path: Path) -> None:
    from magnet_eval.models.vampnet_weights import load_released_vampnet

    ref = write_reference_files(tmp_path / "vampnet")
    vn = load_released_vampnet(tmp_path / "vampnet", frame_rate=50.0, sample_rate=32000)
    cfg = vn.c2f.cfg
    assert (cfg.n_codebooks, cfg.n_conditioning_codebooks, cfg.n_layers, cfg.n_heads, cfg.vocab_size) == (4, 2, 2, 2, 32)
    c = ref["coarse"]
    # weight norm folded: w = g * v / ||v||
    v, g = c["classifier.layers.0.weight_v"], c["classifier.layers.0.weight_g"]
    assert torch.allclose(vn.coarse.classifier.weight, g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1), atol=1e-6)
    # LoRA merged: W + B @ A / 8
    pre = "transformer.layers.1.self_attn.w_qs."
    merged = c[pre + "weight"] + c[pre + "lora_B"] @ c[pre + "lora_A"] / 8
    assert torch.allclose(vn.coarse.transformer.layers[1].self_attn.w_qs.weight, merged, atol=1e-6)
    assert torch.equal(vn.coarse.transformer.layers[0].self_attn.w_ks.weight, c["transformer.layers.0.self_attn.w_ks.weight"])
    # codec vectors in the embedding
    assert torch.equal(vn.c2f.embedding.codebooks[3], ref["codec"]["quantizer.quantizers.3.codebook.weight"])
    # output channels are vocabulary-major: channel = token * n_predict + codebook
    m = vn.c2f
    with torch.no_grad():
        m.classifier.weight.zero_()
        m.classifier.bias.copy_(torch.arange(32 * 2, dtype=torch.float32))
    logits = m(tokens(B=1, K=4, T=3))
    assert logits[0, 1, 2, 5] == 5 * 2 + 1 and logits[0, 0, 0, 7] == 7 * 2
    out = vn.vamp(tokens(), M.periodic(tokens(), 2), [0, 1], coarse=FAST, c2f=FAST)
    assert torch.equal(out[:, :, ::2], tokens()[:, :, ::2])


def test_loading_refuses_pickled_classes_and_wrong_layout(tmp_path: Path) -> None:
    from magnet_eval.models.vampnet_weights import load_part

    import argparse

    # a pickled Python object (as a torch.package / whole-model export holds) is refused, not built
    torch.save({"state_dict": {}, "metadata": argparse.Namespace(kwargs={})}, tmp_path / "coarse.pth")
    with pytest.raises(CheckpointError, match="refused to load .*coarse.pth"):
        load_part(tmp_path / "coarse.pth", torch.randn(2, 32, 4))
    sd = reference_state(2, 0)
    del sd["transformer.layers.1.feed_forward.w_2.weight"]
    torch.save({"state_dict": sd, "metadata": {"kwargs": {"vocab_size": 32}}}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="broken.pth.*missing"):
        load_part(tmp_path / "broken.pth", torch.randn(2, 32, 4))
    torch.save({"state_dict": reference_state(2, 0), "metadata": {"kwargs": {"vocab_size": 32, "n_layers": 3}}},
               tmp_path / "liar.pth")
    with pytest.raises(CheckpointError, match="n_layers=3"):
        load_part(tmp_path / "liar.pth", torch.randn(2, 32, 4))


def test_missing_files_name_the_file_and_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from magnet_eval.models.vampnet_weights import find_dac_44khz, load_released_vampnet

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingWeightsError, match=r"codec.pth(.|\n)*Put the file at: .*cache/vampnet/codec.pth"):
        load_released_vampnet()
    write_reference_files(tmp_path / "cache" / "vampnet")
    (tmp_path / "cache" / "vampnet" / "c2f.pth").unlink()
    with pytest.raises(MissingWeightsError, match="c2f.pth"):
        load_released_vampnet()
    assert load_released_vampnet(c2f="").c2f is None  # coarse only, found in the toolkit cache
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(MissingWeightsError, match="weights_44khz_8kbps_0.0.1.pth"):
        find_dac_44khz()


def test_dac_codec_needs_the_package(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    try:
        import dac  # noqa: F401
        pytest.skip("descript-audio-codec is installed")
    except ImportError:
        pass
    from magnet_eval.models.vampnet_weights import load_dac_codec

    write_reference_files(tmp_path)
    with pytest.raises(MagnetEvalError, match="descript-audio-codec"):
        load_dac_codec(tmp_path / "codec.pth")


# ---- magnet-eval vamp ----------------------------------------------------------------------------


def _sine(path: Path, seconds: float = 1.0, sr: int = 32000) -> Path:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return path


def test_vamp_cli_writes_audio_and_log(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from magnet_eval.cli import app

    wav = _sine(tmp_path / "in.wav")
    fast = ["--coarse-steps", "2", "--c2f-steps", "2"]
    res = CliRunner().invoke(app, ["vamp", str(wav), "--prompt", "periodic:1", "--loops", "2", "--seed", "3",
                                   "--out", str(tmp_path / "o"), *fast])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["in_loop.wav", "in_vamp0.wav", "in_vamp1.wav", "log.jsonl"]
    recs = [json.loads(x) for x in (tmp_path / "o" / "log.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in recs] == [3, 4] and recs[0]["prompt"] == ["periodic:1"]
    assert recs[0]["changed_tokens"] == 0  # P = 1 keeps everything: the input tokens come back unchanged
    assert recs[0]["kept_bitrate_bps"] == pytest.approx(4 * 50 * 11)  # 4 codebooks x 50 Hz x log2(2048)
    # upper:1 = the compression baseline at one codebook; --continue regenerates appended frames
    res = CliRunner().invoke(app, ["vamp", str(wav), "--prompt", "upper:1", "--continue", "0.4",
                                   "--out", str(tmp_path / "c"), *fast])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "c" / "log.jsonl").read_text().splitlines()[0])
    assert rec["frames_out"] == rec["frames_in"] + 20
    assert rec["kept_bitrate_bps"] == pytest.approx(rec["frames_in"] * 11 / ((rec["frames_in"] + 20) / 50))


@pytest.mark.parametrize("bad,needle", [("periodic:0", "period P must be >= 1"), ("wobble:3", "unknown prompt kind")])
def test_vamp_cli_rejects_bad_prompts(tmp_path: Path, bad: str, needle: str) -> None:
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    res = CliRunner().invoke(app, ["vamp", str(_sine(tmp_path / "in.wav")), "--prompt", bad])
    assert res.exit_code != 0
    assert isinstance(res.exception, MagnetEvalError) and bad in str(res.exception) and needle in str(res.exception)


def test_vamp_cli_unreadable_audio(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    res = CliRunner().invoke(app, ["vamp", str(bad)])
    assert res.exit_code != 0 and isinstance(res.exception, MagnetEvalError) and "broken.wav" in str(res.exception)


def _reference_forward(sd: dict, books: torch.Tensor, z: torch.Tensor, heads: int, n_predict: int) -> torch.Tensor:
    """The reference's forward written out from its definitions, straight on its state dict -> [B, vocab, T * P]."""
    import torch.nn.functional as F

    def w(name: str) -> torch.Tensor:  # loralib Linear in eval: W + B A * alpha / r
        W = sd[name + ".weight"]
        return W + sd[name + ".lora_B"] @ sd[name + ".lora_A"] / 8 if name + ".lora_A" in sd else W

    def rms(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    K = z.shape[1]
    lat = torch.cat([F.embedding(z[:, i], torch.cat([books[i], sd["embedding.special.MASK"][i:i + 1]])).transpose(1, 2)
                     for i in range(K)], dim=1)
    x = F.conv1d(lat, sd["embedding.out_proj.weight"], sd["embedding.out_proj.bias"]).transpose(1, 2)
    T = x.shape[1]
    rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]  # key - query
    half, exact = 16, 8
    big = exact + (torch.log(rel.abs().float() / exact) / math.log(128 / exact) * (half - exact)).long()
    bucket = (rel > 0).long() * half + torch.where(rel.abs() < exact, rel.abs(), big.clamp(max=half - 1))
    bias = sd["transformer.layers.0.self_attn.relative_attention_bias.weight"][bucket].permute(2, 0, 1)[:, None]
    n_layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.layers."))
    for i in range(n_layers):
        p = f"transformer.layers.{i}."
        y = rms(x, sd[p + "norm_1.weight"])
        q, k, v = (t.view(*t.shape[:2], heads, -1).permute(2, 0, 1, 3)
                   for t in (y @ w(p + "self_attn.w_qs").T, y @ w(p + "self_attn.w_ks").T, y @ w(p + "self_attn.w_vs").T))
        a = torch.softmax(torch.einsum("hblk,hbtk->hblt", q, k) / math.sqrt(q.shape[-1]) + bias, dim=-1)
        o = torch.einsum("hblt,hbtv->hblv", a, v).permute(1, 2, 0, 3).reshape(x.shape)
        x = x + o @ w(p + "self_attn.fc").T
        y = rms(x, sd[p + "norm_3.weight"]) @ sd[p + "feed_forward.w_1.weight"].T
        p1, p2 = y.chunk(2, dim=-1)
        x = x + (p1 * F.gelu(p2, approximate="tanh")) @ sd[p + "feed_forward.w_2.weight"].T
    x = rms(x, sd["transformer.norm.weight"]).transpose(1, 2)
    g, vv = sd["classifier.layers.0.weight_g"], sd["classifier.layers.0.weight_v"]
    out = F.conv1d(x, g * vv / vv.flatten(1).norm(dim=1).view(-1, 1, 1), sd["classifier.layers.0.bias"])
    B, _, T = out.shape
    # rearrange "b (p c) t -> b p (t c)", c = n_predict
    return out.view(B, -1, n_predict, T).permute(0, 1, 3, 2).reshape(B, -1, T * n_predict)


def test_loaded_model_computes_the_reference_forward(tmp_path: Path) -> None:
    from magnet_eval.models.vampnet_weights import load_released_vampnet

    ref = write_reference_files(tmp_path)
    vn = load_released_vampnet(tmp_path, frame_rate=50.0, sample_rate=32000)
    books = torch.stack([ref["codec"][f"quantizer.quantizers.{i}.codebook.weight"] for i in range(4)])
    z = tokens(B=2, K=4, T=40)  # longer than 2 x 8 exact buckets: exercises the log-spaced ones
    z[0, 2, 5] = 32  # a mask token
    with torch.no_grad():
        mine = vn.c2f(z)  # [B, P, T, V]
    theirs = _reference_forward(ref["c2f"], books, z, heads=2, n_predict=2)  # [B, V, T * P]
    B, P, T, V = mine.shape
    assert torch.allclose(mine.permute(0, 3, 2, 1).reshape(B, V, T * P), theirs, atol=1e-5)


def test_training_objective_masks_on_schedule_and_scores_only_masked_tokens() -> None:
    from magnet_eval.models.vampnet import masked_token_loss, training_mask

    z = tokens(B=2, K=4, T=400)
    m = training_mask(z, torch.tensor([0.0, 2 / 3]), n_conditioning=2, generator=torch.Generator().manual_seed(0))
    assert not m[:, :2].any()  # conditioning codebooks never hidden
    assert m[0, 2:].all()  # r = 0: everything masked
    assert m[1, 2:].float().mean() == pytest.approx(0.5, abs=0.05)  # cos(pi / 3) = 0.5
    model = small_pair().c2f
    loss, acc = masked_token_loss(model, z, m)
    assert loss.requires_grad and 0.0 <= float(acc) <= 1.0
    # a masked token's target is scored (its input is the mask token, so only the target moves)
    j = torch.nonzero(m[1, 3]).flatten()[0]
    z3 = z.clone()
    z3[1, 3, j] = (z3[1, 3, j] + 1) % 32
    with torch.no_grad():
        base = masked_token_loss(model, z, m)[0]
        assert not torch.isclose(masked_token_loss(model, z3, m)[0], base)
    assert masked_token_loss(model, z, torch.zeros_like(m))[0] == 0.0


def test_top_p_tiny_equals_greedy() -> None:
    vn = small_pair()
    z = tokens(B=2, K=2, T=16)
    keep = M.periodic(z, 4)
    # one step decodes every masked token at once: a nucleus that holds only the top token is the argmax
    nucleus = VampDecoding(steps=1, top_p=1e-6, typical_filtering=False)
    greedy = VampDecoding(steps=1, temperature=0.0, typical_filtering=False)
    a = sample_tokens(vn.coarse, z, keep, nucleus, make_generators([1, 2]))
    assert torch.equal(a, sample_tokens(vn.coarse, z, keep, greedy, make_generators([3, 4])))
    # over several steps the nucleus leaves no randomness in the tokens when the re-masking has no noise
    many = VampDecoding(steps=4, top_p=1e-6, typical_filtering=False, mask_temperature=0.0)
    assert torch.equal(sample_tokens(vn.coarse, z, keep, many, make_generators([1, 2])),
                       sample_tokens(vn.coarse, z, keep, many, make_generators([5, 6])))
    # with the full distribution the seeds matter
    free = VampDecoding(steps=4, typical_filtering=False, mask_temperature=0.0)
    assert not torch.equal(sample_tokens(vn.coarse, z, keep, free, make_generators([1, 2])),
                           sample_tokens(vn.coarse, z, keep, free, make_generators([5, 6])))


def test_own_checkpoint_round_trip(tmp_path: Path) -> None:
    from magnet_eval.models.vampnet_weights import load_vampnet, save_vampnet

    vn = small_pair(seed=3)
    path = save_vampnet(vn, tmp_path / "vampnet.pt", codec_spec="tiny")
    back, codec_spec = load_vampnet(path)
    assert codec_spec == "tiny" and back.c2f.cfg == vn.c2f.cfg
    z = tokens()
    keep = M.periodic(z, 3)
    assert torch.equal(back.vamp(z, keep, [1, 2], coarse=FAST, c2f=FAST), vn.vamp(z, keep, [1, 2], coarse=FAST, c2f=FAST))
    torch.save({"kind": "stemgen", "coarse": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not a magnet-eval VampNet checkpoint"):
        load_vampnet(tmp_path / "other.pt")
    torch.save({"kind": "vampnet", "coarse": {"config": vn.coarse.cfg.to_dict(), "state_dict": {}}}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="e.pt: weights do not match"):
        load_vampnet(tmp_path / "e.pt")


def test_vamp_cli_with_a_checkpoint_file(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from magnet_eval.cli import app
    from magnet_eval.models.codec import load_codec
    from magnet_eval.models.vampnet_weights import save_vampnet

    ckpt = save_vampnet(build_vampnet("vampnet-tiny", load_codec("tiny", pretrained=False)), tmp_path / "v.pt", "tiny")
    res = CliRunner().invoke(app, ["vamp", str(_sine(tmp_path / "in.wav", 0.5)), "--model", str(ckpt), "--prompt",
                                   "inpaint:0.1-0.3", "--coarse-steps", "2", "--c2f-steps", "2", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "o" / "log.jsonl").read_text())
    assert rec["model"] == str(ckpt) and rec["kept_fraction"] == pytest.approx(15 / 25)
