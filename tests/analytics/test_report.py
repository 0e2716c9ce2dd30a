"""Campaign report figures on a hand-built event set, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.analytics import reports as analytics
from core.infra.errors import NotFound, PermissionDenied
from core.infra.permissions import Actor
from tests.analytics.dataset import (
    EXPECTED,
    EXPECTED_RATES,
    LINK_A,
    LINK_B,
    T0,
    build_known,
    other_workspace,
)
from tests.helpers import make_workspace


@pytest.fixture
def known(session):
    ws = make_workspace(session)
    return build_known(session, ws.id)


def test_counts_and_rates(session, known):
    me = Actor.system(known.workspace_id)
    f = analytics.campaign_figures(session, me, known.campaign_id)
    got = {key: getattr(f, key) for key in EXPECTED}
    assert got == EXPECTED
    assert f.rates == pytest.approx(EXPECTED_RATES)
    assert set(f.rates) == set(analytics.RATE_DEFINITIONS)


def test_division_by_zero_and_estimated_delivery(session, known):
    me = Actor.system(known.workspace_id)
    idle = analytics.campaign_figures(session, me, known.idle_campaign_id)
    assert (idle.recipients, idle.queued, idle.sent, idle.delivered) == (2, 2, 0, 0)
    assert all(value is None for value in idle.rates.values())
    assert idle.is_live
    smtp = analytics.campaign_figures(session, me, known.smtp_campaign_id)
    assert (smtp.sent, smtp.delivered, smtp.delivered_estimated) == (2, 2, True)
    assert smtp.rates["open_rate"] == 0 and smtp.rates["click_to_open_rate"] is None


def test_timeline_links_and_recipients(session, known):
    me = Actor.system(known.workspace_id)
    points = analytics.campaign_timeline(session, me, known.campaign_id)
    hourly = {p.start: (p.opens, p.clicks) for p in points if p.granularity == "hour"}
    assert hourly == {
        T0 + timedelta(hours=1): (2, 3),
        T0 + timedelta(hours=2): (1, 1),
        T0 + timedelta(hours=3): (1, 0),
    }
    daily = [p for p in points if p.granularity == "day"]
    assert [(p.start, p.opens) for p in daily] == [(T0.replace(hour=0) + timedelta(days=2), 1)]

    links = analytics.top_links(session, me, known.campaign_id)
    assert [(x.url, x.unique_clicks, x.total_clicks) for x in links] == [
        (LINK_A, 2, 3),
        (LINK_B, 1, 1),
    ]

    rows, total = analytics.recipients_page(session, me, known.campaign_id, limit=4)
    assert total == 10 and len(rows) == 4
    first = rows[0]
    assert (first.delivered, first.opens, first.clicks) == (True, 3, 3)
    failed, n = analytics.recipients_page(session, me, known.campaign_id, status="failed")
    assert n == 1 and failed[0].status == "failed"
    csv_text = analytics.recipients_csv(session, me, known.campaign_id, chunk=3)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("email,status") and len(lines) == 11
    assert sum(",hard," in line for line in lines) == 1


def test_workspace_scoping_and_roles(session, known):
    other = other_workspace(session)
    me = Actor.system(known.workspace_id)
    with pytest.raises(NotFound):
        analytics.campaign_figures(session, me, other.campaign_id)
    with pytest.raises(PermissionDenied):
        analytics.campaign_figures(session, Actor(known.workspace_id, "nobody"), known.campaign_id)
    ids = [c.id for c in analytics.reportable_campaigns(session, me)]
    assert set(ids) == {known.campaign_id, known.idle_campaign_id, known.smtp_campaign_id}
    figures = analytics.compare_campaigns(session, me, [known.campaign_id, known.smtp_campaign_id])
    assert [f.unique_opens for f in figures] == [3, 0]


def test_deliverability_thresholds():
    healthy = analytics.deliverability(10_000, 100, 2)
    assert healthy.warnings == []
    close = analytics.deliverability(10_000, 420, 9)  # 4.2 % bounces, 0.09 % complaints
    assert any("close to SES review" in w for w in close.warnings)
    over = analytics.deliverability(1000, 120, 6)
    levels = {(t.name, t.kind): t.level for t in over.thresholds}
    assert levels[("Bounce rate", "SES pause")] == "over"
    assert levels[("Complaint rate", "SES pause")] == "over"
    assert analytics.deliverability(0, 0, 0).bounce_rate is None


def test_the_recipients_csv_never_writes_a_formula(session, known):
    from sqlalchemy import select

    from core.models import Message

    message = session.scalars(
        select(Message).where(Message.campaign_id == known.campaign_id).order_by(Message.id)
    ).first()
    message.error = '=HYPERLINK("https://evil.example","Click")'
    session.flush()
    me = Actor.system(known.workspace_id)
    csv_text = analytics.recipients_csv(session, me, known.campaign_id)
    assert "'=HYPERLINK" in csv_text
    assert ",=HYPERLINK" not in csv_text and ',"=HYPERLINK' not in csv_text
