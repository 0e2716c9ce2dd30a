"""The statistics against scipy reference values, and the decision on constructed figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import betaln
from scipy.stats import binomtest, chi2_contingency

from core.abtest.statistics import (
    VariantFigures,
    decide,
    probability_best,
    two_proportion_p_value,
    wilson_interval,
)

COUNTS = [(0, 50), (1, 50), (7, 130), (50, 100), (99, 100), (100, 100), (1234, 20000)]


@pytest.mark.parametrize(("x", "n"), COUNTS)
def test_wilson_interval_matches_scipy(x, n):
    reference = binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(x, n) == pytest.approx([reference.low, reference.high], abs=1e-12)


def test_wilson_interval_without_data_is_everything():
    assert wilson_interval(0, 0) == [0.0, 1.0]


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(40, 200, 15, 200), (10, 100, 12, 110), (0, 100, 5, 100), (30, 300, 30, 300), (1, 9, 8, 9)],
)
def test_two_proportion_p_value_matches_chi_square(x1, n1, x2, n2):
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    reference = chi2_contingency(table, correction=False).pvalue
    assert two_proportion_p_value(x1, n1, x2, n2) == pytest.approx(reference, rel=1e-9, abs=1e-12)


def test_two_proportion_p_value_when_nothing_can_differ():
    # Both rates 0 (or both 1): scipy refuses the table (zero expected counts); we say p = 1.
    assert two_proportion_p_value(0, 100, 0, 120) == 1.0
    assert two_proportion_p_value(50, 50, 70, 70) == 1.0
    assert two_proportion_p_value(0, 0, 3, 10) == 1.0


def _p_b_beats_a(xa: int, na: int, xb: int, nb: int) -> float:
    """Evan Miller's closed form of P(p_B > p_A) for Beta(1+x, 1+n-x) posteriors."""
    a_a, b_a, a_b, b_b = 1 + xa, 1 + na - xa, 1 + xb, 1 + nb - xb
    return sum(
        math.exp(
            betaln(a_a + i, b_b + b_a) - math.log(b_b + i) - betaln(1 + i, b_b) - betaln(a_a, b_a)
        )
        for i in range(a_b)
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((40, 200), (15, 200)),
        ((10, 100), (12, 110)),
        ((0, 100), (3, 100)),
        ((0, 0), (0, 0)),
        ((120, 5000), (150, 5000)),
        ((2000, 100000), (2100, 100000)),
    ],
)
def test_probability_best_of_two_matches_closed_form(a, b):
    p_a, p_b = probability_best([a, b])
    assert p_b == pytest.approx(_p_b_beats_a(*a, *b), abs=1e-6)
    assert p_a + p_b == pytest.approx(1.0, abs=1e-12)


def test_probability_best_of_several_matches_monte_carlo():
    counts = [(30, 400), (42, 410), (38, 395), (20, 380)]
    rng = np.random.default_rng(7)
    draws = np.stack([rng.beta(1 + x, 1 + n - x, 400_000) for x, n in counts])
    reference = np.bincount(draws.argmax(axis=0), minlength=len(counts)) / draws.shape[1]
    assert probability_best(counts) == pytest.approx(list(reference), abs=0.004)


def test_probability_best_ties_and_zeros_are_symmetric():
    assert probability_best([(0, 200), (0, 200)]) == [0.5, 0.5]
    three = probability_best([(9, 100), (9, 100), (9, 100)])
    assert three == pytest.approx([1 / 3] * 3, abs=1e-9)
    assert three[0] == three[1] == three[2]


def _figs(*pairs: tuple[int, int]) -> list[VariantFigures]:
    return [VariantFigures(recipients=n, sent=n, clicks=x, opens=x) for x, n in pairs]


def test_decide_clear_winner():
    decision = decide(["A", "B"], _figs((15, 200), (40, 200)), "click", 0.9)
    assert decision["outcome"] == "winner" and decision["winner"] == "B"
    assert decision["probability_best"]["B"] > 0.99
    assert decision["p_value"] < 0.01
    assert "B wins" in decision["reason"]


def test_decide_not_significant():
    decision = decide(["A", "B", "C"], _figs((20, 200), (24, 200), (22, 200)), "click", 0.9)
    assert decision["outcome"] == "not_significant" and decision["winner"] is None
    assert decision["leader"] == "B"
    assert "Not significant" in decision["reason"]


def test_decide_tie_never_wins_and_keeps_the_earlier_label():
    decision = decide(["A", "B"], _figs((30, 300), (30, 300)), "open", 0.51)
    assert decision["outcome"] == "tie" and decision["winner"] is None
    assert (decision["leader"], decision["runner_up"]) == ("A", "B")
    assert decision["p_value"] == pytest.approx(1.0)


def test_decide_too_few_recipients():
    # B is far ahead, but A has fewer than the minimum sample.
    decision = decide(["A", "B"], _figs((0, 60), (40, 200)), "click", 0.9)
    assert decision["outcome"] == "too_few" and decision["winner"] is None
    assert "variant A has 60" in decision["reason"]


def test_decide_manual_mode_reports_but_never_picks():
    decision = decide(["A", "B"], _figs((15, 200), (40, 200)), "manual", 0.9)
    assert decision["outcome"] == "manual" and decision["winner"] is None
    assert decision["leader"] == "B"


def test_decide_bounces_are_not_counted_against_a_variant():
    figures = _figs((20, 220), (20, 200))
    figures[0].bounced = 20  # A: 20 of 200 delivered, same as B
    decision = decide(["A", "B"], figures, "click", 0.9)
    assert decision["outcome"] == "tie"
