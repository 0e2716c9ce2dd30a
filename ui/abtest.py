"""A/B test parts of the campaign wizard and the report: pure render functions over data.

The wizard (ui/campaign_wizard.py) calls `ab_settings_section` in its template step and passes
the dict it returns to `core.abtest.configure_ab_test`, and `ab_review_section` with
`core.abtest.ab_review(...)` in its review step; pages/reports.py calls `ab_report_section` with
`core.abtest.ab_report(...)` and, when it returns a variant id, calls
`core.abtest.choose_winner_manually`. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from core.abtest import sample_size_warning
from core.abtest.review import per_variant_text
from core.campaigns.split import split_sizes
from ui.text import md

SHARES = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 100]
RULES = {
    "click": "Click rate (recommended: opens are inflated by machine opens)",
    "open": "Human open rate",
    "manual": "Manual: I pick the winner",
}
METRIC_NAMES = {"click": "Click rate", "open": "Human open rate"}
RULE_NAMES = {"click": "click rate", "open": "human open rate", "manual": "manual pick"}
Suggest = Callable[[str, int], list[str]]


def ab_settings_section(
    templates: dict[int, str],
    current: dict[str, Any] | None = None,
    *,
    default_subject: str = "",
    default_template_id: int | None = None,
    default_from_name: str = "",
    suggest: Suggest | None = None,
    key: str = "ab",
    recipients: int | None = None,
) -> dict[str, Any] | None:
    """The wizard's A/B section; returns the settings dict, or None when A/B is off.

    With `recipients` (the audience's count) it says how many each variant gets and warns
    when that is too few for an automatic winner."""
    on = st.toggle(
        "A/B test this campaign",
        value=current is not None,
        key=f"{key}_on",
        help="Send 2 to 5 variants to part of the audience and the best one to the rest.",
    )
    if not on:
        return None
    current = current or {}
    variants = current.get("variants") or []
    count = st.number_input(
        "Number of variants",
        min_value=2,
        max_value=5,
        value=max(len(variants), 2),
        step=1,
        key=f"{key}_count",
    )
    count = int(count)
    template_ids = list(templates)

    if st.button(
        "Suggest subject variants",
        key=f"{key}_suggest",
        disabled=suggest is None,
        help=None if suggest else "The AI assistant is not configured (OPENAI_API_KEY).",
    ):
        base = st.session_state.get(f"{key}_subject_0") or default_subject
        try:
            suggestions = suggest(base, count - 1) if suggest else []
        except Exception as exc:
            st.error(f"The AI assistant failed: {md(exc)}")
            suggestions = []
        for index, subject in enumerate(suggestions[: count - 1], start=1):
            st.session_state[f"{key}_subject_{index}"] = subject

    chosen = []
    for index in range(count):
        label = "ABCDE"[index]
        existing = variants[index] if index < len(variants) else {}
        st.markdown(f"**Variant {label}**")
        left, middle, right = st.columns([3, 2, 2])
        subject = left.text_input(
            f"Subject {label}",
            value=existing.get("subject", default_subject if index == 0 else ""),
            key=f"{key}_subject_{index}",
        )
        from_name = middle.text_input(
            f"From name {label}",
            value=existing.get("from_name", default_from_name),
            key=f"{key}_from_{index}",
        )
        wanted = existing.get("template_id", default_template_id)
        template_id = right.selectbox(
            f"Template {label}",
            options=template_ids,
            index=template_ids.index(wanted) if wanted in template_ids else None,
            format_func=lambda tid: templates.get(tid, str(tid)),
            key=f"{key}_template_{index}",
        )
        chosen.append({"subject": subject, "from_name": from_name, "template_id": template_id})

    share = st.select_slider(
        "Test share (% of the audience)",
        options=SHARES,
        value=current.get("test_share", 20),
        key=f"{key}_share",
        help="Split evenly across the variants; the rest gets the winner. "
        "100% only compares the variants.",
    )
    rule = st.radio(
        "Winner rule",
        options=list(RULES),
        index=list(RULES).index(current.get("winner_rule", "click")),
        format_func=RULES.get,
        key=f"{key}_rule",
    )
    hours = st.number_input(
        "Waiting time (hours)",
        min_value=1,
        max_value=168,
        value=max(1, int(current.get("wait_minutes", 240)) // 60),
        step=1,
        key=f"{key}_wait",
    )
    confidence = st.slider(
        "Minimum probability to be best (%)",
        min_value=51,
        max_value=99,
        value=round(100 * float(current.get("min_confidence", 0.9))),
        key=f"{key}_confidence",
        disabled=rule == "manual",
    )
    sizes = ""
    if recipients is not None:
        sizes = f" ({per_variant_text(split_sizes(recipients, int(share), count)[0])})"
    if share < 100:
        st.caption(
            f"Each variant goes to {share / count:.1f}% of the audience{sizes}; "
            f"{100 - share}% wait for the winner."
        )
    else:
        st.caption(f"Every recipient gets one of the variants{sizes}; nobody waits for a winner.")
    if recipients is not None and (
        warning := sample_size_warning(recipients, int(share), count, rule)
    ):
        st.warning(md(warning))
    settings: dict[str, Any] = {
        "variants": chosen,
        "test_share": int(share),
        "winner_rule": rule,
        "wait_minutes": int(hours) * 60,
        "min_confidence": confidence / 100,
    }
    if current.get("seed"):
        settings["seed"] = current["seed"]
    return settings


def _wait(minutes: int) -> str:
    days, hours = divmod(minutes // 60, 24)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours or not days:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    return " ".join(parts)


def ab_review_section(review: dict[str, Any]) -> None:
    """The review step's A/B part (`core.abtest.ab_review`): the settings, each variant as
    its recipients will see it, and the warning when no automatic winner is possible."""
    st.subheader("A/B test")
    share = review["test_share"]
    manual = review["winner_rule"] == "manual"
    cols = st.columns(4)
    cols[0].metric(
        "Test share",
        f"{share}%" if share < 100 else "100% (compare only)",
        help=None if share >= 100 else f"{review['held']:,} recipients wait for the winner.",
    )
    cols[1].metric("Winner rule", review["rule_name"].capitalize())
    cols[2].metric("Waiting time", _wait(review["wait_minutes"]))
    cols[3].metric(
        "Minimum probability to be best", "–" if manual else f"{review['min_confidence']:.0%}"
    )
    who = f"for {review['sample']}" if review["sample"] else "for a sample contact"
    st.caption(f"Subjects as they will read, rendered {md(who)}:")
    for row in review["variants"]:
        subject = (
            f":red[does not render: {md(row['error'])}]" if row["error"] else md(row["subject"])
        )
        details = [f"{row['recipients']:,} recipients"]
        if row["from_name"]:
            details.append(f"from {md(row['from_name'])}")
        if row["template"]:
            details.append(f"template {md(row['template'])}")
        st.markdown(f"**Variant {row['label']}:** {subject}  \n" + " · ".join(details))
    if share < 100:
        st.caption(f"{review['held']:,} recipients wait for the winner.")
    if review["warning"]:
        st.warning(md(review["warning"]))


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _interval(ci: list[float]) -> str:
    return f"{ci[0]:.1%} - {ci[1]:.1%}"


def rate_chart(report: dict[str, Any]) -> go.Figure:
    """The rule's rate per variant with its interval as error bars."""
    metric = report["metric"]
    rows = report["variants"]
    rates = [row[f"{metric}_rate"] for row in rows]
    ci = [row[f"{metric}_ci"] for row in rows]
    figure = go.Figure(
        go.Bar(
            x=[f"Variant {row['label']}" for row in rows],
            y=rates,
            marker_color=["#2e7d32" if row["is_winner"] else "#5c6bc0" for row in rows],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [hi - r for r, (_lo, hi) in zip(rates, ci, strict=True)],
                "arrayminus": [r - lo for r, (lo, _hi) in zip(rates, ci, strict=True)],
            },
            text=[_pct(r) for r in rates],
        )
    )
    level = round(100 * report["interval_level"])
    figure.update_layout(
        title=f"{METRIC_NAMES[metric]} with {level}% intervals",
        xaxis_title="Variant",
        yaxis_title=f"{METRIC_NAMES[metric]} (%)",
        yaxis_tickformat=".0%",
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure


def trend_chart(report: dict[str, Any]) -> go.Figure:
    """Cumulative rate of the rule's metric per variant, hour by hour."""
    metric = report["metric"]
    figure = go.Figure()
    for row in report["variants"]:
        points = [p for p in report["trend"] if p["variant"] == row["label"]]
        figure.add_trace(
            go.Scatter(
                x=[p["hour"] for p in points],
                y=[p[f"{metric}_rate"] for p in points],
                mode="lines",
                name=f"Variant {row['label']}",
            )
        )
    figure.update_layout(
        title=f"{METRIC_NAMES[metric]} over time",
        xaxis_title="Hours since the start",
        yaxis_title=f"{METRIC_NAMES[metric]} so far (%)",
        yaxis_tickformat=".0%",
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure


def ab_report_section(report: dict[str, Any], *, key: str = "abr") -> int | None:
    """The A/B part of a campaign report; returns a variant id when the user picks a winner."""
    if not report.get("is_ab"):
        return None
    st.subheader("A/B test")
    rule = report["rule"]
    st.caption(
        f"Winner rule: {RULE_NAMES[rule]} · test share {report['test_share']}% · "
        f"wait {report['wait_minutes'] // 60} h · minimum probability to be best "
        f"{report['min_confidence']:.0%}"
    )
    if report["winner"]:
        st.success(report["summary"])
    elif report["decision"]:
        st.warning(report["summary"])
    else:
        st.info(report["summary"])

    table = [
        {
            "Variant": row["label"] + (" (winner)" if row["is_winner"] else ""),
            "Subject": row["subject"],
            "From": row["from_name"],
            "Recipients": row["recipients"],
            "Sent": row["sent"],
            "Delivered": row["delivered"],
            "Opens (human)": row["opens"],
            "Open rate": _pct(row["open_rate"]),
            "Open rate 95%": _interval(row["open_ci"]),
            "Clicks": row["clicks"],
            "Click rate": _pct(row["click_rate"]),
            "Click rate 95%": _interval(row["click_ci"]),
            "Probability to be best": _pct(row["probability_best"]),
        }
        for row in report["variants"]
    ]
    st.dataframe(table, hide_index=True, key=f"{key}_table")
    live = report["live"]
    st.caption(
        f"Leader {live['leader']} vs runner-up {live['runner_up']}: two-proportion test "
        f"p = {live['p_value']:.3g}. Probability to be best from Beta posteriors."
    )
    left, right = st.columns(2)
    left.plotly_chart(rate_chart(report), key=f"{key}_rates")
    if report["trend"]:
        right.plotly_chart(trend_chart(report), key=f"{key}_trend")
    else:
        right.caption("No opens or clicks yet: the trend appears with the first ones.")

    rest, totals = report["rest"], report["totals"]
    if report["test_share"] < 100:
        st.markdown("**The rest**")
        cols = st.columns(4)
        cols[0].metric("Held for the winner", f"{report['held']:,}")
        cols[1].metric("Rest sent", f"{rest['sent']:,}")
        cols[2].metric("Rest open rate", _pct(rest["open_rate"]))
        cols[3].metric("Rest click rate", _pct(rest["click_rate"]))
    st.markdown("**Whole campaign**")
    cols = st.columns(4)
    cols[0].metric("Recipients", f"{totals['recipients']:,}")
    cols[1].metric("Sent", f"{totals['sent']:,}")
    cols[2].metric("Open rate", _pct(totals["open_rate"]))
    cols[3].metric("Click rate", _pct(totals["click_rate"]))

    if not report["can_choose_winner"]:
        return None
    rows = report["variants"]
    labels = [row["label"] for row in rows]
    choice = st.selectbox(
        "Variant to send to the rest" if report["held"] else "Variant to record as the winner",
        options=labels,
        index=labels.index(live["leader"]),
        format_func=lambda label: (
            f"Variant {label}" + (" (leader)" if label == live["leader"] else "")
        ),
        key=f"{key}_choice",
    )
    action = f"Send variant {choice} to the rest" if report["held"] else f"Choose variant {choice}"
    if st.button(action, type="primary", key=f"{key}_choose"):
        return next(row["id"] for row in rows if row["label"] == choice)
    return None
