"""Automations in-process (issue 18): validation with JSON paths, enrollment once, the
engine's steps under a controlled clock, exits, pause and resume, and a lost worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from core.automations import (
    AutomationNotRunnable,
    InvalidAutomation,
    automation_status,
    check_timezone,
    create_automation,
    enroll_contact,
    parse_definition,
    pause_automation,
    resume_automation,
    run_pass,
)
from core.automations.engine import wait_until
from core.automations.model import WaitStep
from core.contacts.lists import add_members, remove_members
from core.infra import clock
from core.infra.errors import ValidationFailed
from core.ingest.own import record_open, unsubscribe
from core.ingest.store import MACHINE_OPEN_SECONDS
from core.mail.transports import Outgoing
from core.models import ContactList, Enrollment, ListMembership, Message, Template
from tests.helpers import actor_of, make_contact, make_user, make_workspace, sessions_on

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/115.0"


class Recorder:
    """A transport that keeps what it was given (not idempotent, like SES or SMTP)."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, message: Outgoing) -> str:
        self.sent.append(message)
        return f"rec-{len(self.sent)}"

    def to(self, email: str) -> list[str]:
        """Subjects of what `email` received, in order."""
        out = []
        for m in self.sent:
            if m.recipients == [email]:
                head = m.raw.split(b"\r\n\r\n", 1)[0].decode()
                out.append(next(h[9:] for h in head.split("\r\n") if h.startswith("Subject: ")))
        return out


class NoLimit:
    def reserve(self, key: str, n: int, rate: float) -> float:
        return 0.0

    def penalize(self, key: str, seconds: float) -> None:
        pass


@dataclass
class Setup:
    actor: object
    ws: object
    welcome: int
    tips: int
    offer: int
    list_id: int
    vip_id: int


def make_setup(session) -> Setup:
    ws = make_workspace(session, from_email="hello@acme.io", from_name="Acme", max_send_rate=1000)
    actor = actor_of(make_user(session, ws))
    templates = [
        Template(
            workspace_id=ws.id, name=n, subject=f"{n} {{{{ first_name }}}}", html=f"<p>{n}</p>"
        )
        for n in ("Welcome", "Tips", "Offer")
    ]
    lists = [ContactList(workspace_id=ws.id, name=n) for n in ("Newsletter", "VIP")]
    session.add_all(templates + lists)
    session.flush()
    return Setup(actor, ws, *(t.id for t in templates), *(lst.id for lst in lists))


def welcome_series(s: Setup, **extra) -> dict:
    return {
        "name": "Welcome series",
        "trigger": {"type": "list_joined", "list": "Newsletter"},
        "steps": [
            {"send": {"template_id": s.welcome}},
            {"wait": {"days": 3}},
            {
                "branch": {
                    "if": {"opened": "previous"},
                    "then": [{"send": {"template_id": s.tips}}],
                    "else": [{"send": {"template_id": s.offer, "subject": "Last chance"}}],
                }
            },
        ],
        **extra,
    }


def run(session, transport) -> object:
    return run_pass(sessions_on(session), transport=transport, rate_limiter=NoLimit())


@pytest.fixture
def at_t0():
    clock.freeze(T0)
    yield
    clock.reset()


def test_definition_errors_carry_the_json_path(session):
    s = make_setup(session)
    cases = [
        ({"trigger": {"type": "manual"}, "steps": [{"exit": {}}]}, "name"),
        (
            {"name": "x", "trigger": {"type": "list_joined"}, "steps": [{"exit": {}}]},
            "trigger.list",
        ),
        (
            {
                "name": "x",
                "trigger": {"type": "manual"},
                "steps": [{"wait": {"days": 1, "hours": 1}}],
            },
            "steps[0].wait",
        ),
        (
            {
                "name": "x",
                "trigger": {"type": "manual"},
                "steps": [{"wait": {"days": 1}, "until_time": "25:00"}],
            },
            "steps[0].until_time",
        ),
        (
            {
                "name": "x",
                "trigger": {"type": "manual"},
                "steps": [{"branch": {"if": {"opened": "previous"}, "then": [{"sned": {}}]}}],
            },
            "steps[0].branch.then[0]",
        ),
    ]
    for data, path in cases:
        with pytest.raises(InvalidAutomation) as caught:
            parse_definition(data)
        assert caught.value.path == path, (data, caught.value)
    against_workspace = [
        ({**welcome_series(s), "trigger": {"type": "list_joined", "list": "Nope"}}, "trigger.list"),
        (
            {**welcome_series(s), "steps": [{"send": {"template_id": 999999}}]},
            "steps[0].send.template_id",
        ),
        (
            {**welcome_series(s), "steps": welcome_series(s)["steps"][1:]},
            "steps[1].branch.if.opened",  # no send before the branch: nothing to have opened
        ),
        (
            {**welcome_series(s), "steps": [{"update": {"add_list": "Nope"}}]},
            "steps[0].update.add_list",
        ),
        (
            {**welcome_series(s), "trigger": {"type": "segment_entered", "segment_id": 999999}},
            "trigger.segment_id",
        ),
        (
            {**welcome_series(s), "trigger": {"type": "date_field", "field": "custom_fields.x"}},
            "trigger.field",  # no such custom field
        ),
        (
            {**welcome_series(s), "trigger": {"type": "date_field", "field": "first_name"}},
            "trigger.field",  # a custom date field or created_at
        ),
    ]
    for data, path in against_workspace:
        with pytest.raises(InvalidAutomation) as caught:
            create_automation(session, s.actor, data)
        assert caught.value.path == path, (data, caught.value)
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(ValidationFailed):
        check_timezone("Mars/Olympus_Mons")


def test_welcome_series_enrolls_once_and_branches_on_human_opens(session, at_t0):
    s = make_setup(session)
    before = make_contact(session, s.ws, email="before@example.com")
    add_members(session, s.actor, s.list_id, [before.id])  # joined before it started
    clock.advance(timedelta(minutes=1))
    automation = create_automation(session, s.actor, welcome_series(s))
    ann, bob, cy = (
        make_contact(session, s.ws, email=f"{n}@example.com", first_name=n.title())
        for n in ("ann", "bob", "cy")
    )
    gone = make_contact(session, s.ws, email="gone@example.com", status="unsubscribed")
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [ann.id, bob.id, cy.id, gone.id])
    rec = Recorder()
    counted = (
        ("mailwright_messages_total", {"transport": "recorder", "outcome": "sent"}),
        ("mailwright_workspace_sent_total", {"workspace_id": str(s.ws.id)}),
    )
    before = [REGISTRY.get_sample_value(n, labels) or 0.0 for n, labels in counted]

    first = run(session, rec)
    assert (first.enrolled, first.sent) == (3, 3)
    # Automation mails count where a campaign's do (what the send-rate alert compares).
    after = [REGISTRY.get_sample_value(n, labels) or 0.0 for n, labels in counted]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 3]
    assert rec.to("ann@example.com") == ["Welcome Ann"]
    assert rec.to("before@example.com") == [] and rec.to("gone@example.com") == []
    assert run(session, rec).sent == 0  # waiting three days

    # Ann opens (a person, after the machine-open window); Bob's open is a scanner's.
    clock.advance(timedelta(seconds=MACHINE_OPEN_SECONDS + 60))
    mid = {m.contact_id: m.id for m in session.scalars(select(Message))}
    record_open(session, s.actor, mid[ann.id], HUMAN, "203.0.113.9")
    clock.freeze(clock.now())
    record_open(session, s.actor, mid[bob.id], "Mozilla/5.0 (compatible; Barracuda)", None)

    # Leaving and re-joining the list does not enroll again.
    remove_members(session, s.actor, s.list_id, [cy.id])
    add_members(session, s.actor, s.list_id, [cy.id])
    clock.advance(timedelta(days=3))
    later = run(session, rec)
    assert (later.enrolled, later.sent, later.finished) == (0, 3, 3)
    assert rec.to("ann@example.com") == ["Welcome Ann", "Tips Ann"]
    assert rec.to("bob@example.com") == ["Welcome Bob", "Last chance"]
    assert rec.to("cy@example.com") == ["Welcome Cy", "Last chance"]
    assert run(session, rec).sent == 0
    assert len(rec.sent) == 6

    status = automation_status(session, s.actor, automation.id)
    assert {k: status[k] for k in ("status", "enrolled", "active", "finished", "exited")} == {
        "status": "active",
        "enrolled": 3,
        "active": 0,
        "finished": 3,
        "exited": 0,
    }
    assert status["steps"] == [
        {"path": "0", "type": "send", "waiting": 0, "sent": 3, "opened": 1, "clicked": 0},
        {"path": "1", "type": "wait", "waiting": 0},
        {"path": "2", "type": "branch", "waiting": 0},
        {"path": "2.then.0", "type": "send", "waiting": 0, "sent": 1, "opened": 0, "clicked": 0},
        {"path": "2.else.0", "type": "send", "waiting": 0, "sent": 2, "opened": 0, "clicked": 0},
    ]


def test_an_unsubscribe_during_a_wait_stops_the_rest(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann, bob = (make_contact(session, s.ws, email=f"{n}@example.com") for n in ("ann", "bob"))
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [ann.id, bob.id])
    rec = Recorder()
    assert run(session, rec).sent == 2
    unsubscribe(session, s.actor, ann.id, None, "page")
    clock.advance(timedelta(days=4))
    result = run(session, rec)
    assert (result.exited, result.sent) == (1, 1)
    assert len(rec.to("ann@example.com")) == 1 and len(rec.to("bob@example.com")) == 2
    gone = session.scalars(select(Enrollment).where(Enrollment.contact_id == ann.id)).one()
    assert (gone.status, gone.reason) == ("exited", "unsubscribed")
    assert automation_status(session, s.actor, automation.id)["exited"] == 1


def test_a_lost_worker_repeats_no_send(session, at_t0):
    """A worker killed after the transport took the message but before the enrollment moved
    on: the ledger says "sent", so the next pass moves on without sending it again. Killed
    while the message was in flight: sent once more and marked as a possible duplicate."""
    s = make_setup(session)
    steps = [{"send": {"template_id": s.welcome}}, {"send": {"template_id": s.tips}}]
    data = {"name": "Two", "trigger": {"type": "manual"}, "steps": steps}
    automation = create_automation(session, s.actor, data)
    ann, bob = (make_contact(session, s.ws, email=f"{n}@example.com") for n in ("ann", "bob"))
    for c in (ann, bob):
        enroll_contact(session, s.actor, automation.id, c.id)
    rec = Recorder()
    run(session, rec)
    assert len(rec.sent) == 4
    # Rewind both enrollments to their first step with a lapsed lease, as a lost worker
    # leaves them: Ann's message recorded as sent, Bob's still claimed ("sending").
    session.execute(
        update(Enrollment).values(
            status="active", step_path="0", due_at=clock.now(), finished_at=None
        )
    )
    session.execute(
        update(Message)
        .where(Message.contact_id == bob.id, Message.step_path == "0")
        .values(status="sending")
    )
    session.execute(update(Message).where(Message.step_path == "1").values(status="queued"))
    session.execute(
        update(Message)
        .where(Message.step_path == "1", Message.contact_id == ann.id)
        .values(status="sent")
    )
    clock.advance(timedelta(minutes=5))  # the lost worker's leases lapse
    again = run(session, rec)
    assert again.sent == 2  # Bob's first (in flight when lost) and Bob's second
    assert rec.to("ann@example.com") == ["Welcome", "Tips"]
    assert rec.to("bob@example.com") == ["Welcome", "Tips", "Welcome", "Tips"]
    bob_first = session.scalars(
        select(Message).where(Message.contact_id == bob.id, Message.step_path == "0")
    ).one()
    assert bob_first.status == "sent" and bob_first.error.startswith("possible duplicate")
    # The ledger allows one row per enrollment and step.
    assert session.query(Message).count() == 4


def test_pause_holds_waits_and_resume_moves_them_on(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann = make_contact(session, s.ws, email="ann@example.com")
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [ann.id])
    rec = Recorder()
    run(session, rec)
    pause_automation(session, s.actor, automation.id)
    with pytest.raises(AutomationNotRunnable):
        pause_automation(session, s.actor, automation.id)
    clock.advance(timedelta(days=5))
    assert run(session, rec).sent == 0  # paused: nothing moves
    resume_automation(session, s.actor, automation.id)
    clock.advance(timedelta(days=2))  # 3 days of wait: 1 before the pause... not yet
    assert run(session, rec).sent == 0
    clock.advance(timedelta(days=1, minutes=2))
    assert run(session, rec).sent == 1


def test_update_steps_exit_and_the_list_they_add_enrolls_elsewhere(session, at_t0):
    s = make_setup(session)
    vip = {
        "name": "VIP welcome",
        "trigger": {"type": "list_joined", "list": "VIP"},
        "steps": [{"send": {"template_id": s.offer}}],
    }
    create_automation(session, s.actor, vip)
    flow = {
        "name": "Tagger",
        "trigger": {"type": "manual"},
        "steps": [
            {"update": {"set_field": "company", "value": "Initech"}},
            {"update": {"add_list": "VIP"}},
            {"exit": {}},
            {"send": {"template_id": s.welcome}},
        ],
    }
    tagger = create_automation(session, s.actor, flow)
    ann = make_contact(session, s.ws, email="ann@example.com")
    clock.advance(timedelta(minutes=1))
    assert enroll_contact(session, s.actor, tagger.id, ann.id) is not None
    assert enroll_contact(session, s.actor, tagger.id, ann.id) is None  # once, no reentry
    rec = Recorder()
    run(session, rec)
    session.refresh(ann)
    assert ann.company == "Initech"
    assert session.get(ListMembership, (s.vip_id, ann.id)) is not None
    e = session.scalars(select(Enrollment).where(Enrollment.automation_id == tagger.id)).one()
    assert (e.status, e.reason) == ("exited", "exit step")
    run(session, rec)  # the next pass enrolls Ann in the VIP automation
    assert rec.to("ann@example.com") == ["Offer"]


def test_until_time_uses_the_contacts_time_zone():
    step = parse_definition(
        {
            "name": "x",
            "trigger": {"type": "manual"},
            "steps": [{"wait": {"hours": 1}, "until_time": "09:00"}],
        }
    ).steps[0]
    assert isinstance(step, WaitStep)
    entered = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 11:00 in Berlin, 05:00 in New York
    assert wait_until(step, entered, None) == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert wait_until(step, entered, "Europe/Berlin") == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert wait_until(step, entered, "America/New_York") == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def test_contacts_keep_a_checked_time_zone(session):
    from core.contacts.service import ContactInput, create_contact, update_contact

    s = make_setup(session)
    with pytest.raises(ValidationFailed, match="not a time zone"):
        create_contact(session, s.actor, ContactInput(email="x@example.com", timezone="Berlin"))
    contact = create_contact(
        session, s.actor, ContactInput(email="x@example.com", timezone="Europe/Berlin")
    )
    assert contact.timezone == "Europe/Berlin"
    update_contact(session, s.actor, contact.id, ContactInput(email="x@example.com"))
    assert contact.timezone == "Europe/Berlin"  # None leaves it alone
    update_contact(session, s.actor, contact.id, ContactInput(email="x@example.com", timezone=""))
    assert contact.timezone is None


def test_a_claim_taken_over_stops_the_worker_that_lost_it(session, at_t0):
    """Two workers never walk one enrollment: a lapsed lease taken over by a second claim
    fences the first (its token no longer matches), and a message in flight under a live
    lease is not claimed twice."""
    from core.automations.engine import PassResult, advance, claim_due

    s = make_setup(session)
    data = {
        "name": "One",
        "trigger": {"type": "manual"},
        "steps": [{"send": {"template_id": s.welcome}}],
    }
    automation = create_automation(session, s.actor, data)
    ann = make_contact(session, s.ws, email="ann@example.com")
    enroll_contact(session, s.actor, automation.id, ann.id)
    sessions = sessions_on(session)
    [(eid, old)] = claim_due(sessions, 10)
    assert claim_due(sessions, 10) == []  # leased
    clock.advance(timedelta(minutes=5))
    [(same, new)] = claim_due(sessions, 10)
    assert same == eid and new != old
    rec = Recorder()
    advance(sessions, eid, old, PassResult(), rec, NoLimit())
    assert rec.sent == []  # fenced off
    advance(sessions, eid, new, PassResult(), rec, NoLimit())
    assert rec.to("ann@example.com") == ["Welcome"]
