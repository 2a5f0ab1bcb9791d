"""Embedder registry and the loaders of VGGish, PANNs, EnCodec, PaSST with weights fabricated in the official layout.

Each fabricated file has the official key names and shapes and sits where the official loader
would put it (a temporary torch hub folder through TORCH_HOME); the embedders must find it
there, load it strictly and produce deterministic frames of the documented shape.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from magnet_eval.embedders import EMBEDDERS, get_embedder, list_embedders  # noqa: E402
from magnet_eval.errors import AudioError, CheckpointError, MagnetEvalError, MissingWeightsError  # noqa: E402

from helpers import sine  # noqa: E402


def noise(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(sr * seconds))).astype(np.float32)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """A temporary TORCH_HOME; removed afterwards (fabricated checkpoints are hundreds of MB)."""
    import shutil

    home = tmp_path / "torch"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _random_state(shapes: dict[str, tuple], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: (0.05 * torch.randn(s, generator=g)) for k, s in shapes.items()}


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_unknown():
    names = list_embedders()
    for required in ("vggish", "pann", "clap", "encodec", "musicnn", "aisfx"):
        assert required in names
    with pytest.raises(MagnetEvalError, match="unknown embedder"):
        get_embedder("no-such-embedder")
    emb = get_embedder("musicnn", layer="max_pool")
    assert emb.dim == 753 and not emb.loaded
    assert get_embedder("codec:some-preset").name == "codec:some-preset"


def test_registry_info_matches_classes():
    for name, info in EMBEDDERS.items():
        if name == "codec":
            continue
        emb = get_embedder(name)
        assert emb.name == name
        assert emb.sample_rate == info.sample_rate
        assert emb.dim == info.dim
        assert emb.clip_handling


def test_importing_registry_is_light():
    code = ("import sys, magnet_eval.embedders as e; e.list_embedders(); e.get_embedder('vggish');"
            "heavy = [m for m in ('torch', 'laion_clap', 'transformers', 'essentia', 'frechet_audio_distance')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_embed_before_load_is_an_error():
    with pytest.raises(MagnetEvalError, match="load"):
        get_embedder("vggish").embed(sine(16000, 1.0), 16000)


# ----------------------------------------------------------------------------- VGGish

VGGISH_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}


def test_vggish_loads_torchvggish_layout_from_torch_hub(torch_home):
    path = torch_home / "hub" / "checkpoints" / "vggish-10086976.pth"
    torch.save(_random_state(VGGISH_SHAPES), path)
    emb = get_embedder("vggish").load()
    assert emb.weights_path == path
    x = sine(16000, 10.0) + noise(16000, 10.0)
    a = emb.embed(x, 16000)
    assert a.shape == (10, 128) and a.dtype == np.float32  # 998 frames -> 10 examples of 0.96 s
    assert np.array_equal(a, emb.embed(x, 16000))
    assert (a < 0).any()  # the final ReLU is dropped, as frechet-audio-distance's use_activation=False
    assert emb.embed(sine(16000, 0.5), 16000).shape == (1, 128)  # short clip zero-padded to one example
    # any rate in: 44.1 kHz stereo is downmixed and resampled
    st = np.stack([sine(44100, 2.0), sine(44100, 2.0)])
    assert emb.embed(st, 44100).shape == (2, 128)


def test_vggish_front_end_puts_a_tone_in_the_right_band():
    from magnet_eval.embedders.vggish import examples, mel_matrix

    w = mel_matrix()
    assert w.shape == (257, 64) and (w[0] == 0).all()
    ex = examples(sine(16000, 2.0, freq=1000.0))
    assert ex.shape == (2, 96, 64)
    hz_to_mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    centres = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), 66)[1:-1]
    assert abs(int(ex[0].mean(axis=0).argmax()) - int(np.argmin(abs(centres - hz_to_mel(1000.0))))) <= 1


def test_vggish_wrong_keys_and_missing_file(torch_home):
    with pytest.raises(MissingWeightsError) as err:
        get_embedder("vggish").load()
    assert "vggish-10086976.pth" in str(err.value)
    assert str(torch_home / "hub" / "checkpoints") in str(err.value)
    bad = torch_home / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, bad)
    with pytest.raises(CheckpointError, match="torchvggish"):
        get_embedder("vggish").load(bad)


# ----------------------------------------------------------------------------- PANNs


def test_pann_loads_frechet_audio_distance_layout(torch_home):
    # frechet-audio-distance's Cnn14_16k with its own (seeded) initialisation: the official key layout, and
    # weights under which the output depends on the input
    sd = _pann_random().model.state_dict()
    path = torch_home / "hub" / "Cnn14_16k_mAP%3D0.438.pth"  # where frechet-audio-distance saves it
    torch.save({"model": sd, "iteration": 1}, path)
    emb = get_embedder("pann").load()
    assert emb.weights_path == path
    x = noise(16000, 3.0)
    a = emb.embed(x, 16000)
    assert a.shape == (1, 2048) and np.array_equal(a, emb.embed(x, 16000))
    assert np.abs(a - emb.embed(sine(16000, 3.0), 16000)).max() > 1e-3 * np.abs(a).max()
    assert emb.embed(sine(16000, 0.3), 16000).shape == (1, 2048)


def _pann_random(device: str = "cpu"):
    """The pann embedder around a seeded, randomly initialised Cnn14 (no weight file written)."""
    from magnet_eval.embedders.pann import PANNEmbedder, _pann_models_module

    torch.manual_seed(0)
    net = _pann_models_module().Cnn14_16k(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50,
                                          fmax=8000, classes_num=527)
    emb = PANNEmbedder(device=device)
    emb.model, emb.weights_id = net.eval(), "sha1:test"
    return emb


def test_pann_clip_value_does_not_depend_on_its_pass():
    """Alone, paired, first or last of five, beside clips of other lengths: the same bits (version 2 passes)."""
    emb = _pann_random()
    clips = [noise(16000, 2.0, seed=s) for s in range(5)] + [noise(16000, 1.5, seed=9), sine(16000, 0.4)]
    alone = [emb.embed(c, 16000) for c in clips]
    together = emb.embed_batch(clips, 16000)
    reordered = emb.embed_batch(clips[::-1], 16000)[::-1]
    pair = emb.embed_batch(clips[3:5], 16000)
    for i in range(len(clips)):
        assert np.array_equal(alone[i], together[i]) and np.array_equal(alone[i], reordered[i]), i
    assert np.array_equal(pair[0], alone[3]) and np.array_equal(pair[1], alone[4])
    assert np.abs(alone[0] - alone[5]).max() > 1e-3 * np.abs(alone[0]).max() and alone[0].shape == (1, 2048)
    probs = emb.clip_probs(clips[0], 16000)
    assert probs.shape == (1, 527) and np.all((probs >= 0) & (probs <= 1))


def test_pann_fixed_passes_as_on_gpu(monkeypatch):
    """The GPU rule, run on CPU: every pass has exactly pass_clips(length) clips, silence-padded, and a clip
    gets the same bits alone or in company."""
    from magnet_eval.embedders.pann import pass_clips

    emb = _pann_random()
    emb.fixed_passes = True
    shapes = []
    forward = emb.model.forward
    monkeypatch.setattr(emb.model, "forward", lambda x, mix=None: shapes.append(tuple(x.shape)) or forward(x, mix))
    clips = [noise(16000, 1.0, seed=s) for s in range(3)] + [noise(16000, 30.0, seed=7)]
    together = emb.embed_batch(clips, 16000)
    assert sorted(shapes) == sorted([(pass_clips(16000), 16000), (2, 16000 * 30)])
    shapes.clear()
    alone = emb.embed(clips[1], 16000)
    assert shapes == [(pass_clips(16000), 16000)] and np.array_equal(alone, together[1])


def test_pann_pass_sizes_bound_memory():
    from magnet_eval.embedders.pann import pass_clips

    assert pass_clips(16000 * 10) == 8 and pass_clips(16000 * 30) == 2 and pass_clips(16000 * 600) == 2
    assert pass_clips(16000 * 20) == 4


def test_pann_missing_names_file(torch_home):
    with pytest.raises(MissingWeightsError) as err:
        get_embedder("pann").load()
    assert "Cnn14_16k_mAP" in str(err.value) and str(torch_home / "hub") in str(err.value)


# ----------------------------------------------------------------------------- EnCodec


def test_encodec_loads_official_layout(torch_home):
    from encodec import EncodecModel

    torch.manual_seed(0)
    sd = EncodecModel.encodec_model_24khz(pretrained=False).state_dict()
    path = torch_home / "hub" / "checkpoints" / "encodec_24khz-d7cc33bc.th"
    torch.save(sd, path)
    emb = get_embedder("encodec").load()
    x = noise(24000, 2.0)
    a = emb.embed(x, 24000)
    assert a.shape == (150, 128)  # 75 Hz
    assert np.array_equal(a, emb.embed(x, 24000))
    assert emb.embed(noise(16000, 2.0), 16000).shape == (150, 128)


def test_encodec_missing_names_file(torch_home):
    with pytest.raises(MissingWeightsError) as err:
        get_embedder("encodec").load()
    assert "encodec_24khz-d7cc33bc.th" in str(err.value) and str(torch_home / "hub" / "checkpoints") in str(err.value)


def test_codec_latents_of_a_toolkit_codec():
    pytest.importorskip("magnet_eval.models.codec")
    emb = get_embedder("codec:tiny").load()  # the seeded random 'tiny' preset of the toolkit's codec
    assert emb.name == "codec:tiny" and emb.dim > 0 and emb.weights_id.startswith("sha1:")
    x = noise(emb.sample_rate, 2.0)
    a = emb.embed(x, emb.sample_rate)
    assert a.ndim == 2 and a.shape[1] == emb.dim and a.shape[0] > 10
    assert np.array_equal(a, emb.embed(x, emb.sample_rate))
    assert get_embedder("codec:tiny").load().weights_id == emb.weights_id


# ----------------------------------------------------------------------------- PaSST


def test_passt_loads_release_layout_and_segments(torch_home):
    pytest.importorskip("hear21passt")
    from magnet_eval.embedders.classifiers import get_classifier

    clf = get_classifier("passt")
    _, net = clf.build()  # hear21passt's PaSST: the released files' key layout
    g = torch.Generator().manual_seed(0)
    sd = {k: (0.02 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v)
          for k, v in net.state_dict().items()}
    path = torch_home / "hub" / "checkpoints" / "passt-s-f128-p16-s10-ap.476-swa.pt"
    torch.save(sd, path)
    clf.load()
    assert clf.weights_path == path and len(clf.labels) == 527 and clf.labels[0] == "Speech"
    assert clf.segment_seconds == 10.0
    x = noise(32000, 3.0)
    p = clf.probs(x, 32000)
    assert p.shape == (1, 527)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(p, clf.probs(x, 32000))
    assert not np.allclose(p, clf.probs(sine(32000, 3.0), 32000))
    assert clf.probs(noise(16000, 3.0), 16000).shape == (1, 527)  # resampled to 32 kHz
    clf.segment_seconds = 1.0  # segmentation logic on short segments (a 10 s ViT pass is slow on CPU)
    assert clf.probs(noise(32000, 2.5), 32000).shape == (3, 527)  # 1 + 1 + 0.5 s, no padding
    assert clf.probs(noise(32000, 2.1), 32000).shape == (2, 527)  # a 0.1 s tail is dropped


def test_passt_missing_names_file(torch_home):
    from magnet_eval.embedders.classifiers import get_classifier

    with pytest.raises(MissingWeightsError) as err:
        get_classifier("passt").load()
    assert "passt-s-f128-p16-s10-ap.476-swa.pt" in str(err.value)
    assert str(torch_home / "hub" / "checkpoints") in str(err.value)


def test_unknown_classifier():
    from magnet_eval.embedders.classifiers import get_classifier

    with pytest.raises(MagnetEvalError, match="unknown classifier"):
        get_classifier("vggish")


# ----------------------------------------------------------------------------- input checks


def test_bad_audio_is_refused(torch_home):
    torch.save(_random_state(VGGISH_SHAPES), torch_home / "hub" / "checkpoints" / "vggish-10086976.pth")
    emb = get_embedder("vggish").load()
    x = sine(16000, 1.0)
    x[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        emb.embed(x, 16000)
    with pytest.raises(AudioError, match="empty"):
        emb.embed(np.zeros(0, dtype=np.float32), 16000)
