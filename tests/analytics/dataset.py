"""A hand-built campaign with known figures, written with bulk inserts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.models import Campaign, Contact, Event, Message, Workspace

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
LINK_A = "https://example.com/a"
LINK_B = "https://example.com/b"


@dataclass
class Known:
    workspace_id: int
    campaign_id: int
    idle_campaign_id: int
    smtp_campaign_id: int
    message_ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)


# What the report must say about the main campaign.
EXPECTED = {
    "recipients": 10,
    "sent": 9,  # 8 sent + 1 uncertain
    "uncertain": 1,
    "failed": 1,
    "delivered": 7,
    "delivered_estimated": False,
    "hard_bounces": 1,
    "soft_bounces": 1,
    "bounces": 2,
    "complaints": 1,
    "unsubscribes": 1,
    "unique_opens": 3,
    "total_opens": 5,
    "machine_opens": 1,
    "unique_clicks": 2,
    "total_clicks": 4,
}
EXPECTED_RATES = {
    "open_rate": 3 / 7,
    "click_rate": 2 / 7,
    "click_to_open_rate": 2 / 3,
    "bounce_rate": 2 / 9,
    "complaint_rate": 1 / 7,
    "unsubscribe_rate": 1 / 7,
}

_seq = iter(range(1, 10**9))


def _contacts(session: Session, workspace_id: int, n: int, domain: str) -> list[int]:
    rows = [
        {
            "workspace_id": workspace_id,
            "email": f"p{next(_seq)}@{domain}",
            "created_at": T0 - timedelta(days=2),
        }
        for _ in range(n)
    ]
    return list(session.scalars(insert(Contact).returning(Contact.id), rows))


def _messages(session: Session, ws: int, campaign: int, contacts: list[int], statuses) -> list[int]:
    rows = [
        {
            "workspace_id": ws,
            "campaign_id": campaign,
            "contact_id": cid,
            "email": f"m{next(_seq)}@{'gmail.com' if i % 2 else 'example.org'}",
            "status": status,
            "sent_at": T0 + timedelta(minutes=i) if status in ("sent", "uncertain") else None,
        }
        for i, (cid, status) in enumerate(zip(contacts, statuses, strict=True))
    ]
    return list(session.scalars(insert(Message).returning(Message.id), rows))


def event_rows(ws: int, campaign: int, mids: list[int], cids: list[int]) -> list[dict]:
    """The main campaign's events (indexes are 0-based: m[0] is message 1)."""
    out: list[dict] = []

    def ev(i: int, type_: str, after: timedelta, **extra) -> None:
        at = T0 + after
        out.append(
            {
                "workspace_id": ws,
                "campaign_id": campaign,
                "message_id": mids[i],
                "contact_id": cids[i],
                "type": type_,
                "occurred_at": at,
                "created_at": at,
                "dedupe_key": f"k{next(_seq)}",
                "source": extra.pop("source", "ses" if type_ not in ("open", "click") else "own"),
                **extra,
            }
        )

    for i in (0, 1, 2, 3, 4, 5, 9):
        ev(i, "delivered", timedelta(minutes=1))
    ev(6, "bounce", timedelta(minutes=1), bounce_type="hard")
    ev(7, "bounce", timedelta(minutes=1), bounce_type="soft")
    ev(7, "bounce", timedelta(minutes=30), bounce_type="soft")
    # Human opens from our own pixel: message 1 three times (once after 48 h), 2 and 3 once.
    ev(0, "open", timedelta(hours=1))
    ev(0, "open", timedelta(hours=1, minutes=20))
    ev(0, "open", timedelta(hours=50))
    ev(1, "open", timedelta(hours=2))
    ev(2, "open", timedelta(hours=3))
    ev(3, "open", timedelta(minutes=2), is_machine=True)  # a prefetcher
    ev(4, "open", timedelta(hours=1), source="ses")  # the other source: never counted
    ev(4, "open", timedelta(hours=2), source="ses")
    ev(0, "click", timedelta(hours=1, minutes=1), url=LINK_A)
    ev(0, "click", timedelta(hours=1, minutes=2), url=LINK_A)
    ev(0, "click", timedelta(hours=1, minutes=3), url=LINK_B)
    ev(1, "click", timedelta(hours=2, minutes=1), url=LINK_A)
    ev(2, "click", timedelta(hours=3, minutes=1), url=LINK_B, source="ses")
    ev(5, "complaint", timedelta(hours=5))
    ev(2, "unsubscribe", timedelta(hours=4), source="own")
    return out


def build_known(session: Session, workspace_id: int) -> Known:
    """The main campaign (see EXPECTED), a queued one, and one sent without delivery reports."""
    campaigns = [
        {"workspace_id": workspace_id, "name": name, "status": status, "started_at": start}
        for name, status, start in (
            ("November news", "sent", T0),
            ("Not started", "sending", T0 + timedelta(days=1)),
            ("Over SMTP", "sent", T0 + timedelta(days=2)),
        )
    ]
    main, idle, smtp = session.scalars(insert(Campaign).returning(Campaign.id), campaigns)
    cids = _contacts(session, workspace_id, 14, "example.org")
    statuses = ["sent"] * 8 + ["failed", "uncertain"]
    mids = _messages(session, workspace_id, main, cids[:10], statuses)
    _messages(session, workspace_id, idle, cids[10:12], ["queued", "queued"])
    _messages(session, workspace_id, smtp, cids[12:14], ["sent", "sent"])
    session.execute(insert(Event), event_rows(workspace_id, main, mids, cids))
    session.flush()
    return Known(workspace_id, main, idle, smtp, mids, cids)


def other_workspace(session: Session) -> Known:
    """A second workspace with its own campaign, to prove nobody sees its rows."""
    ws = Workspace(slug=f"other-{next(_seq)}", name="Other")
    session.add(ws)
    session.flush()
    return build_known(session, ws.id)
