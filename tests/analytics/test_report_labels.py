"""The report agrees with itself and speaks a marketer's words: the recipients table's
"delivered" ticks add up to the delivered figure (reported or estimated), and "Compare
campaigns" names every figure and rate (issue 16)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from core.analytics import reports as analytics
from core.infra.permissions import Actor
from core.models import Campaign, Event, Message
from tests.analytics.dataset import T0, build_known
from tests.helpers import make_contact, make_workspace


@pytest.fixture
def known(session):
    ws = make_workspace(session)
    return build_known(session, ws.id)


def _ticked(session, me: Actor, campaign_id: int) -> int:
    rows, total = analytics.recipients_page(session, me, campaign_id, limit=1000)
    assert len(rows) == total
    return sum(row.delivered for row in rows)


def _csv_ticked(session, me: Actor, campaign_id: int) -> int:
    lines = analytics.recipients_csv(session, me, campaign_id, chunk=2).strip().splitlines()
    column = lines[0].split(",").index("delivered")
    return sum(line.split(",")[column] == "True" for line in lines[1:])


def _outbox_campaign(session, workspace_id: int) -> int:
    """Sent through a transport that reports no deliveries: 5 sent (one bounced later, as
    a mail server's bounce message would say), 1 uncertain, 1 failed with a stray bounce,
    1 still queued."""
    from core.models import Workspace

    workspace = session.get(Workspace, workspace_id)
    campaign_id = session.scalar(
        insert(Campaign).returning(Campaign.id),
        {"workspace_id": workspace_id, "name": "Outbox", "status": "sent", "started_at": T0},
    )
    statuses = ["sent"] * 5 + ["uncertain", "failed", "queued"]
    mids = []
    for i, status in enumerate(statuses):
        contact = make_contact(session, workspace, email=f"outbox{i}@example.org")
        mids.append(
            session.scalar(
                insert(Message).returning(Message.id),
                {
                    "workspace_id": workspace_id,
                    "campaign_id": campaign_id,
                    "contact_id": contact.id,
                    "email": contact.email,
                    "status": status,
                    "sent_at": T0 if status in ("sent", "uncertain") else None,
                },
            )
        )
    bounces = [(mids[1], "hard"), (mids[6], "soft")]  # the second is on the failed one
    session.execute(
        insert(Event),
        [
            {
                "workspace_id": workspace_id,
                "campaign_id": campaign_id,
                "message_id": mid,
                "type": "bounce",
                "bounce_type": kind,
                "source": "ses",
                "occurred_at": T0 + timedelta(minutes=5),
                "dedupe_key": f"outbox-bounce-{mid}",
            }
            for mid, kind in bounces
        ],
    )
    session.flush()
    return campaign_id


def test_delivered_ticks_add_up_to_the_reported_figure(session, known):
    me = Actor.system(known.workspace_id)
    figures = analytics.campaign_figures(session, me, known.campaign_id)
    assert not figures.delivered_estimated
    assert _ticked(session, me, known.campaign_id) == figures.delivered == 7
    assert _csv_ticked(session, me, known.campaign_id) == 7


def test_delivered_ticks_add_up_to_the_estimated_figure(session, known):
    """The outbox and SMTP report no deliveries: the header estimates sent minus bounced,
    and the table ticks exactly those rows (it used to tick none)."""
    me = Actor.system(known.workspace_id)
    smtp = analytics.campaign_figures(session, me, known.smtp_campaign_id)
    assert smtp.delivered_estimated and smtp.delivered == 2
    assert _ticked(session, me, known.smtp_campaign_id) == 2

    campaign_id = _outbox_campaign(session, known.workspace_id)
    figures = analytics.campaign_figures(session, me, campaign_id)
    assert figures.delivered_estimated
    assert (figures.sent, figures.bounces) == (6, 2)
    # 6 sent (one uncertain), one of them bounced; the bounce on the failed message was
    # never a delivery to take away.
    assert figures.delivered == 5
    assert _ticked(session, me, campaign_id) == 5
    assert _csv_ticked(session, me, campaign_id) == 5
    rows, _ = analytics.recipients_page(session, me, campaign_id, limit=100)
    assert [r.delivered for r in rows] == [True, False, True, True, True, True, False, False]
    # What the donut draws adds up to the recipients.
    assert figures.delivered + figures.bounces + figures.not_reported + figures.failed <= 8


def test_compare_campaigns_speaks_a_marketers_words(session, known):
    me = Actor.system(known.workspace_id)
    rows = analytics.comparison_rows(
        analytics.compare_campaigns(session, me, [known.campaign_id, known.smtp_campaign_id])
    )
    assert all(set(row) == {"Figure", "November news", "Over SMTP"} for row in rows)
    by_figure = {row["Figure"]: row for row in rows}
    assert by_figure["People who opened"]["November news"] == "3"
    assert by_figure["Click-to-open rate"]["November news"] == "66.7%"
    assert by_figure["Click-to-open rate"]["Over SMTP"] == "–"
    assert by_figure["Delivered (estimated where marked ≈)"]["Over SMTP"] == "≈ 2"
    text = " ".join(str(v) for row in rows for v in [*row, *row.values()])
    for raw in ("campaign_id", "uncertain", "_rate", "CTO", "delivered_estimated"):
        assert raw not in text
    # Rates and labels come from one table: every rate has a label and a sentence of help.
    assert set(analytics.RATE_LABELS) == set(analytics.RATE_HELP) == set(analytics.RATE_DEFINITIONS)


def test_two_campaigns_with_one_name_stay_apart(session, known):
    me = Actor.system(known.workspace_id)
    session.get(Campaign, known.smtp_campaign_id).name = "November news"
    session.flush()
    rows = analytics.comparison_rows(
        analytics.compare_campaigns(session, me, [known.campaign_id, known.smtp_campaign_id])
    )
    assert set(rows[0]) == {
        "Figure",
        f"November news (#{known.campaign_id})",
        f"November news (#{known.smtp_campaign_id})",
    }
