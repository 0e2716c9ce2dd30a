"""The dashboard is right at any moment: rollups up to their high-water mark plus live SQL
beyond it equal a count of everything live, and equal a full rebuild's figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from core.analytics import reports as analytics
from core.analytics import rollups
from core.infra import clock
from core.infra.db import session_scope
from core.infra.permissions import Actor
from core.models import Campaign, Contact, Event, Message
from tests.analytics.dataset import T0, build_known, other_workspace
from tests.helpers import make_workspace

NOW = T0 + timedelta(days=3)


@pytest.fixture
def rollup_file(tmp_path, monkeypatch):
    from core.infra.config import settings

    path = tmp_path / "rollups.duckdb"
    monkeypatch.setattr(settings, "rollup_path", path)
    return path


@pytest.fixture
def world(live_db):
    clock.freeze(NOW)
    with session_scope() as session:
        known = build_known(session, make_workspace(session).id)
        other_workspace(session)
    return known


def figures(data: analytics.Dashboard) -> dict:
    """What the page shows, rates rounded (sums in another order differ in the last bit)."""

    def r(value):
        return None if value is None else round(value, 12)

    return {
        "subscribed": data.subscribed,
        "contacts": data.contacts,
        "change_30d": data.subscribed_change_30d,
        "sent_30d": data.sent_30d,
        "sent_all_time": data.sent_all_time,
        "avg_open_rate": r(data.avg_open_rate),
        "avg_click_rate": r(data.avg_click_rate),
        "rate_campaigns": data.rate_campaigns,
        "recent": [c.id for c in data.recent],
        "growth": data.growth,
        "health": (
            data.health.sent,
            data.health.bounces,
            data.health.complaints,
            data.health.warnings,
        ),
    }


def look(known, **kwargs) -> analytics.Dashboard:
    with session_scope() as session:
        return analytics.dashboard(session, Actor.system(known.workspace_id), **kwargs)


def send_a_campaign_now(known) -> int:
    """A campaign sent an hour ago, after the last rollup: 3 sent, 1 queued, with a delivery,
    an open, a click, a hard bounce, a complaint, an unsubscribe; and a new contact."""
    ws = known.workspace_id
    sent_at = NOW - timedelta(hours=1)
    with session_scope() as s:
        cid = s.scalar(
            insert(Campaign).returning(Campaign.id),
            {"workspace_id": ws, "name": "Just sent", "status": "sent", "started_at": sent_at},
        )
        contacts = list(
            s.scalars(
                insert(Contact).returning(Contact.id),
                [
                    {"workspace_id": ws, "email": f"late{i}@example.org", "created_at": NOW}
                    for i in range(4)
                ],
            )
        )
        mids = list(
            s.scalars(
                insert(Message).returning(Message.id),
                [
                    {
                        "workspace_id": ws,
                        "campaign_id": cid,
                        "contact_id": c,
                        "email": f"late{i}@example.org",
                        "status": "sent" if i < 3 else "queued",
                        "sent_at": sent_at if i < 3 else None,
                    }
                    for i, c in enumerate(contacts)
                ],
            )
        )

        def ev(i: int, type_: str, minutes: int, campaign=cid, at=None, **extra) -> dict:
            at = at or sent_at + timedelta(minutes=minutes)
            return {
                "workspace_id": ws,
                "campaign_id": campaign,
                "message_id": mids[i] if campaign == cid else known.message_ids[i],
                "contact_id": contacts[i] if campaign == cid else known.contact_ids[i],
                "type": type_,
                "occurred_at": at,
                "created_at": at,
                "dedupe_key": f"now-{campaign}-{i}-{type_}-{minutes}",
                "source": "own" if type_ in ("open", "click", "unsubscribe") else "ses",
                **extra,
            }

        s.execute(
            insert(Event),
            [
                ev(0, "delivered", 1),
                ev(0, "open", 5),
                ev(0, "click", 6, url="https://example.com/now"),
                ev(1, "bounce", 1, bounce_type="hard"),
                ev(2, "delivered", 1),
                ev(2, "complaint", 30),
                ev(2, "unsubscribe", 31),
                # The older campaign goes on: a new opener, and a contact lost again the
                # same day it was lost before (counted once for that day).
                ev(4, "open", 10, campaign=known.campaign_id),
                ev(2, "unsubscribe", 0, campaign=known.campaign_id, at=T0 + timedelta(hours=9)),
            ],
        )
    return cid


def test_without_rollups_everything_is_counted_live(world, rollup_file):
    before = look(world)
    assert not before.has_rollups and not rollup_file.exists()
    assert (before.sent_30d, before.sent_all_time) == (11, 11)
    assert before.subscribed_change_30d == 14 - 3
    assert before.avg_open_rate == pytest.approx((3 / 7 + 0) / 2)  # main and SMTP campaign
    assert before.health.bounce_rate == pytest.approx(3 / 11)  # 3 bounce events over 11 sent
    assert any("SES pause" in w for w in before.health.warnings)
    assert before.growth[-1]["cumulative_contacts"] == 14
    assert sum(row["lost_contacts"] for row in before.growth) == 3
    assert figures(before) == figures(look(world, use_rollups=False))


def test_a_campaign_sent_after_the_rollup_shows_and_matches_a_full_rebuild(world, rollup_file):
    built = rollups.build_rollups(lag_seconds=0)
    assert figures(look(world)) == figures(look(world, use_rollups=False))

    send_a_campaign_now(world)
    now = look(world)
    assert now.has_rollups and now.rollup_built_at == built.built_at
    assert (now.sent_30d, now.sent_all_time) == (14, 14)  # 11 before + 3 just sent
    assert now.health.bounces == 3 + 1 and now.health.complaints == 1 + 1
    assert now.subscribed_change_30d == (14 + 4) - (3 + 2)  # the repeat loss counts once
    assert now.recent[0].name == "Just sent"
    assert now.rate_campaigns == 3
    assert figures(now) == figures(look(world, use_rollups=False))

    rollups.build_rollups(full=True, lag_seconds=0)
    assert figures(look(world)) == figures(now)


def test_a_finished_campaign_whose_row_changed_is_counted_from_the_ledger(world, rollup_file):
    rollups.build_rollups(lag_seconds=0)
    # The failed message of the main campaign was retried and sent: the campaign is
    # finished again, with a new signature.
    with session_scope() as s:
        s.execute(
            update(Campaign)
            .where(Campaign.id == world.campaign_id)
            .values(status="sent", finished_at=NOW, updated_at=NOW + timedelta(minutes=5))
        )
        s.execute(
            update(Message)
            .where(Message.campaign_id == world.campaign_id, Message.status == "failed")
            .values(status="sent", sent_at=NOW)
        )
    now = look(world)
    assert now.sent_all_time == 12
    assert figures(now) == figures(look(world, use_rollups=False))


def test_rollups_of_another_database_are_not_used(world, rollup_file, monkeypatch):
    rollups.build_rollups(lag_seconds=0)
    monkeypatch.setattr(rollups, "source_key", lambda url: "another-database")
    data = look(world)
    assert not data.has_rollups and data.sent_all_time == 11
