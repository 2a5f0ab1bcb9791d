"""VampNet prompt masks: exact kept positions, composition, the textual form, and beat-driven masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magnet_eval.errors import InvalidOptionError
from magnet_eval.prompts import masks as M

FR = 50.0


def toks(B: int = 2, K: int = 4, T: int = 20) -> torch.Tensor:
    return torch.randint(0, 2048, (B, K, T), generator=torch.Generator().manual_seed(0))


def kept_frames(keep: torch.Tensor) -> list[int]:
    """Frames kept in every codebook of row 0."""
    return torch.nonzero(keep[0].all(dim=0)).flatten().tolist()


def test_periodic_exact_positions() -> None:
    z = toks(T=20)
    assert M.periodic(z, 1).all()
    assert kept_frames(M.periodic(z, 4)) == [0, 4, 8, 12, 16]
    assert kept_frames(M.periodic(z, 7, width=3)) == [0, 1, 6, 7, 8, 13, 14, 15]
    assert kept_frames(M.periodic(z, 5, offset=2)) == [2, 7, 12, 17]
    keep = M.periodic(z, 4)
    assert torch.equal(keep[0], keep[1])  # same pattern for every row and codebook
    assert keep.shape == z.shape and keep.dtype == torch.bool


def test_lowest_codebooks_keeps_exactly_those() -> None:
    z = toks(K=4)
    keep = M.lowest_codebooks(z, 3)
    assert keep[:, :3].all() and not keep[:, 3:].any()
    assert not M.lowest_codebooks(z, 0).any()
    assert M.lowest_codebooks(z, 9).all()


def test_inpaint_prefix_suffix() -> None:
    z = toks(T=100)
    keep = M.inpaint(z, 0.5, 1.0, FR)  # frames 25..49 regenerated
    assert kept_frames(keep) == list(range(25)) + list(range(50, 100))
    assert kept_frames(M.prefix(z, 0.2, FR)) == list(range(10))
    assert kept_frames(M.suffix(z, 0.2, FR)) == list(range(90, 100))
    assert not M.suffix(z, 0.0, FR).any()


def test_around_times_and_dropout() -> None:
    z = toks(T=100)
    keep = M.around_times(z, [0.5, 1.0], FR, 0.04)  # frames 25, 50, +-2
    assert kept_frames(keep) == [23, 24, 25, 26, 27, 48, 49, 50, 51, 52]
    assert kept_frames(M.around_times(z, [0.5], FR, 0.0)) == [25]
    full = M.keep_all(z)
    d1 = M.dropout(full, 0.25, torch.Generator().manual_seed(3))
    d2 = M.dropout(full, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(d1, d2)
    assert (~d1[0].all(dim=0)).sum() == 25  # exactly round(0.25 * 100) frames regenerated


def test_combination_as_reference() -> None:
    z = toks(T=12)
    a, b = M.periodic(z, 4), M.prefix(z, 2 / FR, FR)
    assert kept_frames(M.keep_or(a, b)) == [0, 1, 4, 8]
    assert kept_frames(M.keep_and(a, b)) == [0]
    # periodic + upper: every 4th frame, lowest 2 codebooks only (reference build_mask order)
    keep = M.build_keep(M.parse_prompts(["periodic:4", "upper:2"]), z, FR)
    assert keep[:, :2].sum(dim=1).bool()[0].nonzero().flatten().tolist() == [0, 4, 8]
    assert not keep[:, 2:].any()
    # only upper:n = compression baseline: all frames of the lowest n codebooks
    keep = M.build_keep(M.parse_prompts(["upper:3"]), z, FR)
    assert keep[:, :3].all() and not keep[:, 3:].any()


def test_bitrate_of_kept_tokens() -> None:
    z = toks(B=1, K=4, T=50)
    keep = M.lowest_codebooks(z, 1)
    assert M.kept_bitrate(keep, FR, 2048) == pytest.approx(50 * 11)  # 1 codebook x 50 Hz x 11 bits


@pytest.mark.parametrize("text,kind,args", [
    ("periodic:16", "periodic", (16.0,)), ("periodic:7:3", "periodic", (7.0, 3.0)), ("upper:3", "upper", (3.0,)),
    ("beat:0.1", "beat", (0.1,)), ("inpaint:1.0-2.0", "inpaint", (1.0, 2.0)), ("prefix:2.0", "prefix", (2.0,)),
    ("suffix:1", "suffix", (1.0,)), ("dropout:0.3", "dropout", (0.3,)), ("onset:.05", "onset", (0.05,)),
])
def test_parse_prompt(text: str, kind: str, args: tuple) -> None:
    p = M.parse_prompt(text)
    assert (p.kind, p.args) == (kind, args)


@pytest.mark.parametrize("text", ["periodic:0", "periodic:-3", "periodic:abc", "periodic:2.5", "upper:x",
                                  "bogus:1", "inpaint:2-1", "inpaint:1", "dropout:1.5", "beat:", "periodic"])
def test_parse_prompt_errors_name_the_string(text: str) -> None:
    with pytest.raises(InvalidOptionError, match=repr(text).replace("[", r"\[").replace(".", r"\.")):
        M.parse_prompt(text)


def test_period_below_one_is_rejected_by_builder() -> None:
    with pytest.raises(InvalidOptionError, match="period"):
        M.periodic(toks(), 0)


def click_track(times: np.ndarray, sr: int, duration: float) -> np.ndarray:
    """Short decaying 1 kHz clicks at `times` (seconds)."""
    wav = np.zeros(int(sr * duration), dtype=np.float32)
    n = int(0.02 * sr)
    click = (np.sin(2 * np.pi * 1000 * np.arange(n) / sr) * np.exp(-np.arange(n) / (0.003 * sr))).astype(np.float32)
    for t in times:
        i = int(round(t * sr))
        wav[i:i + n] += click[: len(wav) - i]
    return wav


def test_beat_mask_follows_click_track() -> None:
    pytest.importorskip("essentia")
    from magnet_eval.prompts.events import find_beats

    sr = 44100
    clicks = np.arange(1.0, 9.5, 0.5)  # 120 bpm
    beats = find_beats(click_track(clicks, sr, 10.0), sr)
    # essentia tracks the clicks: every click has a beat within 50 ms (its onset frames lag by ~30 ms),
    # and the beats inside the clicked span sit on clicks (outside it essentia extrapolates the grid)
    tol = 0.05
    assert (np.abs(clicks[:, None] - beats[None, :]).min(axis=1) < tol).all(), (beats, clicks)
    inside = beats[(beats > clicks[0] - 0.1) & (beats < clicks[-1] + 0.1)]
    assert (np.abs(inside[:, None] - clicks[None, :]).min(axis=1) < tol).all(), (beats, clicks)
    z = toks(B=1, K=4, T=500)
    keep = M.build_keep([M.parse_prompt("beat:0.04")], z, FR, beats_s=beats)
    kept = np.array(kept_frames(keep))
    assert all(round(b * FR) in set(kept.tolist()) for b in beats)  # the frame of every beat is kept
    # every kept frame is within 0.04 s (+ half a frame of rounding) of a beat, hence near a click
    assert (np.abs(kept[:, None] / FR - beats[None, :]).min(axis=1) <= 0.04 + 0.5 / FR + 1e-9).all()
    near_click = np.abs(kept[:, None] / FR - clicks[None, :]).min(axis=1) <= 0.04 + tol + 0.5 / FR
    assert near_click.mean() > 0.85  # all but essentia's extrapolated first/last beats
    assert M.build_keep([M.parse_prompt("beat:0.04")], z, FR, beats_s=[]).sum() == 0
