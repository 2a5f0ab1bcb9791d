"""Token and condition caches: computed once, keyed by codec hash and audio content; splits; crops."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from magnet_eval.errors import ManifestError
from magnet_eval.manifest import Manifest, ManifestEntry
from magnet_eval.solvers.tokens import (
    TokenSet,
    encode_clips,
    encode_texts,
    split_entries,
    state_dict_sha256,
    training_entries,
)

SR = 8000


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "cache"))


def _wav(path, freq, seconds=0.5):
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), SR, subtype="PCM_16")
    return path


class CountingCodec:
    """Frames of 80 samples; the token is the quantised frame energy (enough to tell clips apart)."""

    def __init__(self, offset=0):
        self.calls = 0
        self.offset = offset

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        frames = wav[0, 0, : wav.shape[-1] // 80 * 80].reshape(-1, 80)
        tok = (frames.abs().mean(-1) * 100).long() + self.offset
        return torch.stack([tok, tok + 1])[None]


def test_tokens_are_computed_once_and_keyed_by_content(tmp_path):
    a = _wav(tmp_path / "a.wav", 220)
    b = _wav(tmp_path / "b.wav", 440)
    codec = CountingCodec()
    first = encode_clips([a, b], codec, SR, "codec-hash-1")
    assert codec.calls == 2 and first[0].shape == (2, 50) and first[0].dtype == torch.int64
    again = encode_clips([a, b], codec, SR, "codec-hash-1")
    assert codec.calls == 2  # all from the cache
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    # same content under another name: still cached (keyed by content, not path)
    import shutil

    c = tmp_path / "copy_of_a.wav"
    shutil.copy(a, c)
    encode_clips([c], codec, SR, "codec-hash-1")
    assert codec.calls == 2
    # edited audio: re-encoded
    _wav(a, 330, seconds=0.6)
    edited = encode_clips([a], codec, SR, "codec-hash-1")
    assert codec.calls == 3 and edited[0].shape == (2, 60)
    # another codec checkpoint: everything re-encoded with it
    other = CountingCodec(offset=5)
    encoded = encode_clips([b], other, SR, "codec-hash-2")
    assert other.calls == 1 and torch.equal(encoded[0], first[1] + 5)


def test_corrupt_cache_file_is_recomputed(tmp_path):
    a = _wav(tmp_path / "a.wav", 220)
    codec = CountingCodec()
    encode_clips([a], codec, SR, "k")
    cache_files = list((tmp_path / "cache" / "tokens").rglob("*.npy"))
    assert len(cache_files) == 1
    cache_files[0].write_bytes(b"garbage")
    out = encode_clips([a], codec, SR, "k")
    assert codec.calls == 2 and out[0].shape == (2, 50)


def test_text_conditions_cached_without_padding():
    calls = []

    def encode_raw(texts):
        calls.append(list(texts))
        S = max(len(t.split()) for t in texts)
        emb = torch.zeros(len(texts), S, 4)
        mask = torch.zeros(len(texts), S)
        for i, t in enumerate(texts):
            n = len(t.split())
            emb[i, :n] = torch.arange(n, dtype=torch.float32)[:, None] + i
            mask[i, :n] = 1
        return emb, mask

    texts = ["one two three", "four", "one two three"]
    out = encode_texts(texts, encode_raw, "toy-encoder")
    assert [o.shape[0] for o in out] == [3, 1, 3]
    assert calls == [["one two three"], ["four"]]  # duplicates encoded once, each caption alone
    again = encode_texts(["four", "five six"], encode_raw, "toy-encoder")
    assert calls[-1] == ["five six"] and torch.equal(again[0], out[1])
    encode_texts(["four"], encode_raw, "another-encoder")
    assert calls[-1] == ["four"]


def test_a_caption_condition_does_not_depend_on_its_batch_mates_or_threads(tmp_path, monkeypatch):
    """The cached condition of a caption is the same whether it was missing from the cache alone or with
    other captions (the toy encoder, like a real one, sees the batch's padded length), and the encoder
    runs on one thread whatever the caller's count."""
    from magnet_eval.solvers import tokens

    seen_threads = []

    def encode_raw(texts):  # padding-sensitive like a real encoder: rows see the batch's longest length
        seen_threads.append(torch.get_num_threads())
        S = max(len(t) for t in texts)
        emb = torch.zeros(len(texts), S, 3)
        mask = torch.zeros(len(texts), S)
        for i, t in enumerate(texts):
            emb[i, :len(t)] = torch.tensor([float(ord(c)) for c in t])[:, None] / S
            mask[i, :len(t)] = 1
        return emb, mask

    texts = ["a short one", "a much longer caption about drums and bass", "mid length text"]
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "a"))
    torch.set_num_threads(2)
    together = encode_texts(texts, encode_raw, "toy")
    monkeypatch.setenv("MAGNET_EVAL_CACHE", str(tmp_path / "b"))
    alone = [encode_texts([t], encode_raw, "toy")[0] for t in texts]
    for x, y in zip(together, alone):
        assert torch.equal(x, y)
    assert set(seen_threads) == {1} and torch.get_num_threads() == 2  # one thread inside, restored after
    assert tokens.condition_dir("toy").name == tokens.CONDITIONS_LAYOUT


def test_crops_and_condition_batches():
    codes = [torch.arange(40).view(2, 20) + 100 * i for i in range(3)]
    conds = [torch.ones(n, 3) * n for n in (2, 5, 3)]
    ts = TokenSet(["a", "b", "c"], codes, ["", "", ""], conds)
    g = torch.Generator().manual_seed(0)
    batch = ts.crop([0, 2], 8, g)
    assert batch.shape == (2, 2, 8)
    for row, i in zip(batch, (0, 2)):
        start = int(row[0, 0]) - 100 * i
        assert torch.equal(row, codes[i][:, start : start + 8])
    fixed = ts.crop([1], 8, random_offset=False)
    assert torch.equal(fixed[0], codes[1][:, :8])
    emb, mask = ts.condition_batch([0, 1])
    assert emb.shape == (2, 5, 3) and mask.tolist() == [[True, True, False, False, False], [True] * 5]
    assert torch.all(emb[0, 2:] == 0)


def test_splits_from_labels_and_fallback(tmp_path):
    a = _wav(tmp_path / "a.wav", 220)
    entries = [ManifestEntry(f"x{i}", "c", str(a), labels={"split": s}) for i, s in enumerate(["train"] * 5 + ["valid"] * 2 + ["test"])]
    m = Manifest(entries)
    train, valid = training_entries(m)
    assert len(train) == 5 and len(valid) == 2
    unlabelled = Manifest([ManifestEntry(f"y{i}", "c", str(a)) for i in range(200)])
    tr, va = split_entries(unlabelled, "train"), split_entries(unlabelled, "valid")
    assert len(tr) + len(va) == 200 and 5 <= len(va) <= 40
    assert not set(tr.ids()) & set(va.ids())
    with pytest.raises(ManifestError):
        training_entries(Manifest([ManifestEntry("z", "c", str(tmp_path / "missing.wav"))]))


def test_state_dict_hash_sees_values():
    a = {"w": torch.zeros(3), "b": torch.tensor(1.0)}
    b = {"w": torch.zeros(3), "b": torch.tensor(1.0)}
    c = {"w": torch.zeros(3), "b": torch.tensor(2.0)}
    assert state_dict_sha256(a) == state_dict_sha256(b) != state_dict_sha256(c)
