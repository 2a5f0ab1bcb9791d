"""MAGNeT span masking: the schedule, the Appendix-C lookup, span lengths, empirical rates, stage choice."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch

from magnet_eval.solvers.masking import (
    choose_stage,
    cosine_schedule,
    expected_masked_fraction,
    sample_masks,
    span_mask,
    spans_for_rate,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_cosine_schedule_endpoints_and_mean():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(cosine_schedule(t), torch.tensor([1.0, math.cos(math.pi / 4), 0.0]), atol=1e-7)


def test_lookup_matches_binomial_formula():
    T, L = 40, 3
    table = expected_masked_fraction(T, L)
    for u in (0, 1, 2, 7, 20, 37, 38, 40):
        expected = 1 - (math.comb(T - L, u) / math.comb(T, u) if u <= T - L else 0.0)
        assert table[u].item() == pytest.approx(expected, abs=1e-9), u
    assert torch.all(table[1:] >= table[:-1])


def test_lookup_equals_exhaustive_average_on_a_circular_toy():
    """1 - C(T-L,u)/C(T,u) is the exact masked fraction when every frame has L possible starts (spans wrap)."""
    T, L, u = 9, 3, 2
    total = 0
    combos = list(combinations(range(T), u))
    for starts in combos:
        masked = {(s + i) % T for s in starts for i in range(L)}
        total += len(masked)
    assert total / (len(combos) * T) == pytest.approx(expected_masked_fraction(T, L)[u].item(), abs=1e-12)


def test_spans_have_length_three():
    g = torch.Generator().manual_seed(0)
    n = torch.tensor([1] * 200)
    m = span_mask(n, 50, 3, generator=g)
    lengths = m.sum(1)
    # one start -> exactly 3 masked frames, unless the span runs off the end
    ends_clear = ~m[:, -2:].any(1)
    assert torch.all(lengths[ends_clear] == 3)
    # and they are contiguous
    for row in m[ends_clear][:50]:
        idx = row.nonzero().flatten()
        assert (idx[-1] - idx[0]).item() == 2


def test_every_run_of_masked_frames_is_a_union_of_length_3_spans():
    g = torch.Generator().manual_seed(1)
    m = span_mask(torch.tensor([6] * 300), 60, 3, generator=g)
    for row in m.tolist():
        run = 0
        for i, x in enumerate(row + [False]):
            if x:
                run += 1
            else:
                # runs are >= 3 long except a run cut by the sequence start/end cannot be shorter either
                # (spans start inside the sequence and only the tail can be truncated)
                if run:
                    assert run >= 3 or i == len(row), row
                run = 0


def test_span_count_is_the_number_of_starts():
    g = torch.Generator().manual_seed(2)
    # non-overlapping when spans are few and the sequence long: masked = 3 * u at most
    n = torch.tensor([4] * 500)
    m = span_mask(n, 200, 3, generator=g)
    assert torch.all(m.sum(1) <= 12)
    assert (m.sum(1) == 12).float().mean() > 0.8  # most draws have no overlap


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5, 0.8, 0.97])
def test_empirical_fraction_matches_rate(rate):
    T, L = 150, 3
    g = torch.Generator().manual_seed(3)
    n = spans_for_rate(torch.full((4000,), rate), T, L)
    m = span_mask(n, T, L, generator=g)
    emp = m.float().mean().item()
    # the lookup's nearest u is within one step of the rate
    table = expected_masked_fraction(T, L)
    step = (table[n[0]] - table[n[0] - 1]).item()
    assert abs(table[n[0]].item() - rate) <= step
    # spans cut at the end mask slightly less than the formula's circular count: about (L-1)/T at most
    assert emp == pytest.approx(rate, abs=step + 0.01)


def test_schedule_mean_matches_two_over_pi():
    """Over many draws with t ~ U(0,1): mean masked fraction = E[cos(pi t/2)] = 2/pi."""
    g = torch.Generator().manual_seed(4)
    m, rate = sample_masks(20000, 200, 3, generator=g)
    assert rate.mean().item() == pytest.approx(2 / math.pi, abs=0.01)
    assert m.float().mean().item() == pytest.approx(2 / math.pi, abs=0.012)
    # per sample, the masked fraction tracks the scheduled rate
    per = m.float().mean(1)
    corr = torch.corrcoef(torch.stack([per, rate]))[0, 1].item()
    assert corr > 0.97
    # at least one masked frame even when the rate is ~0
    assert torch.all(m.sum(1) >= 1)


def test_masks_are_reproducible_with_a_generator():
    a, _ = sample_masks(8, 50, 3, generator=torch.Generator().manual_seed(5))
    b, _ = sample_masks(8, 50, 3, generator=torch.Generator().manual_seed(5))
    c, _ = sample_masks(8, 50, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stage_choice_is_uniform():
    g = torch.Generator().manual_seed(7)
    counts = torch.bincount(torch.tensor([choose_stage(4, g) for _ in range(4000)]), minlength=4)
    assert counts.shape[0] == 4
    assert torch.all((counts - 1000).abs() < 120), counts
