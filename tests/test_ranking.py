"""The one Kendall tau of the project (issue 22: three copies, one of them tau-a, became this one)."""

from __future__ import annotations

import math

import pytest

from nas_env.ranking import kendall_tau


def test_tau_b_by_hand():
    # pairs of (x, y) = (1,1) (2,3) (3,2) (3,4): x has one tie (3,3); 5 untied x-pairs, 6 untied y-pairs,
    # concordant minus discordant = 4 - 1 = 3, so tau-b = 3 / sqrt(5 * 6) (tau-a would be 3 / 6)
    assert kendall_tau([1, 2, 3, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(30))


def test_order_only_and_minus_inf_ranks_lowest():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [-math.inf, 0.5, 7.0]) == 1.0
    assert kendall_tau([3, 2, 1], [1, 2, 3]) == -1.0


def test_degenerate_and_bad_input():
    assert math.isnan(kendall_tau([1.0], [2.0]))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1, 2, 3], [1, math.nan, 3]))
    with pytest.raises(ValueError, match="equal length, got 2 and 3"):
        kendall_tau([1, 2], [1, 2, 3])
