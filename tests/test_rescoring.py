"""MAGNeT's rescoring with an external MusicGen (paper section 3.4; docs/magnet-beyond-audiocraft.md)."""

from __future__ import annotations

import pytest
import torch

from magnet_eval.errors import MagnetEvalError
from magnet_eval.models.lm import LMConfig
from magnet_eval.models.magnet import MagnetDecoding, MagnetLM
from magnet_eval.models.musicgen import MusicGenLM
from magnet_eval.models.rescoring import PAPER_RESCORE_WEIGHT, Rescoring, check_rescorer, combine_probs
from magnet_eval.models.sampling import make_generators

CARD = 32
PROMPTS = ["a", "lofi piano with soft rain", "rock"]


pytestmark = pytest.mark.usefixtures("one_thread")


def magnet_lm(card: int = CARD) -> MagnetLM:
    torch.manual_seed(0)
    return MagnetLM(LMConfig(kind="magnet", dim=32, num_heads=4, num_layers=2, n_q=4, card=card, causal=False,
                             pattern="parallel", subcodes_context=5, span_len=3, text_encoder="random",
                             text_dim=24)).eval()


def musicgen_lm(card: int = CARD) -> MusicGenLM:
    torch.manual_seed(1)
    return MusicGenLM(LMConfig(kind="musicgen", dim=32, num_heads=4, num_layers=2, n_q=4, card=card, causal=True,
                               pattern="delay", delays=[0, 1, 2, 3], subcodes_context=None,
                               text_encoder="random", text_dim=24)).eval()


def run(lm, prompts, dec, rescorer_lm=None, frames=30, trace=None):
    cond = lm.condition(prompts, independent=True)
    res = None
    if rescorer_lm is not None:
        res = Rescoring(rescorer_lm, rescorer_lm.condition(prompts, independent=True))
    seeds = [11 + i for i in range(len(prompts))]
    return lm.generate(cond, len(prompts), frames, dec, generators=make_generators(seeds), rescorer=res, trace=trace)


def test_combination_by_hand():
    p_magnet = torch.tensor([[0.5, 0.2, 0.9, 0.05]])
    p_res = torch.tensor([[0.1, 0.6, 0.3, 0.95]])
    # w_r * p_rescorer + (1 - w_r) * p_MAGNeT with w_r = 0.8
    expected = torch.tensor([[0.8 * 0.1 + 0.2 * 0.5, 0.8 * 0.6 + 0.2 * 0.2, 0.8 * 0.3 + 0.2 * 0.9,
                              0.8 * 0.95 + 0.2 * 0.05]])
    assert torch.allclose(combine_probs(p_magnet, p_res, 0.8), expected, atol=1e-7)
    assert torch.allclose(expected, torch.tensor([[0.18, 0.52, 0.42, 0.77]]), atol=1e-6)  # the hand sums
    assert torch.equal(combine_probs(p_magnet, p_res, 0.0), p_magnet)
    assert torch.allclose(combine_probs(p_magnet, p_res, 1.0), p_res)
    assert PAPER_RESCORE_WEIGHT == 0.8
    with pytest.raises(MagnetEvalError, match="rescore-weight"):
        combine_probs(p_magnet, p_res, 1.5)


class FixedRescorer(Rescoring):
    """A rescorer whose probabilities are given: 0 on the frames of `low`, 1 elsewhere."""

    def __init__(self, low_frames: torch.Tensor):
        super().__init__(lm=None, condition=None)  # type: ignore[arg-type]
        self.low = low_frames

    def token_probs(self, codes, stage):
        self.forward_passes += 1
        B, _, T = codes.shape
        p = torch.ones(B, T)
        p[:, self.low] = 0.0
        return p


def test_rescorer_decides_the_spans_to_remask():
    """With w_r = 1 the spans re-masked after the first step are exactly the rescorer's least probable ones
    (span score 1 - max p over the span, computed by hand: 1 on the low chunks, 0 elsewhere)."""
    lm = magnet_lm()
    low_chunks = [0, 2, 4, 5, 6, 8, 9]  # 10 chunks of 3 frames; step 1 of 3 re-masks int(cos(pi/4) * 10) = 7
    low = torch.tensor([3 * c + o for c in low_chunks for o in range(3)])
    expected = torch.zeros(30, dtype=torch.bool)
    expected[low] = True
    dec = MagnetDecoding(decoding_steps=[3, 1, 1, 1], rescore_weight=1.0)
    trace: list = []
    cond = lm.condition(PROMPTS, independent=True)
    res = FixedRescorer(low)
    lm.generate(cond, 3, 30, dec, generators=make_generators([1, 2, 3]), rescorer=res, trace=trace)
    step1 = trace[1]
    assert step1["stage"] == 0 and step1["step"] == 1 and step1["n_masked"] == 7
    for row in step1["mask"]:
        assert torch.equal(row, expected)
    # the rescorer runs after every iteration whose scores are used: steps 0 and 1 of stage 0
    assert res.forward_passes == 2
    assert lm.last_stats["rescorer_forward_passes"] == 2
    assert lm.last_stats["forward_passes"] == 6 + 2
    # MAGNeT alone ranks by its own confidence: not this choice
    trace0: list = []
    lm.generate(cond, 3, 30, MagnetDecoding(decoding_steps=[3, 1, 1, 1]), generators=make_generators([1, 2, 3]),
                trace=trace0)
    assert not all(torch.equal(row, expected) for row in trace0[1]["mask"])


def test_weight_zero_is_plain_magnet_bit_for_bit():
    """The paper's w_r is the rescorer's share: w_r = 0 (MAGNeT's share 1 - w_r = 1) is plain MAGNeT."""
    lm, res = magnet_lm(), musicgen_lm()
    dec = dict(decoding_steps=[4, 2, 2, 2])
    plain = run(lm, PROMPTS, MagnetDecoding(**dec))
    zero = run(lm, PROMPTS, MagnetDecoding(**dec, rescore_weight=0.0), rescorer_lm=res)
    assert torch.equal(plain, zero)
    assert lm.last_stats["rescorer_forward_passes"] == 0
    rescored = run(lm, PROMPTS, MagnetDecoding(**dec), rescorer_lm=res)  # the paper's weight
    assert not torch.equal(plain, rescored)
    assert lm.last_stats["rescorer_forward_passes"] == 3 + 1 + 1 + 1  # all but the last step of each stage


def test_rescored_tokens_are_batch_invariant():
    lm, res = magnet_lm(), musicgen_lm()
    dec = MagnetDecoding(decoding_steps=[4, 2, 2, 2], span_arrangement="stride1", rescore_weight=0.5)
    together = run(lm, PROMPTS, dec, rescorer_lm=res)
    alone = []  # each clip alone, with the seed it had in the batch
    for i, p in enumerate(PROMPTS):
        cond = lm.condition([p], independent=True)
        r = Rescoring(res, res.condition([p], independent=True))
        alone.append(lm.generate(cond, 1, 30, dec, generators=make_generators([11 + i]), rescorer=r))
    assert torch.equal(together, torch.cat(alone))


def test_token_probs_follow_the_delay_pattern():
    """The rescorer's probability of a frame is its teacher-forced MusicGen prediction (compute_predictions)."""
    res = musicgen_lm()
    torch.manual_seed(5)
    codes = torch.randint(0, CARD, (1, 4, 12))
    cond = res.condition(["one prompt"])
    logits, _ = res.compute_predictions(codes, cond)
    for stage in range(4):
        expected = torch.softmax(logits[:, stage].float(), -1).gather(-1, codes[:, stage].unsqueeze(-1))[..., 0]
        got = Rescoring(res, cond).token_probs(codes, stage)
        valid = ~torch.isnan(expected)
        assert torch.allclose(got[valid], expected[valid], atol=1e-5)


def test_rescorer_must_share_the_codec():
    with pytest.raises(MagnetEvalError, match="MusicGen"):
        check_rescorer(magnet_lm(), magnet_lm())
    with pytest.raises(MagnetEvalError, match="same codec"):
        check_rescorer(magnet_lm(), musicgen_lm(card=16))
    with pytest.raises(ValueError, match="rescore_weight"):
        MagnetDecoding(rescore_weight=-0.1)


def test_generator_counts_rescorer_passes():
    from magnet_eval.models.generator import load_generator

    gen = load_generator("magnet-tiny")
    gen.set_rescorer(load_generator("musicgen-tiny"))
    codes, wav, _ = gen.generate(["lofi piano"], duration=1.0, seed=0, decoding_steps="3,1,1,1")
    stats = gen.last_stats
    assert stats["rescorer_forward_passes"] == 2
    assert stats["forward_passes"] == 6 + 2
    assert stats["settings"]["rescorer"] == "musicgen-tiny"
    assert stats["settings"]["rescore_weight"] == PAPER_RESCORE_WEIGHT
    with pytest.raises(MagnetEvalError, match="MAGNeT"):
        load_generator("musicgen-tiny").set_rescorer(load_generator("musicgen-tiny"))


def _log(folder):
    import json

    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def test_cli_rescorer_options(tmp_path):
    from typer.testing import CliRunner

    from magnet_eval.cli import app
    from magnet_eval.errors import InvalidOptionError

    out = tmp_path / "r"
    base = ["generate", "-m", "magnet-tiny", "-p", "jazz", "-d", "1", "--decoding-steps", "3,1,1,1"]
    res = CliRunner().invoke(app, base + ["-o", str(out), "--rescorer", "musicgen-tiny", "--rescore-weight", "0.5"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    (rec,) = _log(out)
    assert rec["settings"]["decoding"]["rescorer"] == "musicgen-tiny"
    assert rec["settings"]["decoding"]["rescore_weight"] == 0.5
    assert rec["rescorer_forward_passes"] == 2 and rec["forward_passes"] == 6 + 2
    # another weight is another setting: the run in --out is not resumed with it
    res = CliRunner().invoke(app, base + ["-o", str(out), "--rescorer", "musicgen-tiny", "--rescore-weight", "0.7"])
    assert isinstance(res.exception, MagnetEvalError) and "other settings" in str(res.exception)
    res = CliRunner().invoke(app, base + ["-o", str(tmp_path / "x"), "--rescore-weight", "0.5"])
    assert isinstance(res.exception, InvalidOptionError) and "--rescorer" in str(res.exception)
    res = CliRunner().invoke(app, base + ["-o", str(tmp_path / "y"), "--rescorer", "musicgen-tiny",
                                          "--rescore-weight", "2"])
    assert isinstance(res.exception, InvalidOptionError) and "--rescore-weight" in str(res.exception)
    res = CliRunner().invoke(app, base + ["-o", str(tmp_path / "z"), "--rescorer", "magnet-tiny"])
    assert isinstance(res.exception, MagnetEvalError) and "MusicGen" in str(res.exception)


def test_rescorer_as_a_decoding_knob_for_bench():
    """`bench latency --param rescorer=musicgen-tiny` reaches the generator: passes counted, loaded once."""
    from magnet_eval.models.generator import load_generator

    gen = load_generator("magnet-tiny")
    gen.generate(["a"], duration=1.0, rescorer="musicgen-tiny", decoding_steps="3,1,1,1")
    first = gen.rescorer
    assert gen.last_stats["forward_passes"] == 8 and gen.last_stats["rescorer_forward_passes"] == 2
    gen.generate(["a"], duration=1.0, rescorer="musicgen-tiny", decoding_steps="3,1,1,1")
    assert gen.rescorer is first
