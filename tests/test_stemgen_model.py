"""StemGen model and sampler: channel concatenation, multi-source CFG (formula, one batch), causal bias, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from magnet_eval.errors import MagnetEvalError
from magnet_eval.models.stemgen import (
    STEMGEN_PRESETS,
    StemGenConfig,
    StemGenDecoding,
    StemGenLM,
    cfg_rows,
    multi_source_cfg,
    select_unmasked,
    stemgen_preset_config,
    unmask_ranking,
    unmasked_schedule,
)
from magnet_eval.models.sampling import make_generators


pytestmark = pytest.mark.usefixtures("one_thread")


def _small(seed: int = 0) -> StemGenLM:
    torch.manual_seed(seed)
    cfg = StemGenConfig(dim=32, num_heads=2, num_layers=1, n_q=2, card=16, codec="none")
    return StemGenLM(cfg).eval()


def _codes(B: int, T: int, card: int = 16, n_q: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, card, (B, n_q, T), generator=torch.Generator().manual_seed(seed))


# ---- multi-source CFG --------------------------------------------------------------------------------
def test_multi_source_cfg_matches_hand_computation():
    # logits that are already log-probabilities, so log_softmax leaves them unchanged
    u = torch.tensor([0.5, 0.25, 0.25]).log()
    a = torch.tensor([0.25, 0.5, 0.25]).log()  # context only
    b = torch.tensor([0.25, 0.25, 0.5]).log()  # instrument only
    out = multi_source_cfg(u, [a, b], [2.0, 1.0])
    # by hand: log u + 2 (log a - log u) + 1 (log b - log u)
    #   token 0: log .5 + 2 log .5 + log .5 = log(1/16); token 1: log .25 + 2 log 2 = 0; token 2: log .25 + log 2
    expected = torch.tensor([math.log(1 / 16), 0.0, math.log(0.5)])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    # logits are normalised first: shifting any of them by a constant changes nothing
    torch.testing.assert_close(multi_source_cfg(u + 3.0, [a - 1.0, b + 7.0], [2.0, 1.0]), expected, atol=1e-5, rtol=0)


def test_multi_source_cfg_limits():
    g = torch.Generator().manual_seed(0)
    u, a, b = (torch.randn(2, 5, 11, generator=g) for _ in range(3))
    torch.testing.assert_close(multi_source_cfg(u, [a, b], [0.0, 0.0]), torch.log_softmax(u, -1))
    torch.testing.assert_close(multi_source_cfg(u, [a, b], [1.0, 0.0]), torch.log_softmax(a, -1))
    with pytest.raises(ValueError):
        multi_source_cfg(u, [a, b], [1.0])


def test_cfg_rows_layout():
    ctx = _codes(2, 5)
    ins = torch.tensor([3, 4])
    c, i = cfg_rows(ctx, ins, null_context=16, null_instrument=19)
    assert c.shape == (6, 2, 5) and i.tolist() == [19, 19, 19, 19, 3, 4]
    assert (c[:2] == 16).all() and torch.equal(c[2:4], ctx) and (c[4:] == 16).all()


def test_guidance_uses_one_batched_forward_per_step_and_the_formula():
    model = _small()
    B, T = 2, 6
    ctx, ins = _codes(B, T), torch.tensor([1, 2])
    calls = []
    model.transformer.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    dec = StemGenDecoding(decoding_steps=[3, 2], cfg_weights=(2.0, 0.5))
    model.generate(ctx, ins, dec, seeds=[0, 1])
    assert calls == [3 * B] * 5  # one forward of 3B rows per iteration
    # the guided log-probs equal the formula applied to three separate passes
    target = torch.full((B, 2, T), 16)
    guided = model._guided_logprobs(ctx, target, ins, 0, dec)
    null_c, null_i = torch.full_like(ctx, 16), torch.full_like(ins, model.null_instrument)
    with torch.no_grad():
        lu = model(null_c, target, null_i, codebooks=[0])[:, 0]
        lc = model(ctx, target, null_i, codebooks=[0])[:, 0]
        li = model(null_c, target, ins, codebooks=[0])[:, 0]
    lp = [torch.log_softmax(x, -1) for x in (lu, lc, li)]
    torch.testing.assert_close(guided, lp[0] + 2.0 * (lp[1] - lp[0]) + 0.5 * (lp[2] - lp[0]), atol=1e-5, rtol=1e-5)


def test_no_guidance_is_one_conditional_pass():
    model = _small()
    calls = []
    model.transformer.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    model.generate(_codes(3, 4), torch.tensor([0, 1, 2]), StemGenDecoding([2, 1], cfg_weights=None), seeds=[0, 1, 2])
    assert calls == [3, 3, 3]


# ---- causal bias --------------------------------------------------------------------------------------
T_FR, N_ROWS, K_FIRST = 40, 600, 4


def _first_unmasked_positions(bias: float, seed: int = 0) -> torch.Tensor:
    """Positions of the K_FIRST frames unmasked first, for N_ROWS independent seeds (position-free confidence)."""
    gens = make_generators(range(seed, seed + N_ROWS))
    conf = torch.rand(N_ROWS, T_FR, generator=torch.Generator().manual_seed(seed + 99))
    rank = unmask_ranking(conf, causal_bias=bias, generators=gens)
    keep = select_unmasked(rank, torch.ones(N_ROWS, T_FR, dtype=torch.bool), K_FIRST)
    return torch.nonzero(keep)[:, 1].float().view(N_ROWS, K_FIRST)


def _null_sd_of_mean() -> float:
    """SD of the grand mean position when K of T frames are drawn uniformly without replacement, per row."""
    var_pos = (T_FR ** 2 - 1) / 12.0
    var_row_mean = var_pos / K_FIRST * (T_FR - K_FIRST) / (T_FR - 1)
    return math.sqrt(var_row_mean / N_ROWS)


def test_causal_bias_unmasks_earlier_frames_first():
    centre, sd = (T_FR - 1) / 2, _null_sd_of_mean()
    for bias in (0.1, 0.5):  # the paper's weight, and a stronger one
        mean = _first_unmasked_positions(bias).mean().item()
        assert mean < centre - 5 * sd, (bias, mean, centre, sd)
    assert _first_unmasked_positions(0.5).mean() < _first_unmasked_positions(0.1).mean()


def test_zero_bias_order_does_not_depend_on_position():
    centre, sd = (T_FR - 1) / 2, _null_sd_of_mean()
    mean = _first_unmasked_positions(0.0).mean().item()
    assert abs(mean - centre) < 4 * sd, (mean, centre, sd)
    # correlation between position and rank over all frames: ~ N(0, 1/n) under independence
    gens = make_generators(range(N_ROWS))
    conf = torch.rand(N_ROWS, T_FR, generator=torch.Generator().manual_seed(5))
    rank = unmask_ranking(conf, causal_bias=0.0, generators=gens)
    pos = torch.arange(T_FR).float().expand(N_ROWS, T_FR)
    r = torch.corrcoef(torch.stack([pos.flatten(), rank.flatten()]))[0, 1].item()
    assert abs(r) < 4 / math.sqrt(N_ROWS * T_FR), r
    rank_b = unmask_ranking(conf, causal_bias=0.5, generators=make_generators(range(N_ROWS)))
    r_b = torch.corrcoef(torch.stack([pos.flatten(), rank_b.flatten()]))[0, 1].item()
    assert r_b < -4 / math.sqrt(N_ROWS * T_FR), r_b


def test_causal_bias_through_generate():
    model = _small(1)
    B, T = 48, 24
    ctx, ins = _codes(B, T, seed=3), torch.randint(0, 5, (B,), generator=torch.Generator().manual_seed(4))

    def first_positions(bias: float) -> float:
        trace: list = []
        dec = StemGenDecoding(decoding_steps=[4, 1], cfg_weights=None, causal_bias=bias)
        model.generate(ctx, ins, dec, seeds=range(B), trace=trace)
        first = [p for row in trace[0]["unmasked"] for p in row]
        return sum(first) / len(first)

    assert first_positions(2.0) < first_positions(0.0) - 3.0


def test_unmasked_schedule():
    for steps, T in ((128, 500), (4, 10), (32, 499), (5, 3)):
        s = unmasked_schedule(steps, T)
        assert len(s) == steps and sum(s) == T and all(x >= 0 for x in s)
        assert all(x >= 1 for x in s[:min(steps, T)])
    assert unmasked_schedule(4, 10) == [1, 2, 4, 3]  # 10 cos(pi/8 * i) floored: 9, 7, 3, 0 still masked


# ---- model and seeds ----------------------------------------------------------------------------------
def test_channels_are_concatenated_and_instrument_added():
    model = _small()
    ctx, tgt = _codes(2, 5, seed=1), _codes(2, 5, seed=2)
    ins = torch.tensor([0, 3])
    e = model.embed(ctx, tgt, ins)
    half = model.cfg.dim // 2
    e2 = model.embed(ctx, _codes(2, 5, seed=7), ins)  # another target: the context half is unchanged
    torch.testing.assert_close(e[..., :half], e2[..., :half])
    assert not torch.allclose(e[..., half:], e2[..., half:])
    inst = model.instrument_emb(ins)[:, None, :]
    ctx_sum = sum(model.context_emb[k](ctx[:, k]) for k in range(2))
    torch.testing.assert_close(e[..., :half] - inst[..., :half], ctx_sum)
    assert model(ctx, tgt, ins).shape == (2, 2, 5, 16)


def test_same_seed_same_tokens_and_batch_independence():
    model = _small()
    ctx, ins = _codes(3, 8), torch.tensor([0, 1, 2])
    dec = StemGenDecoding(decoding_steps=[3, 2])
    a = model.generate(ctx, ins, dec, seeds=[5, 6, 7])
    b = model.generate(ctx, ins, dec, seeds=[5, 6, 7])
    c = model.generate(ctx, ins, dec, seeds=[8, 9, 10])
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 16  # no mask token left
    alone = model.generate(ctx[1:2], ins[1:2], dec, seeds=[6])
    assert torch.equal(alone[0], a[1])  # a sample depends on its own seed, not on its batch mates


def test_unknown_instrument_and_bad_decoding():
    model = _small()
    assert model.instrument_ids(["bass", "Drums"]).tolist() == [4, 16]
    with pytest.raises(MagnetEvalError, match="unknown instrument 'kazoo'"):
        model.instrument_ids(["kazoo"])
    with pytest.raises(MagnetEvalError, match="decoding_steps"):
        model.generate(_codes(1, 4), torch.tensor([0]), StemGenDecoding([2, 2, 2]))
    with pytest.raises(MagnetEvalError):
        StemGenDecoding(cfg_weights=(1.0,))


def test_training_loss_learns():
    model = _small().train()
    ctx, tgt = _codes(4, 12, seed=1), _codes(4, 12, seed=2)
    ins = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss, stats = model.training_loss(ctx, tgt, ins, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert stats["stage"] in (0.0, 1.0)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.5


def test_presets():
    tiny = stemgen_preset_config("stemgen-tiny")
    paper = stemgen_preset_config("stemgen-paper")
    assert tiny.codec == "tiny" and paper.codec == "encodec_32khz"
    with torch.device("meta"):  # count without allocating 243M weights
        n_paper = sum(p.numel() for p in StemGenLM(paper).parameters())
    assert 0.9 * 250e6 < n_paper < 1.1 * 250e6  # the paper's ~250M
    n_tiny = sum(p.numel() for p in StemGenLM(tiny).parameters())
    assert n_tiny < 10e6

    class FakeCodec:
        n_q, card, frame_rate, sample_rate = 8, 1024, 75.0, 24000

    c = stemgen_preset_config("stemgen-tiny", FakeCodec())
    assert (c.n_q, c.card, c.frame_rate, c.sample_rate) == (8, 1024, 75.0, 24000)
    with pytest.raises(MagnetEvalError, match="unknown StemGen preset"):
        stemgen_preset_config("stemgen-huge")
    assert set(STEMGEN_PRESETS) == {"stemgen-tiny", "stemgen-paper"}


# ---- checkpoints and the `stem` command -------------------------------------------------------------
def test_checkpoint_round_trip_and_bad_files(tmp_path):
    from magnet_eval.errors import CheckpointError
    from magnet_eval.models.stemgen import load_stemgen, save_stemgen

    model = _small(3)
    path = save_stemgen(model, tmp_path / "stemgen.pt")
    back = load_stemgen(path)
    ctx, tgt, ins = _codes(1, 5), _codes(1, 5, seed=1), torch.tensor([2])
    torch.testing.assert_close(back(ctx, tgt, ins), model(ctx, tgt, ins))
    torch.save({"kind": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not a StemGen checkpoint"):
        load_stemgen(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_stemgen(tmp_path / "junk.pt")


def _context_wav(path, seconds: float = 0.4, sr: int = 32000):
    import numpy as np

    from magnet_eval.audio import save_audio

    t = np.arange(int(seconds * sr)) / sr
    return save_audio(path, (0.3 * np.sin(2 * np.pi * 220 * t) * (t * 4 % 1 < 0.5)).astype(np.float32), sr)


def test_stem_command_writes_stem_mix_and_log(tmp_path):
    import json

    from typer.testing import CliRunner

    from magnet_eval.audio import load_audio
    from magnet_eval.cli import app

    ctx = _context_wav(tmp_path / "mix.wav")
    out = tmp_path / "out"
    args = ["stem", "--context", str(ctx), "--instrument", "bass", "--out", str(out), "--model", "stemgen-tiny",
            "--decoding-steps", "2,1,1,1", "--seed", "4"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    stem, sr = load_audio(out / "mix_bass.wav")
    mix, _ = load_audio(out / "mix_bass_mix.wav")
    context, _ = load_audio(ctx)
    assert sr == 32000 and stem.shape == context.shape == mix.shape
    assert abs(stem).max() > 0
    # the mix is the context plus the stem (up to 16-bit rounding and clipping)
    assert float(abs(mix - (context + stem).clip(-1, 1)).max()) < 3 / 32768
    rec = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(rec) == 1 and rec[0]["instrument"] == "bass" and rec[0]["decoding"]["decoding_steps"] == [2, 1, 1, 1]
    # same seed -> same stem; a rerun resumes (no new log line)
    out2 = tmp_path / "out2"
    assert CliRunner().invoke(app, args[:6] + [str(out2)] + args[7:]).exit_code == 0
    assert (out2 / "mix_bass.wav").read_bytes() == (out / "mix_bass.wav").read_bytes()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert len((out / "log.jsonl").read_text().splitlines()) == 1


def test_stem_command_bad_input(tmp_path):
    from typer.testing import CliRunner

    from magnet_eval.cli import app

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    ctx = _context_wav(tmp_path / "ok.wav")
    runner = CliRunner()
    res = runner.invoke(app, ["stem", "--context", str(bad), "--instrument", "bass", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and isinstance(res.exception, MagnetEvalError) and "broken.wav" in str(res.exception)
    res = runner.invoke(app, ["stem", "--context", str(ctx), "--instrument", "kazoo", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "unknown instrument 'kazoo'" in str(res.exception)
    assert not (tmp_path / "o" / "log.jsonl").exists()


def test_stem_manifest_form(tmp_path):
    import json

    from magnet_eval.stemgen_run import read_requests, run_stem

    _context_wav(tmp_path / "a.wav", 0.2)
    _context_wav(tmp_path / "b.wav", 0.2)
    rows = [{"id": "a", "caption": "", "audio_path": "a.wav", "duration": 0.2, "labels": {"instrument": "drums"}},
            {"id": "b", "caption": "", "audio_path": "b.wav", "duration": 0.2, "labels": {}}]
    man = tmp_path / "contexts.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reqs = read_requests(man, "guitar")
    assert [(r.id, r.instrument) for r in reqs] == [("a", "drums"), ("b", "guitar")]
    with pytest.raises(MagnetEvalError, match="entry b has no labels.instrument"):
        read_requests(man, None)
    recs = run_stem("stemgen-tiny", man, tmp_path / "out", instrument="guitar", decoding_steps=[1, 1, 1, 1])
    assert [r["stem"] for r in recs] == ["a_drums.wav", "b_guitar.wav"]
    assert all((tmp_path / "out" / r["mix"]).is_file() for r in recs)


def test_training_inputs_mask_levels_and_drop_sources():
    model = _small()
    B, T = 64, 30
    ctx, tgt, ins = _codes(B, T, seed=1), _codes(B, T, seed=2), torch.randint(0, 5, (B,))
    g = torch.Generator().manual_seed(0)
    c, x, i, k, mask = model.training_inputs(ctx, tgt, ins, 0.5, 0.25, generator=g, stage=1)
    assert k == 1 and mask.shape == (B, T) and mask.any(-1).all()
    assert torch.equal(x[:, 0], tgt[:, 0])  # earlier level given
    assert torch.equal(x[:, 1][mask], torch.full_like(tgt[:, 1][mask], 16))
    assert torch.equal(x[:, 1][~mask], tgt[:, 1][~mask])
    dropped_c = (c == 16).all(-1).all(-1)
    assert torch.equal(c[~dropped_c], ctx[~dropped_c])
    dropped_i = i == model.null_instrument
    assert torch.equal(i[~dropped_i], ins[~dropped_i])
    assert 16 <= int(dropped_c.sum()) <= 48 and 4 <= int(dropped_i.sum()) <= 28  # 0.5 and 0.25 of 64
    _, x0, _, _, _ = model.training_inputs(ctx, tgt, ins, generator=g, stage=0)
    assert (x0[:, 1] == 16).all()  # later levels fully masked


# ---- training through the shared loop -----------------------------------------------------------------
def _listening_tokens(n: int, seed: int, T: int = 24, card: int = 16):
    """A task only a model that reads the context channel and the instrument can solve:
    target[k, t] = (context[k, t] + 3 * instrument) mod card."""
    from magnet_eval.solvers.stemgen import StemTokenSet

    g = torch.Generator().manual_seed(seed)
    ctxs = [torch.randint(0, card, (2, T), generator=g) for _ in range(n)]
    inst = [int(torch.randint(0, 4, (1,), generator=g)) for _ in range(n)]
    tgts = [(c + 3 * i) % card for c, i in zip(ctxs, inst)]
    return StemTokenSet([f"c{j}/s" for j in range(n)], ctxs, tgts, inst, torch.zeros(2, T, dtype=torch.long))


def test_solver_learns_to_listen(tmp_path):
    import pandas as pd

    from magnet_eval.models.stemgen import load_stemgen
    from magnet_eval.solvers.base import TrainConfig, fit
    from magnet_eval.solvers.stemgen import StemGenSolver

    torch.manual_seed(0)
    lm = StemGenLM(StemGenConfig(dim=48, num_heads=2, num_layers=2, n_q=2, card=16, codec="none"))
    solver = StemGenSolver(lm, _listening_tokens(32, 1), _listening_tokens(8, 2), segment_frames=16,
                           p_drop_context=0.1, p_drop_instrument=0.1, silent_context_prob=0.0)
    cfg = TrainConfig(steps=120, batch_size=8, lr=1e-2, warmup_steps=8, checkpoint_every=120, valid_every=120,
                      log_every=20)
    res = fit(solver, cfg, tmp_path)
    log = pd.read_csv(res.log)
    v = log[log.phase == "valid"]
    before, after = v.iloc[0], v.iloc[-1]
    assert after.valid_accuracy > after.valid_unigram_accuracy + 0.3, (before.to_dict(), after.to_dict())
    assert after.valid_accuracy > before.valid_accuracy + 0.3
    back = load_stemgen(res.export)
    for k, w in back.state_dict().items():
        torch.testing.assert_close(w, solver.model.state_dict()[k])


def test_encode_stem_tokens_pairs_and_silence(tmp_path):
    import json

    import numpy as np

    from magnet_eval.audio import load_audio, save_audio
    from magnet_eval.models.codec import load_codec
    from magnet_eval.solvers.stemgen import encode_stem_tokens
    from magnet_eval.stems import INSTRUMENTS, read_corpus

    sr = 32000
    t = np.arange(int(0.3 * sr)) / sr
    stems = {}
    for j, (part, f) in enumerate((("bass", 80.0), ("lead", 660.0), ("drums", 0.0))):
        wav = 0.3 * np.sin(2 * np.pi * f * t) if f else 0.3 * (t * 8 % 1 < 0.05)
        save_audio(tmp_path / f"stems/c1/{part}.wav", wav.astype(np.float32), sr)
        stems[part] = f"stems/c1/{part}.wav"
    row = {"id": "c1", "caption": "", "audio_path": "stems/c1/bass.wav", "duration": 0.3,
           "labels": {"programs": {"bass": 33, "lead": 81, "drums": 0}}, "stems": stems}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    codec = load_codec("tiny")
    toks = encode_stem_tokens(read_corpus(tmp_path / "m.jsonl"), codec)
    assert toks.ids == ["c1/bass", "c1/drums", "c1/lead"]
    assert [INSTRUMENTS[i] for i in toks.instruments] == ["bass", "drums", "synth_lead"]
    # the context of a pair is the codec's tokens of the sum of the other stems
    other = sum(load_audio(tmp_path / stems[p], sr=sr)[0] for p in ("bass", "drums"))
    with torch.no_grad():
        expect = codec.encode(torch.from_numpy(other)[None, None])[0]
    assert torch.equal(toks.contexts[2], expect)
    ctx, tgt, ins = toks.batch([0, 1, 2], 8, torch.Generator().manual_seed(0), silent_context_prob=1.0)
    assert ctx.shape == tgt.shape == (3, codec.n_q, 8)
    F_ = toks.silence.shape[-1]
    windows = [toks.silence[:, (torch.arange(8) + s) % F_] for s in range(F_)]
    assert all(any(torch.equal(c, w) for w in windows) for c in ctx)  # every context is a window of silence
    assert not any(torch.equal(toks.contexts[2][:, :8], w) for w in windows)


def test_train_stemgen_command_then_stem_with_the_export(tmp_path):
    import json

    import numpy as np
    from typer.testing import CliRunner

    from magnet_eval.audio import save_audio
    from magnet_eval.cli import app
    from magnet_eval.models.codec import build_codec, save_codec

    sr = 32000
    t = np.arange(int(0.5 * sr)) / sr
    rows = []
    for j, split in enumerate(("train", "train", "valid")):
        stems = {}
        for part, f in (("bass", 55.0 * (j + 1)), ("lead", 440.0 + 110 * j)):
            rel = f"stems/c{j}/{part}.wav"
            save_audio(tmp_path / rel, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)
            stems[part] = rel
        rows.append({"id": f"c{j}", "caption": "", "audio_path": stems["bass"], "duration": 0.5,
                     "labels": {"programs": {"bass": 33, "lead": 81}, "split": split}, "stems": stems})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    codec = save_codec(build_codec("tiny"), tmp_path / "codec" / "compression_state_dict.bin")
    run = tmp_path / "run"
    args = ["train", "stemgen", "--data", str(tmp_path / "manifest.jsonl"), "--codec", str(codec), "--out", str(run),
            "--steps", "4", "--batch-size", "2", "--segment-seconds", "0.2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    export = run / "stemgen.pt"
    assert export.is_file() and (run / "train_log.csv").is_file()
    res = CliRunner().invoke(app, ["stem", "--context", str(tmp_path / "stems/c2/bass.wav"), "--instrument",
                                   "synth lead", "--out", str(tmp_path / "gen"), "--model", str(export),
                                   "--decoding-steps", "1,1,1,1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "gen" / "bass_synth_lead.wav").is_file()
    bad = CliRunner().invoke(app, args + ["--silent-context", "1.5"])
    assert bad.exit_code != 0 and "--silent-context" in str(bad.exception)


def test_stem_checks_every_context_before_building_a_model(tmp_path, monkeypatch):
    import json

    import magnet_eval.models.stemgen as sg
    from magnet_eval.errors import AudioError
    from magnet_eval.stemgen_run import run_stem

    def no_build(*a, **k):
        raise AssertionError("a model was built before the inputs were checked")

    monkeypatch.setattr(sg, "build_stemgen", no_build)
    _context_wav(tmp_path / "a.wav", 0.1)
    (tmp_path / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    rows = [{"id": x, "caption": "", "audio_path": f"{x}.wav", "duration": 0.1, "labels": {}} for x in ("a", "b")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AudioError, match="b.wav"):
        run_stem("stemgen-paper", tmp_path / "m.jsonl", tmp_path / "o", instrument="bass")
    with pytest.raises(MagnetEvalError, match="unknown instrument 'kazoo'"):
        run_stem("stemgen-paper", tmp_path / "a.wav", tmp_path / "o", instrument="kazoo")
    with pytest.raises(MagnetEvalError, match="decoding_steps"):
        run_stem("stemgen-paper", tmp_path / "a.wav", tmp_path / "o", instrument="bass", decoding_steps=[0, 1, 1, 1])
