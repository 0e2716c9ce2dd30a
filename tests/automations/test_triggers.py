"""Automation triggers (issue 18): segment_entered enrolls only newly matching contacts,
date_field enrolls on the date (or its anniversary) in the workspace's time zone under a
controlled clock, until_time falls back to the workspace's zone, and the exit pass reads
only what changed since its watermark, a batch at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from core.automations import create_automation, enroll_contact, run_pass
from core.automations.service import EXIT_MARK, exit_unsubscribed
from core.contacts.fields import create_custom_field
from core.infra import clock
from core.ingest.own import unsubscribe
from core.models import AutomationMatch, BeatMark, Contact, Enrollment, Segment
from core.segments.service import create_segment
from tests.automations.test_engine import T0, NoLimit, Recorder, make_setup
from tests.helpers import make_contact, sessions_on

CHECK = timedelta(seconds=61)  # past AUTOMATION_TRIGGER_SECONDS: the trigger is looked at


@pytest.fixture
def clocked():
    clock.freeze(T0)
    yield
    clock.reset()


def run(session, rec=None):
    return run_pass(sessions_on(session), transport=rec or Recorder(), rate_limiter=NoLimit())


def enrolled(session, automation_id: int) -> list[tuple[str, int]]:
    """(email, generation) of every enrollment, in order."""
    return [
        (email, gen)
        for email, gen in session.execute(
            select(Contact.email, Enrollment.generation)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Enrollment.automation_id == automation_id)
            .order_by(Enrollment.id)
        )
    ]


def move(session, contact: Contact, city: str) -> None:
    contact.city = city
    session.flush()


def test_segment_trigger_enrolls_only_newly_matching_contacts(session, clocked):
    s = make_setup(session)
    berliners = create_segment(
        session,
        s.actor,
        "Berlin",
        {"match": "all", "rules": [{"field": "city", "op": "eq", "value": "Berlin"}]},
    )
    ann = make_contact(session, s.ws, email="ann@example.com", city="Berlin")
    bob = make_contact(session, s.ws, email="bob@example.com", city="Paris")
    cy = make_contact(session, s.ws, email="cy@example.com", city="Paris", status="unsubscribed")
    flow = {
        "name": "Hello Berlin",
        "trigger": {"type": "segment_entered", "segment_id": berliners.id},
        "steps": [{"send": {"template_id": s.welcome}}],
    }
    automation = create_automation(session, s.actor, flow)
    # Ann was in the segment when it started: remembered, not new.
    remembered = session.scalars(
        select(AutomationMatch.contact_id).where(AutomationMatch.automation_id == automation.id)
    )
    assert list(remembered) == [ann.id]
    clock.advance(CHECK)
    assert run(session).enrolled == 0

    move(session, bob, "Berlin")
    move(session, cy, "Berlin")  # matches the rules, but unsubscribed
    clock.advance(timedelta(seconds=10))
    assert run(session).enrolled == 0  # looked at a few seconds ago: not yet
    clock.advance(CHECK)
    rec = Recorder()
    first = run(session, rec)
    assert (first.enrolled, first.sent) == (1, 1)
    assert rec.to("bob@example.com") == ["Welcome"]
    clock.advance(CHECK)
    assert run(session).enrolled == 0  # still matching is not new

    # Leaving and coming back: new again, so Ann (never enrolled) is enrolled now; Bob went
    # through it already and the automation has no reentry.
    move(session, ann, "Hamburg")
    move(session, bob, "Hamburg")
    clock.advance(CHECK)
    assert run(session).enrolled == 0
    move(session, ann, "Berlin")
    move(session, bob, "Berlin")
    clock.advance(CHECK)
    assert run(session).enrolled == 1
    assert enrolled(session, automation.id) == [("bob@example.com", 1), ("ann@example.com", 1)]

    # With reentry, someone who leaves and re-enters goes through again.
    again = create_automation(session, s.actor, {**flow, "name": "Again", "reentry": True})
    move(session, bob, "Hamburg")
    clock.advance(CHECK)
    run(session)
    move(session, bob, "Berlin")
    clock.advance(CHECK)
    assert run(session).enrolled == 1
    move(session, bob, "Hamburg")
    clock.advance(CHECK)
    run(session)
    move(session, bob, "Berlin")
    clock.advance(CHECK)
    assert run(session).enrolled == 1
    assert enrolled(session, again.id) == [("bob@example.com", 1), ("bob@example.com", 2)]
    assert enrolled(session, automation.id) == [("bob@example.com", 1), ("ann@example.com", 1)]


def test_a_deleted_segment_stops_its_trigger_not_the_pass(session, clocked):
    s = make_setup(session)
    seg = create_segment(
        session, s.actor, "Any", {"match": "all", "rules": [{"field": "city", "op": "is_empty"}]}
    )
    data = {
        "name": "Gone",
        "trigger": {"type": "segment_entered", "segment_id": seg.id},
        "steps": [{"send": {"template_id": s.welcome}}],
    }
    create_automation(session, s.actor, data)
    session.delete(session.get(Segment, seg.id))
    session.flush()
    make_contact(session, s.ws, email="new@example.com")
    clock.advance(CHECK)
    assert run(session).enrolled == 0


def test_date_trigger_enrolls_on_the_day_in_the_workspace_time_zone(session):
    s = make_setup(session)
    s.ws.timezone = "America/New_York"
    create_custom_field(session, s.actor, "birthday", "Birthday", "date")
    create_custom_field(session, s.actor, "renewal", "Renewal", "date")
    old = datetime(2020, 1, 1, 12, tzinfo=UTC)
    people = {
        "ann": {"birthday": "1990-05-13"},
        "bob": {"birthday": "1990-05-14"},
        "cy": {"renewal": "2026-05-20"},
        "dan": {"renewal": "2026-05-21"},
        "eve": {"birthday": "2000-02-29"},
        "gus": {"birthday": "2030-05-13"},  # not born yet: no anniversary before the date
    }
    contacts = {
        name: make_contact(session, s.ws, email=f"{name}@example.com", custom_fields=fields)
        for name, fields in people.items()
    }
    gone = make_contact(
        session,
        s.ws,
        email="gone@example.com",
        custom_fields={"birthday": "1990-05-13"},
        status="unsubscribed",
    )
    # Signed up on 14 May 2025, 08:00 in New York; everyone else long before.
    fay = make_contact(session, s.ws, email="fay@example.com")
    session.execute(update(Contact).where(Contact.workspace_id == s.ws.id).values(created_at=old))
    fay.created_at = datetime(2025, 5, 14, 12, tzinfo=UTC)
    session.flush()

    steps = [{"send": {"template_id": s.welcome}}]
    clock.freeze(datetime(2026, 5, 1, tzinfo=UTC))
    try:
        birthdays = create_automation(
            session,
            s.actor,
            {
                "name": "Birthday",
                "trigger": {
                    "type": "date_field",
                    "field": "custom_fields.birthday",
                    "yearly": True,
                },
                "steps": steps,
            },
        )
        renewals = create_automation(
            session,
            s.actor,
            {
                "name": "A week before renewal",
                "trigger": {
                    "type": "date_field",
                    "field": "custom_fields.renewal",
                    "offset_days": -7,
                },
                "steps": steps,
            },
        )
        signups = create_automation(
            session,
            s.actor,
            {
                "name": "Signup anniversary",
                "trigger": {"type": "date_field", "field": "created_at", "yearly": True},
                "steps": steps,
            },
        )

        # 14 May 02:00 UTC is still 13 May in New York.
        clock.freeze(datetime(2026, 5, 14, 2, tzinfo=UTC))
        assert run(session).enrolled == 2
        assert enrolled(session, birthdays.id) == [("ann@example.com", 1)]
        assert enrolled(session, renewals.id) == [("cy@example.com", 1)]
        clock.advance(CHECK)
        assert run(session).enrolled == 0  # once per occurrence

        clock.freeze(datetime(2026, 5, 14, 12, tzinfo=UTC))  # 14 May in New York
        assert run(session).enrolled == 3
        assert enrolled(session, birthdays.id) == [("ann@example.com", 1), ("bob@example.com", 1)]
        assert enrolled(session, renewals.id) == [("cy@example.com", 1), ("dan@example.com", 1)]
        assert enrolled(session, signups.id) == [("fay@example.com", 1)]

        # 2027 has no 29 February: Eve's birthday is on the 28th.
        clock.freeze(datetime(2027, 2, 28, 17, tzinfo=UTC))
        assert run(session).enrolled == 1
        assert enrolled(session, birthdays.id)[-1] == ("eve@example.com", 1)

        # A year on: Ann's birthday again; Cy's renewal moved a year, a new date value.
        contacts["cy"].custom_fields = {"renewal": "2027-05-20"}
        session.flush()
        clock.freeze(datetime(2027, 5, 13, 16, tzinfo=UTC))
        assert run(session).enrolled == 2
        assert enrolled(session, birthdays.id)[-1] == ("ann@example.com", 2)
        assert enrolled(session, renewals.id)[-1] == ("cy@example.com", 2)
        keys = session.scalars(
            select(Enrollment.trigger_key)
            .where(Enrollment.contact_id == contacts["ann"].id)
            .order_by(Enrollment.id)
        )
        assert list(keys) == ["2026-05-13", "2027-05-13"]
        assert gone.id not in session.scalars(select(Enrollment.contact_id))
    finally:
        clock.reset()


def test_until_time_uses_the_workspace_zone_when_the_contact_has_none(session, clocked):
    s = make_setup(session)
    s.ws.timezone = "Asia/Tokyo"
    data = {
        "name": "Morning",
        "trigger": {"type": "manual"},
        "steps": [{"wait": {"hours": 1}, "until_time": "09:00"}, {"send": {"template_id": s.tips}}],
    }
    automation = create_automation(session, s.actor, data)
    ann = make_contact(session, s.ws, email="ann@example.com")
    bob = make_contact(session, s.ws, email="bob@example.com", timezone="Europe/Berlin")
    for contact in (ann, bob):
        enroll_contact(session, s.actor, automation.id, contact.id)
    run(session)  # T0 is 08:00 UTC: 17:00 in Tokyo, 09:00 in Berlin; plus the hour's wait
    due = dict(
        session.execute(
            select(Enrollment.contact_id, Enrollment.due_at).where(
                Enrollment.automation_id == automation.id
            )
        ).all()
    )
    assert clock.as_utc(due[ann.id]) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 09:00 Tokyo
    assert clock.as_utc(due[bob.id]) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 Berlin


def _waiting(session, s, names):
    data = {
        "name": "Drip",
        "trigger": {"type": "manual"},
        "steps": [{"wait": {"days": 3}}, {"send": {"template_id": s.tips}}],
    }
    automation = create_automation(session, s.actor, data)
    contacts = [make_contact(session, s.ws, email=f"{n}@example.com") for n in names]
    for contact in contacts:
        enroll_contact(session, s.actor, automation.id, contact.id)
    run(session)
    return automation, contacts


def _statuses(session, automation_id):
    return [
        (status, reason)
        for status, reason in session.execute(
            select(Enrollment.status, Enrollment.reason)
            .where(Enrollment.automation_id == automation_id)
            .order_by(Enrollment.id)
        )
    ]


def test_the_exit_pass_works_through_status_changes_a_batch_at_a_time(session, clocked):
    s = make_setup(session)
    automation, (ann, bob, cy, dan) = _waiting(session, s, ["ann", "bob", "cy", "dan"])
    assert exit_unsubscribed(session) == 0
    marked = clock.as_utc(session.get(BeatMark, EXIT_MARK).at)
    assert marked == clock.now()

    clock.advance(timedelta(minutes=5))
    for contact in (ann, bob, cy):
        unsubscribe(session, s.actor, contact.id, None, "page")
    clock.advance(timedelta(minutes=1))
    assert exit_unsubscribed(session, batch=2) == 2
    session.expire_all()
    assert clock.as_utc(session.get(BeatMark, EXIT_MARK).at) == marked  # not all seen yet
    assert exit_unsubscribed(session, batch=2) == 1
    session.expire_all()
    assert clock.as_utc(session.get(BeatMark, EXIT_MARK).at) == clock.now()
    assert _statuses(session, automation.id) == [
        ("exited", "unsubscribed"),
        ("exited", "unsubscribed"),
        ("exited", "unsubscribed"),
        ("active", ""),
    ]


def test_the_exit_pass_reads_only_changes_since_its_mark(session, clocked):
    """A status change stamped long before the mark is not read again (the pass costs what
    changed, not how many contacts there are); the engine still lets that contact go at its
    next step."""
    s = make_setup(session)
    automation, (ann, bob) = _waiting(session, s, ["ann", "bob"])
    exit_unsubscribed(session)
    session.execute(
        update(Contact)
        .where(Contact.id == ann.id)
        .values(status="bounced", updated_at=clock.now() - timedelta(days=1))
    )
    clock.advance(timedelta(minutes=1))
    assert exit_unsubscribed(session) == 0
    assert _statuses(session, automation.id) == [("active", ""), ("active", "")]
    clock.advance(timedelta(days=3, minutes=1))
    rec = Recorder()
    result = run(session, rec)
    assert (result.sent, rec.to("bob@example.com")) == (1, ["Tips"])
    session.expire_all()
    assert _statuses(session, automation.id) == [("exited", "bounced"), ("finished", "")]


def test_a_date_trigger_catches_up_the_days_beat_missed(session):
    """Beat idle for a month, then the worker down over a midnight: each look enrolls the
    missed days' contacts once (their own occurrence as the key), a week back at most."""
    s = make_setup(session)
    create_custom_field(session, s.actor, "renewal", "Renewal", "date")
    days = {"ann": "2026-06-02", "bob": "2026-06-03", "cy": "2026-06-04", "dan": "2026-06-05"}
    days |= {"old": "2026-05-20", "edge": "2026-05-28"}  # 13 and 5 days before 2 June
    for name, day in days.items():
        make_contact(session, s.ws, email=f"{name}@example.com", custom_fields={"renewal": day})
    clock.freeze(datetime(2026, 5, 1, 12, tzinfo=UTC))
    try:
        automation = create_automation(
            session,
            s.actor,
            {
                "name": "Renewal day",
                "trigger": {"type": "date_field", "field": "custom_fields.renewal"},
                "steps": [{"wait": {"days": 30}}, {"send": {"template_id": s.welcome}}],
            },
        )
        assert run(session).enrolled == 0
        clock.freeze(datetime(2026, 6, 2, 23, 50, tzinfo=UTC))  # a month later
        assert run(session).enrolled == 2  # Ann today, Edge five days late; not Old
        clock.freeze(datetime(2026, 6, 4, 0, 10, tzinfo=UTC))  # the 3rd was never looked at
        assert run(session).enrolled == 2
        keys = dict(
            session.execute(
                select(Contact.email, Enrollment.trigger_key)
                .join(Contact, Contact.id == Enrollment.contact_id)
                .where(Enrollment.automation_id == automation.id)
            ).all()
        )
        assert keys == {
            "edge@example.com": "2026-05-28",
            "ann@example.com": "2026-06-02",
            "bob@example.com": "2026-06-03",
            "cy@example.com": "2026-06-04",
        }
        clock.advance(CHECK)
        assert run(session).enrolled == 0  # each day's contacts once
        clock.freeze(datetime(2026, 6, 5, 9, tzinfo=UTC))
        assert run(session).enrolled == 1  # Dan, on his day
    finally:
        clock.reset()


def test_the_exit_pass_lets_a_contact_go_from_every_automation_at_once(session, clocked):
    """One UPDATE: a contact in two automations leaves both, the contact's status as the
    reason; the batch counts contacts, so the mark waits for a pass that saw them all."""
    s = make_setup(session)
    first, (ann, bob) = _waiting(session, s, ["ann", "bob"])
    second = create_automation(
        session,
        s.actor,
        {
            "name": "Second",
            "trigger": {"type": "manual"},
            "steps": [{"wait": {"days": 3}}, {"send": {"template_id": s.tips}}],
        },
    )
    enroll_contact(session, s.actor, second.id, ann.id)
    exit_unsubscribed(session)
    marked = clock.as_utc(session.get(BeatMark, EXIT_MARK).at)
    clock.advance(timedelta(minutes=1))
    session.execute(update(Contact).where(Contact.id == ann.id).values(status="complained"))
    assert exit_unsubscribed(session, batch=1) == 2
    session.expire_all()
    assert clock.as_utc(session.get(BeatMark, EXIT_MARK).at) == marked  # a full batch
    assert _statuses(session, first.id) == [("exited", "complained"), ("active", "")]
    assert _statuses(session, second.id) == [("exited", "complained")]
    assert exit_unsubscribed(session, batch=1) == 0
    session.expire_all()
    assert clock.as_utc(session.get(BeatMark, EXIT_MARK).at) == clock.now()
