"""Audio prompts (continuation, as audiocraft's generate_continuation) and MusicGen past its trained segment
(a sliding window, as audiocraft's extend_stride)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import seeded_lm, tiny_lm_config

from magnet_eval.errors import MagnetEvalError
from magnet_eval.models.lm import LMConfig
from magnet_eval.models.magnet import MagnetDecoding, MagnetLM
from magnet_eval.models.musicgen import MusicGenDecoding, MusicGenLM
from magnet_eval.models.sampling import make_generators

CARD = 32
PROMPTS = ["a", "lofi piano with soft rain", "rock"]
SEEDS = [21, 22, 23]


pytestmark = pytest.mark.usefixtures("one_thread")


def magnet_lm() -> MagnetLM:
    return seeded_lm(tiny_lm_config("magnet", card=CARD, span_len=3)).eval()


def musicgen_lm(segment: float = 10.0) -> MusicGenLM:
    torch.manual_seed(1)
    return MusicGenLM(LMConfig(kind="musicgen", dim=32, num_heads=4, num_layers=2, n_q=4, card=CARD, causal=True,
                               pattern="delay", delays=[0, 1, 2, 3], subcodes_context=None, text_encoder="random",
                               text_dim=24, segment_duration=segment)).eval()


def prompt_codes(frames: int, batch: int = 3) -> torch.Tensor:
    torch.manual_seed(9)
    return torch.randint(0, CARD, (batch, 4, frames))


def gen(lm, dec, frames, prompt=None, prompts=PROMPTS, seeds=SEEDS):
    cond = lm.condition(prompts, independent=True)
    return lm.generate(cond, len(prompts), frames, dec, generators=make_generators(seeds), prompt=prompt)


@pytest.mark.parametrize("arrangement,P", [("nonoverlap", 7), ("nonoverlap", 9), ("stride1", 8)])
def test_magnet_keeps_the_prompt_tokens(arrangement, P):
    lm = magnet_lm()
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2], span_arrangement=arrangement)
    prompt = prompt_codes(P)
    out = gen(lm, dec, 30, prompt)
    assert torch.equal(out[..., :P], prompt)
    assert (out < CARD).all()
    plain = gen(lm, dec, 30)
    assert not torch.equal(out[..., P:], plain[..., P:])  # the continuation is conditioned on the prompt
    # batch-invariant with a prompt
    alone = torch.cat([gen(lm, dec, 30, prompt[i:i + 1], [p], [s]) for i, (p, s) in enumerate(zip(PROMPTS, SEEDS))])
    assert torch.equal(out, alone)


def test_magnet_prompt_and_hybrid_prefix():
    """An audio prompt, then autoregressive frames up to the hybrid prefix, then parallel decoding."""
    lm = magnet_lm()
    prompt = prompt_codes(5)
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2], hybrid_prefix=12 / 50.0)
    out = gen(lm, dec, 30, prompt)
    assert torch.equal(out[..., :5], prompt)
    assert lm.last_stats["autoregressive_forward_passes"] == 7


def test_musicgen_keeps_the_prompt_tokens():
    lm = musicgen_lm()
    dec = MusicGenDecoding()
    prompt = prompt_codes(6)
    out = gen(lm, dec, 20, prompt)
    assert torch.equal(out[..., :6], prompt)
    assert (out < CARD).all()
    # one prefill pass for the prompt's steps, then one per remaining step
    assert lm.last_stats["forward_passes"] == 1 + (20 + 3 + 1 - 7)
    other = gen(lm, dec, 20, prompt_codes(6).roll(1, dims=-1))
    assert not torch.equal(out[..., 6:], other[..., 6:])
    alone = torch.cat([gen(lm, dec, 20, prompt[i:i + 1], [p], [s]) for i, (p, s) in enumerate(zip(PROMPTS, SEEDS))])
    assert torch.equal(out, alone)


def test_musicgen_prefill_matches_stepwise_decoding():
    """Greedy continuation: the prompt fed in one cached pass gives what feeding it step by step gives."""
    lm = musicgen_lm()
    dec = MusicGenDecoding(use_sampling=False)
    prompt = prompt_codes(6, batch=1)
    cond = lm.condition(["x"])
    out = lm.generate(cond, 1, 14, dec, prompt=prompt)
    # reference: teacher-forced logits over the result; each generated frame is the argmax given what precedes
    logits, valid = lm.compute_predictions(out, None)
    cfg = lm.compute_predictions(out, cond)[0]
    guided = logits + (cfg - logits) * dec.cfg_coef
    for k in range(4):
        v = valid[0, k, 6:]  # the last frames of the delayed codebooks have no teacher-forced prediction
        assert v.sum() >= 5
        assert torch.equal(out[0, k, 6:][v], guided[0, k, 6:].argmax(-1)[v]), k


def test_musicgen_slides_a_window_past_its_segment():
    lm = musicgen_lm(segment=0.4)  # 20 frames at 50 Hz
    dec = MusicGenDecoding(extend_stride=0.2)  # 10 frames per window, 10 frames of context
    out = gen(lm, dec, 45)
    assert out.shape == (3, 4, 45) and (out < CARD).all()
    assert lm.last_stats["windows"] == 4  # 20 + 10 + 10 + 5 frames
    first = gen(lm, dec, 20)
    assert torch.equal(out[..., :20], first)  # the first window is a plain generation of the segment
    # window 2 continues frames 10..19 as its prompt: regenerate it by hand with the same streams
    from magnet_eval.models.musicgen import WINDOW_STREAMS

    cond = lm.condition(PROMPTS, independent=True)
    w1 = lm._generate_window(cond, 3, 20, dec, make_generators(SEEDS), None, out[..., 10:20], WINDOW_STREAMS)
    assert torch.equal(out[..., 20:30], w1[..., 10:])
    alone = torch.cat([gen(lm, dec, 45, None, [p], [s]) for p, s in zip(PROMPTS, SEEDS)])
    assert torch.equal(out, alone)
    with pytest.raises(ValueError, match="extend_stride"):
        gen(lm, MusicGenDecoding(extend_stride=0.4), 45)


def test_generator_prompt_audio_round_trip(tmp_path):
    from magnet_eval.models.generator import load_generator

    for name in ("magnet-tiny", "musicgen-tiny"):
        g = load_generator(name)
        sr = g.sample_rate
        t = np.arange(int(0.5 * sr)) / sr
        wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        codes = g.encode_prompt(wav, sr)
        assert codes.shape[:2] == (1, g.lm.n_q) and codes.shape[-1] == pytest.approx(0.5 * g.frame_rate, abs=1)
        out, audio, _ = g.generate(["piano", "drums"], duration=1.0, seed=0, prompt_codes=codes,
                                   **({"decoding_steps": "3,1,1,1"} if g.kind == "magnet" else {}))
        P = codes.shape[-1]
        assert torch.equal(out[:, :, :P], codes.expand(2, -1, -1))
        assert audio.shape[0] == 2
        with pytest.raises(MagnetEvalError, match="not shorter"):
            g.generate(["piano"], duration=0.5, prompt_codes=codes)


@pytest.mark.parametrize("model", ["magnet-tiny", "musicgen-tiny"])
def test_cli_prompt_audio(tmp_path, model):
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    from magnet_eval.cli import app
    from magnet_eval.models.generator import load_generator

    g = load_generator(model)
    sr = 16000  # another rate than the codec's: resampled on the way in
    t = np.arange(int(0.6 * sr)) / sr
    sf.write(tmp_path / "prompt.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    out = tmp_path / "o"
    steps = ["--decoding-steps", "3,1,1,1"] if model.startswith("magnet") else []
    args = ["generate", "-m", model, "-p", "jazz", "-d", "1.5", "-o", str(out), *steps]
    res = CliRunner().invoke(app, args + ["--prompt-audio", str(tmp_path / "prompt.wav")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    (rec,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rec["settings"]["prompt_audio"]["file"] == "prompt.wav"
    # the clip continues the prompt's tokens: the same generation through the library gives the same audio
    from magnet_eval.audio import load_audio

    wav, _ = load_audio(tmp_path / "prompt.wav", sr=g.sample_rate)
    codes = g.encode_prompt(wav, g.sample_rate)
    P = codes.shape[-1]
    assert rec["settings"]["prompt_audio"]["frames"] == P
    knobs = {"decoding_steps": "3,1,1,1"} if model.startswith("magnet") else {}
    kept, ref_audio, _ = g.generate(["jazz"], duration=1.5, seeds=[rec["sample_seed"]], prompt_codes=codes, **knobs)
    assert torch.equal(kept[:, :, :P], codes)
    audio, _ = sf.read(out / "p000.wav")
    n = min(len(audio), ref_audio.shape[-1])
    assert np.allclose(audio[:n], ref_audio[0, :n], atol=1e-4)
    res = CliRunner().invoke(app, args[:9] + ["-o", str(tmp_path / "x"), "--prompt-audio", str(tmp_path / "missing.wav")])
    assert res.exit_code != 0 and "missing.wav" in str(res.exception)


def test_musicgen_long_prompt_is_continued_by_windows():
    lm = musicgen_lm(segment=0.4)  # 20 frames
    prompt = prompt_codes(25)
    out = gen(lm, MusicGenDecoding(extend_stride=0.2), 40, prompt)
    assert out.shape[-1] == 40 and torch.equal(out[..., :25], prompt) and (out < CARD).all()
