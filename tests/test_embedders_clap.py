"""CLAP embedder: a small CLAP fabricated with laion_clap's own classes, saved in the official layout.

The fabricated checkpoint has the released files' structure ({'state_dict': {'module.' + key}},
including the stale `text_branch.embeddings.position_ids`), an HTSAT-tiny audio tower and a
1-layer RoBERTa text branch of width 768, and sits in a temporary Hugging Face cache under
models--lukewys--laion_clap/snapshots/<rev>/630k-audioset-best.pt. The roberta-base tokenizer
is fabricated as a byte-level BPE vocab.json + merges.txt with > 1000 entries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import sine  # noqa: E402

CKPT = "630k-audioset-best.pt"
TEXT_VOCAB = 1400


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (GPT-2 / RoBERTa scheme)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tokenizer(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _byte_alphabet():
        vocab.setdefault(ch, len(vocab))
    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = []
    for a in letters:
        merges.append(("Ġ", a))
    for a in letters:
        for b in letters:
            merges.append((a, b))
    for a in "etaoinsrhl":
        for b in letters:
            merges.append(("Ġ" + a, b))
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n",
                                       encoding="utf-8")
    return len(vocab)


def _hub_snapshot(hf_home: Path, repo: str, rev: str = "0123abcd") -> Path:
    base = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(rev)
    snap = base / "snapshots" / rev
    snap.mkdir(parents=True, exist_ok=True)
    return snap


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory):
    """Two HF caches: A holds only the CLAP checkpoint, B only the roberta-base tokenizer.

    Returns (A, B, the fabricated model's state dict); laion_clap is slow to import, so once per module.
    """
    from magnet_eval.offline import import_laion_clap

    import_laion_clap()
    from clap_module import create_model
    from transformers import RobertaConfig

    from magnet_eval.embedders.clap import _roberta_from_config

    cache_a, cache_b = tmp_path_factory.mktemp("hf_clap"), tmp_path_factory.mktemp("hf_roberta")
    cfg = RobertaConfig(vocab_size=TEXT_VOCAB, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                        intermediate_size=64, max_position_embeddings=80, type_vocab_size=1, layer_norm_eps=1e-5,
                        pad_token_id=1)
    torch.manual_seed(0)
    with _roberta_from_config(cfg):
        model, _ = create_model("HTSAT-tiny", "roberta", precision="fp32", device="cpu", enable_fusion=False)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    sd["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]  # saved by old transformers
    torch.save({"epoch": 45, "state_dict": sd}, _hub_snapshot(cache_a, "lukewys/laion_clap") / CKPT)
    n = write_tokenizer(_hub_snapshot(cache_b, "roberta-base"))
    assert 1000 < n <= TEXT_VOCAB
    yield cache_a, cache_b, model.state_dict()
    import shutil

    shutil.rmtree(cache_a, ignore_errors=True)  # the fabricated checkpoint is ~150 MB


@pytest.fixture(scope="module")
def clap(fabricated):
    """The fabricated CLAP loaded from cache A (no roberta-base files there: audio must not need them)."""
    from magnet_eval.embedders import get_embedder

    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HOME", str(fabricated[0]))
    mp.delenv("HF_HUB_CACHE", raising=False)
    try:
        yield get_embedder("clap-630k").load()
    finally:
        mp.undo()


@pytest.fixture
def fresh_tokenizer(clap):
    clap._tokenizer = None
    yield clap
    clap._tokenizer = None


def test_loads_official_layout_from_hf_cache(clap, fabricated):
    cache_a, _, reference = fabricated
    assert clap.weights_path.is_relative_to(cache_a)
    assert clap.audio_model == "HTSAT-tiny"
    assert clap.weights_id.startswith("sha1:")
    got = clap.model.state_dict()
    for key in ("audio_branch.patch_embed.proj.weight", "text_branch.encoder.layer.0.attention.self.query.weight",
                "audio_projection.0.weight"):
        assert torch.equal(got[key], reference[key]), key


def test_audio_embedding_shape_determinism_and_windows(clap):
    sr = 48000
    short = sine(sr, 3.0)
    a, b = clap.embed(short, sr), clap.embed(short, sr)
    assert a.shape == (1, 512) and np.array_equal(a, b)  # no random crop
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # 25 s -> two full 10 s windows (5 s tail dropped); a clip at 16 kHz is resampled, not misread
    long = np.concatenate([sine(sr, 10.0, 300.0), sine(sr, 10.0, 2000.0), sine(sr, 5.0, 800.0)])
    e = clap.embed(long, sr)
    assert e.shape == (2, 512)
    assert not np.allclose(e[0], e[1])
    assert np.allclose(e[0], clap.embed(long[: 10 * sr], sr)[0], atol=1e-5)
    e16 = clap.embed(sine(16000, 3.0), 16000)
    assert float(e16[0] @ a[0]) > 0.99


def test_text_embedding_uses_real_tokenizer(fresh_tokenizer, fabricated, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(fabricated[1]))
    t = fresh_tokenizer.embed_text(["a calm piano melody", "loud rock drums", "a calm piano melody"])
    assert t.shape == (3, 512)
    assert np.allclose(t[0], t[2]) and not np.allclose(t[0], t[1])
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert len(fresh_tokenizer.tokenizer) > 1000


def test_missing_tokenizer_is_a_clear_error(fresh_tokenizer, fabricated, monkeypatch):
    from magnet_eval.errors import MissingWeightsError

    monkeypatch.setenv("HF_HOME", str(fabricated[0]))
    with pytest.raises(MissingWeightsError, match="roberta-base") as err:
        fresh_tokenizer.embed_text(["a song"])
    assert str(fabricated[0]) in str(err.value)


def test_dummy_tokenizer_is_refused(fresh_tokenizer):
    from magnet_eval.errors import MissingWeightsError

    class Dummy:
        vocab_size = 5

        def __len__(self):
            return 5

    fresh_tokenizer._tokenizer = Dummy()
    with pytest.raises(MissingWeightsError, match="dummy"):
        fresh_tokenizer.embed_text(["a song"])


def test_checkpoint_key_handling(tmp_path):
    """The loader's key handling on a tiny dict: 'state_dict' unwrapped, module. stripped, position_ids dropped."""
    from magnet_eval.embedders.clap import audio_model_of, read_state_dict

    path = tmp_path / "x.pt"
    torch.save({"state_dict": {"module.audio_branch.patch_embed.proj.weight": torch.zeros(128, 1, 4, 4),
                               "module.text_branch.embeddings.position_ids": torch.arange(3)[None]}}, path)
    sd = read_state_dict(path)
    assert list(sd) == ["audio_branch.patch_embed.proj.weight"]
    assert audio_model_of(sd) == "HTSAT-base"


def test_missing_checkpoint_names_file_and_cache(monkeypatch, tmp_path):
    from magnet_eval.embedders import get_embedder
    from magnet_eval.errors import MissingWeightsError

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError) as err:
        get_embedder("clap").load()
    msg = str(err.value)
    assert "music_audioset_epoch_15_esc_90.14.pt" in msg
    assert str(tmp_path / "hf" / "hub" / "models--lukewys--laion_clap") in msg
