"""A clip's tokens depend only on its seed, prompt and settings: never on its batch, its place in it or
its batch-mates' prompt lengths (CPU, float32). Also the counter-based sampler and the resume rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from magnet_eval.cli import app
from magnet_eval.cli.generate import _check_resume, batch_invariant
from magnet_eval.errors import MagnetEvalError
from magnet_eval.manifest import Manifest, ManifestEntry
from magnet_eval.models.generator import derive_seed, load_generator
from magnet_eval.models.magnet import MagnetDecoding, MagnetLM, least_probable_spans_mask
from magnet_eval.models.musicgen import MusicGenDecoding, MusicGenLM
from magnet_eval.models.sampling import ClipRandom, hash_uniform, inverse_cdf, make_generators

from helpers import seeded_lm, tiny_lm_config

CARD = 32
# mixed lengths, so the padding of a prompt changes with its batch-mates
PROMPTS = ["a", "lofi piano with soft rain and a slow drum loop", "rock", "b c", "jazz trio at night",
           "x", "ambient pad with long reverb tails", "d e f"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_lm(kind: str) -> MagnetLM | MusicGenLM:
    extra = dict(span_len=3) if kind == "magnet" else dict(delays=[0, 1, 2, 3])
    return seeded_lm(tiny_lm_config(kind, card=CARD, **extra), 0).eval()


def generate_in_batches(lm, prompts, seeds, batch_size, frames, dec):
    out = []
    for i in range(0, len(prompts), batch_size):
        cond = lm.condition(prompts[i:i + batch_size], independent=True)
        out.append(lm.generate(cond, len(cond[0]), frames, dec, generators=make_generators(seeds[i:i + batch_size])))
    return torch.cat(out)


DECODINGS = [
    ("magnet", MagnetDecoding(decoding_steps=[4, 2, 2, 2])),
    ("magnet", MagnetDecoding(decoding_steps=[4, 2, 2, 2], span_arrangement="stride1", span_scoring="prod",
                              top_p=0.0, top_k=8)),
    ("musicgen", MusicGenDecoding(top_k=8)),
    ("musicgen", MusicGenDecoding(top_k=0, top_p=0.8, cfg_coef=2.0)),
]


@pytest.mark.parametrize("kind,dec", DECODINGS)
def test_tokens_per_clip_identical_for_batch_1_2_and_8(kind, dec):
    lm = tiny_lm(kind)
    seeds = [derive_seed(5, i) for i in range(len(PROMPTS))]
    frames = 21
    runs = {bs: generate_in_batches(lm, PROMPTS, seeds, bs, frames, dec) for bs in (1, 2, 8)}
    assert torch.equal(runs[1], runs[2]) and torch.equal(runs[1], runs[8])
    # and not trivially: the clips differ from each other, and another seed changes a clip
    assert len({tuple(c.flatten().tolist()) for c in runs[8]}) == len(PROMPTS)
    other = generate_in_batches(lm, PROMPTS[:1], [seeds[0] + 1], 1, frames, dec)
    assert not torch.equal(other[0], runs[1][0])


@pytest.mark.parametrize("kind,dec", DECODINGS[::2])
def test_position_in_batch_does_not_matter(kind, dec):
    lm = tiny_lm(kind)
    seeds = [derive_seed(1, i) for i in range(4)]
    prompts = PROMPTS[:4]
    fwd = generate_in_batches(lm, prompts, seeds, 4, 15, dec)
    rev = generate_in_batches(lm, prompts[::-1], seeds[::-1], 4, 15, dec)
    assert torch.equal(fwd, rev.flip(0))


@pytest.mark.parametrize("model", ["magnet-tiny", "musicgen-tiny"])
def test_generator_short_prompt_beside_a_long_one_equals_it_alone(model):
    """The case today's code got wrong: padded condition keys took softmax mass, so a short prompt's
    clip changed when batched with a longer one (the real presets' text encoder, the Generator API)."""
    g = load_generator(model)
    kw = {"decoding_steps": [3, 2, 2, 2]} if g.kind == "magnet" else {}
    prompts = ["rock", "a long and winding prompt about lofi piano, soft rain and a slow drum loop", "jazz"]
    seeds = [11, 12, 13]
    codes_1, wav_1, _ = g.generate(prompts, duration=0.5, seeds=seeds, batch_size=1, **kw)
    codes_3, wav_3, _ = g.generate(prompts, duration=0.5, seeds=seeds, batch_size=3, **kw)
    assert torch.equal(codes_1, codes_3)
    assert np.array_equal(wav_1, wav_3)  # audio too: the codec decodes one clip per call on CPU


def test_padded_cross_attention_keys_are_masked_in_generation_only():
    lm = tiny_lm("magnet")
    cond = lm.condition(["rock", "a much longer prompt with many words"])
    alone = lm.condition(["rock"])
    assert cond[0].shape[1] > alone[0].shape[1]  # "rock" is padded in the batch
    codes = torch.randint(0, CARD, (2, 4, 9))
    with torch.no_grad():
        batched = lm(codes, None, 0, cross_kv=lm.cross_kv(cond))
        single = lm(codes[:1], None, 0, cross_kv=lm.cross_kv(alone))
        unmasked = lm(codes, cond, 0)  # the plain forward keeps audiocraft's unmasked cross-attention
    assert torch.allclose(batched[0], single[0], atol=1e-6)
    assert (unmasked[0] - single[0]).abs().max() > 1e-4
    assert torch.allclose(unmasked[1], batched[1], atol=1e-6)  # an unpadded row is the same either way
    null = (torch.zeros_like(cond[0]), torch.zeros_like(cond[1]))
    with torch.no_grad():  # the all-masked null condition is the no-condition forward
        assert torch.allclose(lm(codes, None, 0, cross_kv=lm.cross_kv(null)), lm(codes, None, 0), atol=1e-6)


# ---- the counter-based sampler ----------------------------------------------------------------------
def test_uniforms_depend_on_key_stream_and_position_only():
    keys = torch.tensor([derive_seed(0, i) for i in range(6)])
    index = torch.arange(50).view(5, 10)
    u = hash_uniform(keys, 7, index)
    assert u.shape == (6, 5, 10) and u.dtype == torch.float32 and (u >= 0).all() and (u < 1).all()
    assert torch.equal(hash_uniform(keys[3:4], 7, index)[0], u[3])  # alone or in a batch
    assert torch.equal(hash_uniform(keys.flip(0), 7, index).flip(0), u)  # any position
    assert not torch.equal(hash_uniform(keys, 8, index), u)  # another stream
    assert torch.equal(ClipRandom([derive_seed(0, 3)]).uniform(7, (5, 10))[0], u[3])
    many = hash_uniform(keys, 1, torch.arange(20000)).flatten()
    hist = torch.histc(many, bins=10, min=0, max=1) / many.numel()
    assert (hist - 0.1).abs().max() < 0.01  # uniform enough
    corr = torch.corrcoef(torch.stack([many[:-1], many[1:]]))[0, 1]
    assert corr.abs() < 0.02  # neighbouring positions are not correlated


def test_inverse_cdf_by_hand_and_never_a_zero_mass_token():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.5, 0.5, 0.0]])
    u = torch.tensor([0.05, 0.2])
    assert inverse_cdf(probs, u)[:, 0].tolist() == [0, 1]
    assert inverse_cdf(probs, torch.tensor([0.1, 0.5]))[:, 0].tolist() == [2, 2]  # cdf > u * total, not >=
    top = torch.tensor([1 - 2 ** -24, 1 - 2 ** -24])
    assert inverse_cdf(probs, top)[:, 0].tolist() == [3, 2]  # rounding at the top: the last token with mass
    draws = inverse_cdf(probs[:1].expand(20000, -1), hash_uniform(torch.tensor([9]), 0, torch.arange(20000))[0])
    freq = torch.bincount(draws[:, 0], minlength=4).float() / 20000
    assert freq[1] == 0 and torch.allclose(freq, probs[0], atol=0.015)


def test_one_batched_draw_per_step_whatever_the_batch(monkeypatch):
    """No loop over rows: the number of draws per generation does not grow with the batch."""
    calls = []
    real = ClipRandom.uniform
    monkeypatch.setattr(ClipRandom, "uniform", lambda self, stream, shape: calls.append(len(self)) or
                        real(self, stream, shape))
    for kind, dec in (DECODINGS[0], DECODINGS[2]):
        lm = tiny_lm(kind)
        counts = []
        for bs in (1, 8):
            calls.clear()
            cond = lm.condition(PROMPTS[:bs], independent=True)
            lm.generate(cond, bs, 12, dec, generators=make_generators(range(bs)))
            counts.append(len(calls))
            assert all(n == bs for n in calls)
        assert counts[0] == counts[1] == lm.last_stats["forward_passes"]


def test_stride1_masking_batched_equals_row_by_row():
    torch.manual_seed(2)
    scores = torch.rand(6, 23)
    scores[1, 4:9] = -1e4
    for n in (1, 3, 7, 12, 23):
        batched = least_probable_spans_mask(scores, n, 3)
        for b in range(6):
            assert torch.equal(batched[b], least_probable_spans_mask(scores[b], n, 3))
            assert 3 <= int(batched[b].sum()) <= max(n, 3)


# ---- the resume rule --------------------------------------------------------------------------------
def test_resume_with_another_batch_size_on_cpu_float32_is_byte_identical(tmp_path):
    prompts = Manifest([ManifestEntry(id=f"c{i}", caption=p) for i, p in enumerate(PROMPTS[:5])])
    mpath = prompts.write(tmp_path / "prompts.jsonl")
    base = ["generate", "-m", "magnet-tiny", "-p", str(mpath), "-d", "0.4", "--seed", "2",
            "--decoding-steps", "3,2,2,2"]
    fresh, out = tmp_path / "fresh", tmp_path / "run"
    assert CliRunner().invoke(app, base + ["-b", "4", "-o", str(fresh)]).exit_code == 0
    assert CliRunner().invoke(app, base + ["-b", "4", "-o", str(out)]).exit_code == 0
    # as if killed while writing the first batch: c2..c4 not logged; they are redone in other batches
    # ([c2, c3] and [c4] instead of [c0..c3] and [c4]), so with other padding than the first time
    lines = (out / "log.jsonl").read_text().splitlines()
    (out / "log.jsonl").write_text("\n".join(ln for ln in lines if json.loads(ln)["id"] in ("c0", "c1")) + "\n")
    for i in (2, 3, 4):
        (out / f"c{i}.wav").unlink()
    res = CliRunner().invoke(app, base + ["-b", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    for i in range(5):
        assert (out / f"c{i}.wav").read_bytes() == (fresh / f"c{i}.wav").read_bytes(), i
    assert sf.info(str(out / "c4.wav")).frames > 0


def test_resume_refuses_another_batch_size_where_not_invariant_and_other_options(tmp_path):
    settings = {"model": "magnet-tiny", "dtype": "float16", "seed": 0}
    done = {"a": {"id": "a", "settings": settings, "batch_size": 8, "device": "cuda:0"}}
    _check_resume(tmp_path, done, settings, 8, "cuda:1")  # same batch size: fine
    with pytest.raises(MagnetEvalError, match="--batch-size 8"):
        _check_resume(tmp_path, done, settings, 4, "cuda:0")
    with pytest.raises(MagnetEvalError, match="generated on cuda"):
        _check_resume(tmp_path, done, settings, 8, "cpu")
    with pytest.raises(MagnetEvalError, match="other settings"):
        _check_resume(tmp_path, done, {**settings, "seed": 1}, 8, "cuda:0")
    cpu = {"a": {"id": "a", "settings": {**settings, "dtype": "float32"}, "batch_size": 8, "device": "cpu"}}
    _check_resume(tmp_path, cpu, {**settings, "dtype": "float32"}, 3, "cpu")  # bit-invariant there
    with pytest.raises(MagnetEvalError, match="--batch-size 8"):  # CPU but bfloat16: refused
        _check_resume(tmp_path, {"a": {**cpu["a"], "settings": {**settings, "dtype": "bfloat16"}}},
                      {**settings, "dtype": "bfloat16"}, 3, "cpu")
    assert batch_invariant("cpu", "float32") and not batch_invariant("cuda:0", "float32")


def test_resume_refuses_other_decoding_options_via_the_cli(tmp_path):
    base = ["generate", "-m", "musicgen-tiny", "-p", "a calm piano", "-d", "0.2", "-o", str(tmp_path / "o")]
    assert CliRunner().invoke(app, base).exit_code == 0
    res = CliRunner().invoke(app, base + ["--top-k", "5"])
    assert res.exit_code != 0 and isinstance(res.exception, MagnetEvalError)
    assert "other settings" in str(res.exception)


def test_streams_advance_without_a_step_number_and_generator_lists_still_work():
    from magnet_eval.models.sampling import sample_from_probs

    probs = torch.full((3, 40, 16), 1 / 16)
    rng = ClipRandom([1, 2, 3])
    a, b = sample_from_probs(probs, generators=rng), sample_from_probs(probs, generators=rng)
    assert not torch.equal(a, b)  # stream=None: the next stream, not the same draws again
    again = ClipRandom([1, 2, 3])
    assert torch.equal(sample_from_probs(probs, generators=again), a)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (4, 5, 6)]  # noqa: E731
    g1 = gens()
    x, y = sample_from_probs(probs, generators=g1), sample_from_probs(probs, generators=g1)
    assert not torch.equal(x, y)
    g2 = gens()
    assert torch.equal(sample_from_probs(probs, generators=g2), x)
    assert torch.equal(sample_from_probs(probs[1:2], generators=gens()[1:2]), x[1:2])  # per row
