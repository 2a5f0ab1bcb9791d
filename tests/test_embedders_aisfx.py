"""aiSFX with the REAL weights of the aisfx 0.1.2 wheel, checked against the wheel's own code.

The wheel is not installed (its pins clash with this stack) but its pure-Python modules import
from the zip: its essentia spectrogram and its CrossNet/EmbeddingNet are the reference our
re-implementation must reproduce on the same audio and weights.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from magnet_eval.errors import CheckpointError, MissingWeightsError  # noqa: E402
from helpers import cache_with_wheel, loaded_embedder, real_wheel  # noqa: E402

WHEEL = "aisfx-0.1.2-*.whl"


@pytest.fixture(scope="module")
def aisfx(tmp_path_factory):
    """The embedder loaded from a temporary cache that links the real wheel."""
    cache = cache_with_wheel(tmp_path_factory.mktemp("cache"), real_wheel(WHEEL))
    with loaded_embedder("aisfx", cache) as embedder:
        yield embedder


@pytest.fixture(scope="module")
def wheel_code():
    """The aisfx package imported from the wheel file (zipimport), for parity checks only."""
    pytest.importorskip("essentia")
    sys.path.insert(0, str(real_wheel(WHEEL)))
    try:
        from aisfx.models import cnn2d
        from aisfx.spectrogram import spectrogram_essentia

        yield cnn2d, spectrogram_essentia
    finally:
        sys.path.remove(str(real_wheel(WHEEL)))
        for name in [m for m in sys.modules if m == "aisfx" or m.startswith("aisfx.")]:
            del sys.modules[name]


def _sfx(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A door-knock-like signal: decaying noise bursts over a low hum."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = 0.05 * np.sin(2 * np.pi * 60 * t)
    for start in np.arange(0.2, seconds - 0.3, 0.7):
        i = int(start * sr)
        m = min(n - i, int(0.25 * sr))
        x[i:i + m] += 0.5 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.03 * sr))
    return x.astype(np.float32)


def test_loads_real_weights_strictly(aisfx):
    assert aisfx.dim == 512 and aisfx.sample_rate == 44100
    assert len(aisfx.heads) == 9 and aisfx.heads["prosfx"] == (0, 78)
    assert aisfx.weights_id.startswith("sha1:")
    n_params = sum(p.numel() for p in aisfx.model.embedding_net.parameters())
    assert 4_500_000 < n_params < 5_000_000  # four conv blocks, 64..512 channels


def test_features_match_the_wheels_essentia_code(aisfx, wheel_code, tmp_path):
    from magnet_eval.audio import save_audio
    from magnet_eval.embedders.aisfx import mel_spectrogram

    _, spec_mod = wheel_code
    x = _sfx(44100, 4.0)
    path = save_audio(tmp_path / "sfx.wav", x, 44100)
    from magnet_eval.audio import load_audio

    wav, _ = load_audio(path)  # the same 16-bit samples the wheel's loader reads
    ref = spec_mod.compute_spectrogram(str(path), sr=44100, block_size=2048, hop_size=1024, n_mels=96,
                                       f_min=0.0, f_max=22050.0) / 9.457798957824707
    ours = mel_spectrogram(wav)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-4


def test_network_matches_the_wheels_crossnet(aisfx, wheel_code):
    from magnet_eval.embedders.aisfx import blocks, load_checkpoint, mel_spectrogram

    cnn2d, _ = wheel_code
    sd, heads = load_checkpoint(_real_wheel_member(), "wheel")
    ref = cnn2d.CrossNet(cnn2d.EmbeddingNet("max", 3, 1, 64), heads, "cpu")
    ref.load_state_dict(sd)
    ref.eval()
    b = torch.from_numpy(blocks(mel_spectrogram(_sfx(44100, 6.0, seed=1))))
    with torch.inference_mode():
        want = ref.get_embedding(b).numpy()
        got = aisfx.model(b).numpy()
        want_head = ref(b, "soundlyTrain")[1].numpy()
        got_head = aisfx.model.fc[aisfx.model.head_names.index("soundlyTrain")](aisfx.model(b)).numpy()
    assert np.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert np.allclose(got_head, want_head, atol=1e-4, rtol=1e-4)


def _real_wheel_member() -> bytes:
    import zipfile

    with zipfile.ZipFile(real_wheel(WHEEL)) as zf:
        return zf.read("aisfx/models/checkpoint.pth")


def test_blocks_and_embedding_shapes(aisfx):
    from magnet_eval.embedders.aisfx import blocks

    spec = np.arange(431 * 96, dtype=np.float32).reshape(431, 96)
    assert blocks(spec).shape == (7, 100, 96)  # (431 - 100) / 50 -> 6 full hops + the first block
    assert blocks(spec[:250]).shape == (4, 100, 96)  # (250 - 100) % 50 == 0: the last block is complete
    one = blocks(spec[:30])
    assert one.shape == (1, 100, 96) and (one[0, 30:] == 0).all()  # zero-padded

    x = _sfx(44100, 10.0)
    e = aisfx.embed(x, 44100)
    assert e.shape == (7, 512) and np.array_equal(e, aisfx.embed(x, 44100))
    assert aisfx.embed(_sfx(16000, 1.0), 16000).shape == (1, 512)
    p = aisfx.head_probs(x, 44100, "prosfx")
    assert p.shape == (7, 78) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_missing_wheel_and_bad_checkpoint(tmp_path, monkeypatch):
    from magnet_eval.embedders import get_embedder

    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        get_embedder("aisfx").load()
    assert "aisfx" in str(err.value) and str(tmp_path / "wheels") in str(err.value)
    bad = tmp_path / "checkpoint.pth"
    torch.save({"not": "a tuple"}, bad)
    with pytest.raises(CheckpointError, match="tuple"):
        get_embedder("aisfx").load(bad)
