"""The codec: shapes and frame rates, audiocraft / HF / EnCodec-24k file layouts, save/load round trip, errors.

Checkpoints are fabricated here: an audiocraft `compression_state_dict.bin` whose key names and
shapes come from an independent description of audiocraft's SEANet/RVQ layout (not from our
model), a transformers EncodecModel saved in the HF cache layout (whose outputs we must
reproduce), and the 24 kHz EnCodec state dict from the `encodec` package.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from magnet_eval.errors import AudioError, CheckpointError, MagnetEvalError, MissingWeightsError
from magnet_eval.models import codec as cm
from magnet_eval.models import codec_model
from magnet_eval.models.codec import (CODEC_FILE, CodecConfig, build_codec, codec_config_from_xp, load_codec,
                                      save_codec)

SMALL = dict(n_filters=4, dimension=16, ratios=[8, 5, 4, 4], n_q=4, bins=64, lstm=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty HF and torch hub caches under tmp_path."""
    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return hub


def snapshot(hub, repo: str, rev: str = "0123abcd"):
    d = hub / ("models--" + repo.replace("/", "--"))
    (d / "snapshots" / rev).mkdir(parents=True)
    (d / "refs").mkdir()
    (d / "refs" / "main").write_text(rev)
    return d / "snapshots" / rev


# ---- an independent description of audiocraft's codec state-dict layout -------------------------
def audiocraft_codec_layout(sr=32000, channels=1, dimension=128, n_filters=64, ratios=(8, 5, 4, 4), n_q=4,
                            bins=2048, lstm=2, true_skip=True, n_residual_layers=1, kernel=7, last_kernel=7,
                            res_kernel=3, compress=2) -> dict[str, tuple]:
    """{key: shape} of audiocraft's EncodecModel (SEANet + RVQ, weight norm) for these settings."""
    out: dict[str, tuple] = {}

    def conv(prefix, cin, cout, k, transposed=False):
        inner = "convtr.convtr" if transposed else "conv.conv"
        out[f"{prefix}.{inner}.weight_g"] = (cin, 1, 1) if transposed else (cout, 1, 1)
        out[f"{prefix}.{inner}.weight_v"] = (cin, cout, k) if transposed else (cout, cin, k)
        out[f"{prefix}.{inner}.bias"] = (cout,)

    def resblock(prefix, dim):
        hidden = dim // compress
        conv(f"{prefix}.block.1", dim, hidden, res_kernel)
        conv(f"{prefix}.block.3", hidden, dim, 1)
        if not true_skip:
            conv(f"{prefix}.shortcut", dim, dim, 1)

    def lstm_keys(prefix, dim):
        for layer in range(lstm):
            out[f"{prefix}.lstm.weight_ih_l{layer}"] = (4 * dim, dim)
            out[f"{prefix}.lstm.weight_hh_l{layer}"] = (4 * dim, dim)
            out[f"{prefix}.lstm.bias_ih_l{layer}"] = (4 * dim,)
            out[f"{prefix}.lstm.bias_hh_l{layer}"] = (4 * dim,)

    # encoder: conv, [resblocks, ELU, down-conv] per ratio (reversed), LSTM, ELU, conv
    i, mult = 0, 1
    conv(f"encoder.model.{i}", channels, n_filters, kernel)
    i += 1
    for r in reversed(ratios):
        for _ in range(n_residual_layers):
            resblock(f"encoder.model.{i}", mult * n_filters)
            i += 1
        i += 1  # ELU
        conv(f"encoder.model.{i}", mult * n_filters, 2 * mult * n_filters, 2 * r)
        i += 1
        mult *= 2
    if lstm:
        lstm_keys(f"encoder.model.{i}", mult * n_filters)
        i += 1
    i += 1  # ELU
    conv(f"encoder.model.{i}", mult * n_filters, dimension, last_kernel)
    # decoder: conv, LSTM, [ELU, up-convtr, resblocks] per ratio, ELU, conv
    i = 0
    mult = 2 ** len(ratios)
    conv(f"decoder.model.{i}", dimension, mult * n_filters, kernel)
    i += 1
    if lstm:
        lstm_keys(f"decoder.model.{i}", mult * n_filters)
        i += 1
    for r in ratios:
        i += 1  # ELU
        conv(f"decoder.model.{i}", mult * n_filters, mult * n_filters // 2, 2 * r, transposed=True)
        i += 1
        for _ in range(n_residual_layers):
            resblock(f"decoder.model.{i}", mult * n_filters // 2)
            i += 1
        mult //= 2
    i += 1  # ELU
    conv(f"decoder.model.{i}", n_filters, channels, last_kernel)
    for q in range(n_q):
        p = f"quantizer.vq.layers.{q}._codebook"
        out[f"{p}.inited"] = (1,)
        out[f"{p}.cluster_size"] = (bins,)
        out[f"{p}.embed"] = (bins, dimension)
        out[f"{p}.embed_avg"] = (bins, dimension)
    return out


AUDIOCRAFT_XP = """
solver: compression
dora:
  dir: /checkpoint/${{oc.env:USER_THAT_DOES_NOT_EXIST}}/experiments
compression_model: encodec
sample_rate: {sr}
channels: 1
encodec:
  autoencoder: seanet
  quantizer: rvq
  sample_rate: ${{sample_rate}}
  channels: ${{channels}}
  causal: false
  renormalize: false
seanet:
  dimension: {dimension}
  channels: ${{channels}}
  causal: ${{encodec.causal}}
  n_filters: {n_filters}
  n_residual_layers: 1
  ratios: {ratios}
  activation: ELU
  activation_params: {{"alpha": 1.}}
  norm: weight_norm
  norm_params: {{}}
  kernel_size: 7
  residual_kernel_size: 3
  last_kernel_size: 7
  dilation_base: 2
  pad_mode: constant
  true_skip: true
  compress: 2
  lstm: 2
  disable_norm_outer_blocks: 0
  decoder:
    trim_right_ratio: 1.0
    final_activation: null
    final_activation_params: null
  encoder: {{}}
rvq:
  n_q: {n_q}
  q_dropout: false
  bins: {bins}
  decay: 0.99
  kmeans_init: true
  kmeans_iters: 50
  threshold_ema_dead_code: 2
  orthogonal_reg_weight: 0.0
  orthogonal_reg_active_codes_only: false
"""


def fabricate_audiocraft_export(path, seed=0, drop=None, reshape=None):
    """Write a compression_state_dict.bin in audiocraft's export format with small dims and random weights."""
    layout = audiocraft_codec_layout(**SMALL)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in layout.items():
        if k.endswith("inited"):
            state[k] = torch.ones(shape)
        elif k.endswith("cluster_size"):
            state[k] = torch.rand(shape, generator=g) + 1
        elif "lstm" in k:
            state[k] = torch.randn(shape, generator=g) * 0.1
        else:
            state[k] = torch.randn(shape, generator=g) * 0.3
    if drop:
        del state[drop]
    if reshape:
        state[reshape] = torch.zeros(3, 3)
    xp = AUDIOCRAFT_XP.format(sr=32000, dimension=SMALL["dimension"], n_filters=SMALL["n_filters"],
                              ratios=SMALL["ratios"], n_q=SMALL["n_q"], bins=SMALL["bins"])
    torch.save({"best_state": state, "xp.cfg": xp, "version": "1.4.0a2", "exported": True}, path)
    return state


def test_32khz_layout_matches_audiocraft_keys_and_parameter_count():
    codec = build_codec("encodec_32khz")
    ours = {k: tuple(v.shape) for k, v in codec.state_dict().items()}
    assert ours == audiocraft_codec_layout()
    layout = audiocraft_codec_layout()
    n_params = sum(math.prod(s) for k, s in layout.items() if "_codebook" not in k)
    assert codec.num_params() == n_params
    assert 56.5e6 < n_params < 57.2e6  # identity shortcuts; conv shortcuts would add ~0.7M
    with_shortcuts = sum(math.prod(s) for k, s in audiocraft_codec_layout(true_skip=False).items() if "_codebook" not in k)
    assert with_shortcuts - n_params > 0.6e6


@pytest.mark.parametrize("name,sr,rate,hop,d", [("tiny", 32000, 50, 640, 64), ("encodec_32khz", 32000, 50, 640, 128),
                                                 ("encodec_16khz", 16000, 50, 320, 128)])
def test_shapes_and_frame_rate(name, sr, rate, hop, d):
    codec = load_codec(name, pretrained=False)
    assert (codec.sample_rate, codec.frame_rate, codec.hop_length, codec.n_q, codec.card, codec.dimension) == \
        (sr, rate, hop, 4, 2048, d)
    batch = 2 if name == "tiny" else 1
    seconds = 1.0 if name == "tiny" else 0.4
    wav = torch.randn(batch, 1, int(sr * seconds)) * 0.1
    frames = int(rate * seconds)
    codes = codec.encode(wav)
    assert codes.shape == (batch, 4, frames) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < 2048
    assert codec.latents(wav).shape == (batch, d, frames)
    with torch.no_grad():
        out = codec.decode(codes)
    assert out.shape == (batch, 1, frames * hop)
    # a length that is not a multiple of the hop gets one more (padded) frame
    assert codec.encode(wav[..., : hop * 3 + 7]).shape[-1] == 4 == codec.frames_for(hop * 3 + 7)


def test_random_codec_is_deterministic_and_codes_matter():
    a, b = load_codec("tiny"), load_codec("tiny")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    codes = torch.randint(0, 2048, (1, 4, 10), generator=torch.Generator().manual_seed(1))
    other = (codes + 1) % 2048
    with torch.no_grad():
        assert not torch.allclose(a.decode(codes), a.decode(other))  # random codebooks, not all-zero ones


def test_load_audiocraft_export(tmp_path):
    path = tmp_path / CODEC_FILE
    state = fabricate_audiocraft_export(path)
    codec = load_codec(path)
    assert (codec.sample_rate, codec.frame_rate, codec.n_q, codec.card, codec.dimension) == (32000, 50, 4, 64, 16)
    assert not codec.training
    for k, v in state.items():
        assert torch.equal(codec.state_dict()[k], v), k
    wav = torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(3)) * 0.2
    codes = codec.encode(wav)
    assert codes.shape == (1, 4, 25)
    # residual VQ by hand from the file's codebooks: nearest entry, subtract, repeat
    residual = codec.latents(wav)[0].T.detach()  # [F, D]
    for q in range(4):
        embed = state[f"quantizer.vq.layers.{q}._codebook.embed"]
        expect = torch.cdist(residual, embed).argmin(dim=1)
        assert torch.equal(codes[0, q], expect), q
        residual = residual - embed[expect]
    # decode = decoder(sum of the chosen codebook vectors)
    latent = sum(state[f"quantizer.vq.layers.{q}._codebook.embed"][codes[0, q]] for q in range(4)).T[None]
    with torch.no_grad():
        assert torch.allclose(codec.decode(codes), codec.decoder(latent), atol=1e-5)
    # the folder works too
    assert torch.equal(load_codec(tmp_path).encode(wav), codes)


def test_xp_cfg_interpolations_resolved(tmp_path):
    fabricate_audiocraft_export(tmp_path / CODEC_FILE)
    pkg = torch.load(tmp_path / CODEC_FILE, weights_only=True)
    assert "${sample_rate}" in pkg["xp.cfg"]
    cfg = codec_config_from_xp(pkg["xp.cfg"])
    assert (cfg.sample_rate, cfg.channels, cfg.pad_mode, cfg.true_skip, cfg.causal, cfg.ratios) == \
        (32000, 1, "constant", True, False, [8, 5, 4, 4])


@pytest.mark.parametrize("drop,reshape,needle", [
    ("decoder.model.4.block.1.conv.conv.weight_v", None, "missing keys (1)"),
    (None, "encoder.model.0.conv.conv.bias", "shape mismatches (1)"),
])
def test_bad_checkpoint_lists_keys(tmp_path, drop, reshape, needle):
    fabricate_audiocraft_export(tmp_path / CODEC_FILE, drop=drop, reshape=reshape)
    with pytest.raises(CheckpointError) as err:
        load_codec(tmp_path / CODEC_FILE)
    msg = str(err.value)
    assert needle in msg and (drop or reshape) in msg


def test_unexpected_key_listed(tmp_path):
    path = tmp_path / CODEC_FILE
    fabricate_audiocraft_export(path)
    pkg = torch.load(path, weights_only=True)
    pkg["best_state"]["encoder.model.99.conv.conv.bias"] = torch.zeros(2)
    torch.save(pkg, path)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\)(.|\n)*encoder\.model\.99"):
        load_codec(path)


def test_save_round_trip_after_training_step(tmp_path):
    codec = load_codec("tiny", pretrained=False).train()
    for layer in codec.quantizer.vq.layers:  # skip the k-means initialisation (slow, and not ours to test)
        layer._codebook.inited.fill_(1)
    embed0 = codec.quantizer.vq.layers[0]._codebook.embed.clone()
    opt = torch.optim.Adam(codec.parameters(), lr=1e-3)
    wav = torch.randn(2, 1, 6400, generator=torch.Generator().manual_seed(0)) * 0.1
    recon, codes, commit = codec(wav)
    assert recon.shape == wav.shape and codes.shape == (2, 4, 10) and commit.dim() == 0 and commit > 0
    assert not torch.equal(codec.quantizer.vq.layers[0]._codebook.embed, embed0)  # EMA codebook update
    loss = (recon - wav).abs().mean() + commit
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in codec.decoder.parameters())
    opt.step()
    codec.eval()
    path = save_codec(codec, tmp_path / "out", cfg={"steps": 1, "data": tmp_path})
    assert path.name == CODEC_FILE
    pkg = torch.load(path, weights_only=True)
    assert set(pkg) == {"best_state", "xp.cfg", "version", "exported"} and pkg["exported"] is True
    assert "steps: 1" in pkg["xp.cfg"]
    back = load_codec(path)
    for k, v in codec.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert back.config.name == "tiny" and back.weights_id == codec.weights_id
    with torch.no_grad():
        assert torch.equal(back.encode(wav), codec.encode(wav))
        c = codec.encode(wav)
        assert torch.allclose(back.decode(c), codec.decode(c))


# ---- Hugging Face transformers layout -----------------------------------------------------------
def _hf_small_model(seed=0, shortcut=False, causal=False):
    from transformers import EncodecConfig, EncodecModel

    frame_rate = 32000 / 640
    cfg = EncodecConfig(target_bandwidths=[4 * frame_rate * math.log2(64) / 1000], sampling_rate=32000,
                        audio_channels=1, normalize=False, hidden_size=16, num_filters=4, upsampling_ratios=[8, 5, 4, 4],
                        use_causal_conv=causal, use_conv_shortcut=shortcut, codebook_size=64, pad_mode="reflect")
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EncodecModel(cfg).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.quantizer.layers:  # HF initialises codebooks to zeros
            layer.codebook.embed.copy_(torch.randn(layer.codebook.embed.shape, generator=g) * 0.3)
        for name, p in model.named_parameters():
            if "bias" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.mark.parametrize("shortcut,causal", [(False, False), (True, True)])
def test_hf_cache_layout_matches_transformers(caches, shortcut, causal):
    hf = _hf_small_model(shortcut=shortcut, causal=causal)
    folder = snapshot(caches, "facebook/encodec_32khz")
    hf.save_pretrained(folder)
    assert (folder / "config.json").is_file()
    codec = load_codec("encodec_32khz")
    assert (codec.sample_rate, codec.frame_rate, codec.n_q, codec.card) == (32000, 50, 4, 64)
    assert codec.config.pad_mode == "reflect" and codec.config.true_skip is not shortcut
    assert codec.config.causal is causal
    wav = torch.randn(2, 1, 32000 + 123, generator=torch.Generator().manual_seed(5)) * 0.2
    with torch.no_grad():
        ref = hf.encode(wav, return_dict=True)
        ref_codes = ref.audio_codes[0]  # [B, K, F]
        ours = codec.encode(wav)
        assert torch.equal(ours, ref_codes)
        ref_wav = hf.decode(ref.audio_codes, ref.audio_scales, return_dict=True).audio_values
        assert torch.allclose(codec.decode(ours)[..., : ref_wav.shape[-1]], ref_wav, atol=1e-5)
    # a musicgen repo whose compression_state_dict.bin points at facebook/encodec_32khz
    mg = snapshot(caches, "facebook/musicgen-small")
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.0.0"}, mg / CODEC_FILE)
    assert torch.equal(load_codec("facebook/musicgen-small").encode(wav), ours)
    assert torch.equal(load_codec(mg / CODEC_FILE).encode(wav), ours)


def test_hf_layout_missing_key(caches, tmp_path):
    from safetensors.torch import load_file, save_file

    hf = _hf_small_model()
    folder = snapshot(caches, "facebook/encodec_32khz")
    hf.save_pretrained(folder)
    state = load_file(str(folder / "model.safetensors"))
    victim = next(k for k in state if k.startswith("decoder.layers.") and "lstm.weight_hh_l1" in k)
    del state[victim]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_codec("encodec_32khz")


def test_encodec_24khz_from_torch_hub_cache(caches, tmp_path):
    from encodec import EncodecModel

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = EncodecModel.encodec_model_24khz(pretrained=False)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in ref.quantizer.vq.layers:
            layer._codebook.embed.copy_(torch.randn(layer._codebook.embed.shape, generator=g))
            layer._codebook.inited.fill_(1)
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / cm.ENCODEC_24KHZ_FILE
    ckpt.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt)
    codec = load_codec("encodec_24khz")
    assert (codec.sample_rate, codec.frame_rate, codec.n_q, codec.card, codec.total_codebooks) == (24000, 75, 8, 1024, 32)
    ref.set_target_bandwidth(6.0)  # 8 codebooks
    wav = torch.randn(1, 1, 9600, generator=torch.Generator().manual_seed(4)) * 0.2
    with torch.no_grad():
        frames = ref.encode(wav)
        assert torch.equal(codec.encode(wav), frames[0][0])
        assert torch.allclose(codec.decode(frames[0][0]), ref.decode(frames), atol=1e-5)
        assert torch.allclose(codec.latents(wav), ref.encoder(wav), atol=1e-6)


def test_missing_weights_name_the_files(caches):
    with pytest.raises(MissingWeightsError) as err:
        load_codec("encodec_32khz")
    msg = str(err.value)
    assert "models--facebook--encodec_32khz" in msg and "model.safetensors" in msg and CODEC_FILE in msg
    with pytest.raises(MissingWeightsError, match=cm.ENCODEC_24KHZ_FILE):
        load_codec("encodec_24khz")
    with pytest.raises(MissingWeightsError, match=r"models--facebook--magnet-small-10secs(.|\n)*compression_state_dict"):
        load_codec("facebook/magnet-small-10secs")
    with pytest.raises(MissingWeightsError, match="no such file"):
        load_codec("/nonexistent/codec.bin")
    # the same names with pretrained=False give the architecture with random weights
    assert load_codec("facebook/magnet-small-10secs", pretrained=False).card == 2048


def test_bad_inputs():
    codec = load_codec("tiny")
    with pytest.raises(AudioError):
        codec.encode(torch.zeros(2, 640))
    with pytest.raises(AudioError):
        codec.encode(torch.full((1, 1, 640), float("nan")))
    with pytest.raises(MagnetEvalError, match="2048"):
        codec.decode(torch.full((1, 4, 3), 2048))  # a mask token left in the codes
    with pytest.raises(MagnetEvalError):
        codec.set_num_codebooks(5)


def test_unsupported_config_refused():
    xp = AUDIOCRAFT_XP.format(sr=32000, dimension=16, n_filters=4, ratios=[8, 5, 4, 4], n_q=4, bins=64)
    with pytest.raises(CheckpointError, match="disable_norm_outer_blocks"):
        codec_config_from_xp(xp.replace("disable_norm_outer_blocks: 0", "disable_norm_outer_blocks: 1"))
    with pytest.raises(CheckpointError, match="renormalize"):
        codec_config_from_xp(xp.replace("renormalize: false", "renormalize: true"))
    assert isinstance(codec_config_from_xp(xp), CodecConfig)


def test_kmeans_covers_the_samples():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 3, generator=g) * 10
    samples = torch.cat([c + 0.01 * torch.randn(40, 3, generator=g) for c in centers])
    torch.manual_seed(1)
    means, counts = codec_model._kmeans(samples, 40, 30)  # more codes than clusters: every sample near a code
    assert float(torch.cdist(samples, means).min(dim=1).values.max()) < 0.1
    assert int(counts.sum()) == 200 and torch.isfinite(means).all()


def test_first_training_batch_initialises_codebooks_by_kmeans():
    codec = build_codec(CodecConfig(name="t", **SMALL, kmeans_init=True, kmeans_iters=50))
    assert not any(bool(layer._codebook.inited) for layer in codec.quantizer.vq.layers)
    wav = torch.randn(4, 1, 16000, generator=torch.Generator().manual_seed(0)) * 0.2  # 100 frames, 64 codes
    codec.init_codebooks(wav)
    with torch.no_grad():
        z = codec.latents(wav)
    layers = codec.quantizer.vq.layers
    assert all(bool(layer._codebook.inited) for layer in layers)
    x = z.transpose(1, 2).reshape(-1, z.shape[1])
    e0 = layers[0]._codebook.embed
    assign = torch.cdist(x, e0).argmin(dim=1)
    for j in assign.unique()[:10]:  # a Lloyd fixed point: each used code is the mean of its samples
        assert torch.allclose(e0[j], x[assign == j].mean(0), atol=1e-4)
    r1 = x - e0[assign]  # layer 1 was fitted to the residuals, not to the latents
    assert float(torch.cdist(r1, layers[1]._codebook.embed).min(dim=1).values.mean()) < float(r1.norm(dim=1).mean())
    codec.train()
    recon, codes, commit = codec(wav)  # already initialised: no second k-means, a normal EMA step
    assert recon.shape == wav.shape and torch.isfinite(commit)
