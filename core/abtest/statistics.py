"""The statistics of a test, pure functions: Wilson intervals, the two-proportion z-test, the
probability to be best, and the decision rule.

numpy and scipy are imported where they are used: scipy.stats costs about 1.4 s of CPU to
import, and every worker, CLI and Streamlit process imports this module at start."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

# Recipients counted (sent minus bounced) each variant needs before a winner is declared.
MIN_SAMPLE = 100
INTERVAL_LEVEL = 0.95


def wilson_interval(successes: int, trials: int, level: float = INTERVAL_LEVEL) -> list[float]:
    """Wilson score interval for a proportion; [0, 1] when nothing was observed."""
    if trials <= 0:
        return [0.0, 1.0]
    successes = min(max(successes, 0), trials)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided pooled z-test of p1 == p2 (the same as a 2x2 chi-square without correction).

    When the pooled rate is 0 or 1 (no difference can be observed) the p-value is 1.
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return min(1.0, 2 * NormalDist().cdf(-abs(z)))


def probability_best(counts: list[tuple[int, int]], points: int = 4001) -> list[float]:
    """P(variant i has the highest true rate) under independent Beta(1+x, 1+n-x) posteriors.

    Exact up to quadrature error (< 1e-6): P_i = integral of pdf_i(p) * prod_j cdf_j(p),
    by Simpson's rule over the range where posterior i has mass.
    """
    if not counts:
        return []
    import numpy as np
    from scipy import integrate
    from scipy.stats import beta as beta_dist

    params = [(1 + x, 1 + max(n - x, 0)) for x, n in counts]
    result = []
    for i, (a, b) in enumerate(params):
        lo, hi = beta_dist.ppf([1e-12, 1 - 1e-12], a, b)
        grid = np.linspace(lo, hi, points)
        integrand = beta_dist.pdf(grid, a, b)
        for j, (aj, bj) in enumerate(params):
            if j != i:
                integrand = integrand * beta_dist.cdf(grid, aj, bj)
        result.append(float(integrate.simpson(integrand, x=grid)))
    total = sum(result)
    return [r / total for r in result] if total > 0 else [1 / len(counts)] * len(counts)


@dataclass
class VariantFigures:
    """One variant's (or the rest's, or the total's) counts and rates."""

    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opens: int = 0
    clicks: int = 0

    @property
    def base(self) -> int:
        return max(self.sent - self.bounced, 0)

    def rate(self, metric: str) -> float:
        return self.hits(metric) / self.base if self.base else 0.0

    def hits(self, metric: str) -> int:
        # Capped: a message can bounce softly and still be clicked; a rate never passes 1.
        return min(self.clicks if metric == "click" else self.opens, self.base)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["base"] = self.base
        for metric, name in (("open", "open"), ("click", "click")):
            data[f"{name}_rate"] = self.rate(metric)
            data[f"{name}_ci"] = wilson_interval(self.hits(metric), self.base)
        return data


def rule_metric(rule: str) -> str:
    """The metric a rule ranks by; manual mode shows the click rate as the default view."""
    return "open" if rule == "open" else "click"


def decide(
    labels: list[str],
    figures: list[VariantFigures],
    rule: str,
    min_confidence: float,
    min_sample: int = MIN_SAMPLE,
) -> dict[str, Any]:
    """The decision on constructed or measured figures: leader, runner-up, winner and why."""
    metric = rule_metric(rule)
    name = "click rate" if metric == "click" else "human open rate"
    probs = probability_best([(f.hits(metric), f.base) for f in figures])
    # Leader: highest probability to be best; exact ties keep the earlier label.
    order = sorted(range(len(labels)), key=lambda i: (-round(probs[i], 9), i))
    lead, second = order[0], order[1]
    lf, sf = figures[lead], figures[second]
    p_value = two_proportion_p_value(lf.hits(metric), lf.base, sf.hits(metric), sf.base)
    tie = lf.hits(metric) * sf.base == sf.hits(metric) * lf.base
    decision: dict[str, Any] = {
        "metric": metric,
        "rule": rule,
        "min_confidence": min_confidence,
        "min_sample": min_sample,
        "probability_best": dict(zip(labels, probs, strict=True)),
        "rates": {label: f.rate(metric) for label, f in zip(labels, figures, strict=True)},
        "bases": {label: f.base for label, f in zip(labels, figures, strict=True)},
        "leader": labels[lead],
        "runner_up": labels[second],
        "p_value": p_value,
        "winner": None,
        "outcome": "",
        "reason": "",
    }
    small = [
        (label, f.base) for label, f in zip(labels, figures, strict=True) if f.base < min_sample
    ]
    detail = (
        f"{name} {lf.rate(metric):.1%} for {labels[lead]} vs {sf.rate(metric):.1%} for "
        f"{labels[second]} (two-proportion test p = {p_value:.3g})"
    )
    if rule == "manual":
        decision["outcome"] = "manual"
        decision["reason"] = (
            f"Manual mode: pick the variant to send to the rest. Leader {labels[lead]} has "
            f"{probs[lead]:.1%} probability to be best; {detail}."
        )
    elif small:
        label, base = small[0]
        decision["outcome"] = "too_few"
        decision["reason"] = (
            f"Too few recipients to decide: variant {label} has {base} counted, at least "
            f"{min_sample} per variant are needed. Pick a variant to send to the rest."
        )
    elif tie:
        decision["outcome"] = "tie"
        decision["reason"] = (
            f"Tie: {labels[lead]} and {labels[second]} have the same {name} "
            f"({lf.rate(metric):.1%}). Pick a variant to send to the rest."
        )
    elif probs[lead] >= min_confidence:
        decision["outcome"] = "winner"
        decision["winner"] = labels[lead]
        decision["reason"] = (
            f"{labels[lead]} wins with {probs[lead]:.1%} probability to be best on {name} "
            f"(needed {min_confidence:.0%}); {detail}."
        )
    else:
        decision["outcome"] = "not_significant"
        decision["reason"] = (
            f"Not significant: the leader {labels[lead]} has {probs[lead]:.1%} probability to be "
            f"best on {name}, {min_confidence:.0%} is needed; {detail}. "
            "Pick a variant to send to the rest, or wait for more data."
        )
    return decision
