"""The sunset policy: marking inactive contacts in one UPDATE, reactivation by a human open
or click as it is stored, the built-in segment, campaigns leaving inactive contacts out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.sql.expression import Executable

from core.campaigns import audience
from core.campaigns import service as campaigns
from core.contacts import sunset
from core.infra import clock
from core.ingest.store import NewEvent, store_events
from core.models import Campaign, Contact, Message, Segment
from core.segments import count_segment
from tests.helpers import actor_of, make_contact, make_user, make_workspace, sessions_on

DAY = timedelta(days=1)


def explain(session, statement: Executable) -> str:
    """PostgreSQL's plan for a statement (EXPLAIN, not run), its parameters bound as usual."""
    connection = session.connection()
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    rows = connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
    return "\n".join(row[0] for row in rows)


class World:
    """Campaigns sent to contacts at chosen days ago, and events on their messages."""

    def __init__(self, session) -> None:
        self.s = session
        self.ws = make_workspace(session)
        self.actor = actor_of(make_user(session, self.ws, role="admin"))
        self.now = clock.now()
        self.campaigns: list[int] = []
        self.messages: dict[tuple[int, int], Message] = {}

    def campaign(self) -> int:
        c = Campaign(workspace_id=self.ws.id, name=f"C{len(self.campaigns)}", status="sent")
        self.s.add(c)
        self.s.flush()
        self.campaigns.append(c.id)
        return c.id

    def contact(self, name: str) -> Contact:
        return make_contact(self.s, self.ws, email=f"{name}@example.com")

    def received(self, contact: Contact, days_ago: list[int], status: str = "sent") -> None:
        """One campaign per entry, sent to `contact` that many days ago."""
        for days in days_ago:
            cid = self.campaign()
            m = Message(
                workspace_id=self.ws.id,
                campaign_id=cid,
                contact_id=contact.id,
                email=contact.email,
                status=status,
                sent_at=self.now - days * DAY,
            )
            self.s.add(m)
            self.s.flush()
            self.messages[(contact.id, cid)] = m

    def event(self, contact: Contact, type_: str, days_ago: float, machine: bool = False):
        message = self.s.scalars(
            select(Message).where(Message.contact_id == contact.id).order_by(Message.id.desc())
        ).first()
        return store_events(
            self.s,
            [
                NewEvent(
                    workspace_id=self.ws.id,
                    type=type_,
                    dedupe_key=f"{type_}:{contact.id}:{days_ago}:{machine}",
                    occurred_at=self.now - days_ago * DAY,
                    source="own",
                    message=message,
                    contact_id=contact.id,
                    email=contact.email,
                    is_machine=machine,
                )
            ],
        )

    def inactive(self) -> set[str]:
        self.s.expire_all()
        return set(
            self.s.scalars(
                select(Contact.email).where(
                    Contact.workspace_id == self.ws.id, Contact.inactive_since.is_not(None)
                )
            )
        )


def test_marking_reactivation_and_the_policy(session):
    w = World(session)
    sunset.save_policy(session, w.actor, enabled=True, min_campaigns=3, min_days=30)
    silent = w.contact("silent")
    w.received(silent, [40, 20, 5])
    opened_early = w.contact("opened-early")  # opened after the first: two unanswered since
    w.received(opened_early, [40, 20, 5])
    w.event(opened_early, "open", 35)
    clicked = w.contact("clicked")  # a click after the last send
    w.received(clicked, [40, 20, 5])
    w.event(clicked, "click", 1)
    machine = w.contact("machine")  # only an image proxy "opened": still inactive
    w.received(machine, [40, 20, 5])
    w.event(machine, "open", 4, machine=True)
    recent = w.contact("recent")  # three unanswered, but over 20 days only
    w.received(recent, [20, 10, 5])
    few = w.contact("few")  # two campaigns only
    w.received(few, [60, 50])
    failed = w.contact("failed")  # messages that never left do not count
    w.received(failed, [40, 20, 5], status="failed")

    edited = session.scalar(select(Contact.updated_at).where(Contact.id == silent.id))
    result = sunset.recompute(session, w.ws.id)
    assert w.inactive() == {"silent@example.com", "machine@example.com"}
    # System state, not an edit: the contact's "Updated" stays.
    assert session.get(Contact, silent.id).updated_at == edited
    assert result == {"inactive": 2}
    assert sunset.count_inactive(session, w.actor) == 2

    # The built-in segment lists them; a campaign leaves them out unless it includes them.
    segment_id = sunset.builtin_segment_id(session, w.ws.id)
    assert session.get(Segment, segment_id).name == sunset.SEGMENT_NAME
    assert count_segment(session, w.actor, segment_id).count == 2
    counts = audience.count_recipients(session, w.actor, {"all": True})
    assert (counts["chosen"], counts["recipients"], counts["inactive"]) == (7, 5, 2)
    both = audience.count_recipients(session, w.actor, {"all": True, "include_inactive": True})
    assert both["recipients"] == 7
    ids = set(session.scalars(audience.recipients_query(session, w.ws.id, {"all": True})))
    assert silent.id not in ids and machine.id not in ids and few.id in ids
    # A campaign to the built-in segment includes them without being told.
    draft = campaigns.create_campaign(session, w.actor, "Come back")
    campaigns.update_audience(session, w.actor, draft.id, {"segment_id": segment_id})
    assert draft.audience["include_inactive"] is True
    assert audience.count_recipients(session, w.actor, draft.audience)["recipients"] == 2

    # A second recompute changes nothing and keeps the date they became inactive.
    marked = session.scalar(select(Contact.inactive_since).where(Contact.id == machine.id))
    clock.advance(DAY)
    assert sunset.recompute(session, w.ws.id) == {"inactive": 2}
    session.expire_all()
    assert session.get(Contact, machine.id).inactive_since == marked

    # A human open, as it is stored, makes a contact active at once; a machine open not.
    w.event(machine, "open", 0, machine=True)
    w.event(silent, "open", 0)
    assert w.inactive() == {"machine@example.com"}
    sunset.recompute(session, w.ws.id)
    assert w.inactive() == {"machine@example.com"}
    w.event(machine, "click", 0)
    assert w.inactive() == set()

    # The policy: stricter numbers unmark at the next recompute; off clears everything.
    w.received(few, [45])  # now three unanswered over 60 days
    sunset.recompute(session, w.ws.id)
    assert w.inactive() == {"few@example.com"}
    sunset.save_policy(session, w.actor, enabled=True, min_campaigns=4, min_days=30)
    sunset.recompute(session, w.ws.id)
    assert w.inactive() == set()
    sunset.save_policy(session, w.actor, enabled=True, min_campaigns=3, min_days=30)
    sunset.recompute(session, w.ws.id)
    assert w.inactive() == {"few@example.com"}
    sunset.save_policy(session, w.actor, enabled=False, min_campaigns=3, min_days=30)
    assert sunset.recompute(session, w.ws.id) == {"inactive": 0}
    assert sunset.get_policy(session, w.actor).sentence().startswith("Off")


def test_defaults_other_workspaces_and_the_daily_run(session):
    """Ten campaigns over 120 days by default; beat's run covers every workspace, each only
    its own contacts."""
    w = World(session)
    assert sunset.get_policy(session, w.actor) == sunset.Policy()
    nine = w.contact("nine")
    w.received(nine, [130 - 10 * i for i in range(9)])
    ten = w.contact("ten")
    w.received(ten, [130 - 10 * i for i in range(10)])
    other = World(session)
    stranger = other.contact("stranger")
    other.received(stranger, [130 - 10 * i for i in range(10)])
    sunset.save_policy(session, other.actor, enabled=False, min_campaigns=10, min_days=120)

    done = sunset.recompute_all(sessions_on(session))
    assert done[w.ws.id] == 1 and done[other.ws.id] == 0
    assert w.inactive() == {"ten@example.com"}
    assert other.inactive() == set()


def test_policy_limits_and_who_may_change_it(session):
    import pytest

    from core.infra.errors import PermissionDenied, ValidationFailed

    w = World(session)
    editor = actor_of(make_user(session, w.ws, role="editor"))
    with pytest.raises(PermissionDenied):
        sunset.save_policy(session, editor, enabled=True, min_campaigns=5, min_days=60)
    with pytest.raises(ValidationFailed, match="between 1 and 1,000"):
        sunset.save_policy(session, w.actor, enabled=True, min_campaigns=0, min_days=60)
    with pytest.raises(ValidationFailed, match="days"):
        sunset.save_policy(session, w.actor, enabled=True, min_campaigns=5, min_days=0)


def test_the_recompute_reads_both_partial_indexes_alone_on_postgresql(session, backend):
    """The flip's plan merges the two per-contact streams from `ix_event_engaged` and
    `ix_message_campaign_left` (index-only): a predicate that no longer matches the query
    (say, a new engaging event type) would silently send it back to scanning every event."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL's plan")
    w = World(session)
    ann = w.contact("ann")
    w.received(ann, [200, 150, 100])
    w.event(ann, "open", 199)
    statement = sunset.flip_statement(w.ws.id, sunset.Policy(), clock.now())
    with sunset.merged_plan(session):
        session.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: scan otherwise
        plan = explain(session, statement)
    assert "Index Only Scan using ix_event_engaged" in plan, plan
    assert "Index Only Scan using ix_message_campaign_left" in plan, plan
    assert "Hash" not in plan, plan
