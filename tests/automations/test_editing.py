"""Editing automations (issue 18): anything before contacts enter; once they are in, waits,
subjects, templates and conditions change in place, a step is removed only while paused
(those on it move to the next, later steps and their ledger rows are renumbered), and
every other change is refused with a message that says why."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.automations import (
    AutomationNotRunnable,
    EditRefused,
    add_step,
    automation_report,
    create_automation,
    duplicate_as_draft,
    enroll_contact,
    list_automations,
    pause_automation,
    remove_step,
    resume_automation,
    save_step,
    step_figures,
    update_automation,
)
from core.automations.editing import human_path, without_step
from core.contacts.lists import add_members
from core.infra import clock
from core.ingest.own import record_open
from core.ingest.store import MACHINE_OPEN_SECONDS
from core.models import Enrollment, Message
from tests.automations.test_engine import (
    HUMAN,
    T0,
    Recorder,
    make_setup,
    run,
    welcome_series,
)
from tests.helpers import make_contact


@pytest.fixture
def at_t0():
    clock.freeze(T0)
    yield
    clock.reset()


def _enrollment(session, contact_id: int) -> Enrollment:
    return session.scalars(select(Enrollment).where(Enrollment.contact_id == contact_id)).one()


def test_a_draft_changes_freely(session):
    s = make_setup(session)
    draft = create_automation(session, s.actor, welcome_series(s), activate=False)
    data = copy.deepcopy(draft.definition)
    data["name"] = "Welcome, renamed"
    data["trigger"] = {"type": "manual"}
    data["steps"].insert(0, {"wait": {"hours": 1}})
    update_automation(session, s.actor, draft.id, data)
    add_step(session, s.actor, draft.id, "3.then.", 1, {"exit": {}})
    assert draft.name == "Welcome, renamed"
    assert draft.definition["trigger"] == {"type": "manual"}
    assert [next(iter(step)) for step in draft.definition["steps"]] == [
        "wait",
        "send",
        "wait",
        "branch",
    ]
    assert draft.definition["steps"][3]["branch"]["then"][1] == {"exit": {}}
    remove_step(session, s.actor, draft.id, "3")  # a branch, arms and all, in a draft
    assert len(draft.definition["steps"]) == 3


def test_running_edits_waits_subjects_templates_and_conditions_in_place(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann, bob = (
        make_contact(session, s.ws, email=f"{n}@example.com", first_name=n.title())
        for n in ("ann", "bob")
    )
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [ann.id, bob.id])
    rec = Recorder()
    assert run(session, rec).sent == 2
    entered = clock.as_utc(_enrollment(session, ann.id).entered_step_at)
    clock.advance(timedelta(days=1))

    # Three days become two: counted from when they reached the wait, so due tomorrow.
    save_step(session, s.actor, automation.id, "1", {"wait": {"days": 2}})
    assert clock.as_utc(_enrollment(session, ann.id).due_at) == entered + timedelta(days=2)
    # The branch now asks about clicks; the "else" mail gets another template and subject.
    save_step(session, s.actor, automation.id, "2", {"branch": {"if": {"clicked": "0"}}})
    save_step(
        session,
        s.actor,
        automation.id,
        "2.else.0",
        {"send": {"template_id": s.tips, "subject": "Did you see this, {{ first_name }}?"}},
    )
    branch = automation.definition["steps"][2]["branch"]
    assert branch["if"] == {"clicked": "0"} and len(branch["then"]) == 1  # arms kept

    clock.advance(timedelta(days=1, minutes=1))
    assert run(session, rec).sent == 2
    assert rec.to("ann@example.com") == ["Welcome Ann", "Did you see this, Ann?"]
    assert _enrollment(session, ann.id).status == "finished"


def test_running_refuses_structural_changes_with_a_reason(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann = make_contact(session, s.ws, email="ann@example.com")
    enroll = {"type": "manual"}
    saved = copy.deepcopy(automation.definition)
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [ann.id])
    run(session, Recorder())

    def refused(data, match: str) -> None:
        with pytest.raises(EditRefused, match=match):
            update_automation(session, s.actor, automation.id, data)

    added = copy.deepcopy(saved)
    added["steps"].append({"exit": {}})
    refused(added, "Steps cannot be added")
    with pytest.raises(EditRefused, match="Steps cannot be added"):
        add_step(session, s.actor, automation.id, "", 3, {"exit": {}})
    moved = [saved["steps"][1], saved["steps"][0], saved["steps"][2]]
    refused({**saved, "steps": moved}, "Adding or moving steps")
    refused({**saved, "trigger": enroll}, "trigger cannot change")
    kind = copy.deepcopy(saved)
    kind["steps"][1] = {"exit": {}}
    refused(kind, "Adding or moving steps")
    with pytest.raises(EditRefused, match="kind"):
        save_step(session, s.actor, automation.id, "1", {"update": {"add_list": "VIP"}})
    with pytest.raises(EditRefused, match="branch cannot be removed"):
        remove_step(session, s.actor, automation.id, "2")
    with pytest.raises(AutomationNotRunnable, match="Pause the automation"):
        remove_step(session, s.actor, automation.id, "1")
    assert automation.definition == saved  # nothing was taken
    # A name and the reentry flag are not structure.
    update_automation(session, s.actor, automation.id, {**saved, "name": "Hello", "reentry": True})
    assert automation.name == "Hello"
    copy_ = duplicate_as_draft(session, s.actor, automation.id)
    assert (copy_.name, copy_.status) == ("Hello (copy)", "draft")
    add_step(session, s.actor, copy_.id, "", 3, {"exit": {}})  # the copy changes freely


def test_removing_a_step_moves_contacts_on_and_renumbers_the_rest(session, at_t0):
    """Welcome → wait 1 day → Tips → wait 1 day → Offer. Ann is in the first wait, Bob in
    the second, Cy has had everything. Removing "Tips" (step 3) while paused: Ann goes on
    to the second wait when she gets there, Bob stays in his wait (now step 3), and nobody
    gets a mail twice or misses one, though every later step's number changed."""
    s = make_setup(session)
    steps = [
        {"send": {"template_id": s.welcome}},
        {"wait": {"days": 1}},
        {"send": {"template_id": s.tips}},
        {"wait": {"days": 1}},
        {"send": {"template_id": s.offer}},
        {"branch": {"if": {"opened": "4"}, "then": [{"exit": {}}], "else": []}},
    ]
    data = {"name": "Drip", "trigger": {"type": "manual"}, "steps": steps}
    automation = create_automation(session, s.actor, data)
    cy = make_contact(session, s.ws, email="cy@example.com")
    bob = make_contact(session, s.ws, email="bob@example.com")
    ann = make_contact(session, s.ws, email="ann@example.com")
    rec = Recorder()
    enroll_contact(session, s.actor, automation.id, cy.id)
    run(session, rec)
    clock.advance(timedelta(days=1, minutes=1))
    enroll_contact(session, s.actor, automation.id, bob.id)
    run(session, rec)  # Cy: Tips; Bob: Welcome
    clock.advance(timedelta(days=1, minutes=1))
    enroll_contact(session, s.actor, automation.id, ann.id)
    run(session, rec)  # Cy: Offer (finished); Bob: Tips; Ann: Welcome
    assert [len(rec.to(f"{n}@example.com")) for n in ("cy", "bob", "ann")] == [3, 2, 1]
    assert _enrollment(session, ann.id).step_path == "1"
    assert _enrollment(session, bob.id).step_path == "3"

    pause_automation(session, s.actor, automation.id)
    # A worker still holding a contact: refused until it lets go.
    session.execute(
        update(Enrollment)
        .where(Enrollment.contact_id == ann.id)
        .values(leased_until=clock.now() + timedelta(seconds=30))
    )
    with pytest.raises(AutomationNotRunnable, match="try again in a minute"):
        remove_step(session, s.actor, automation.id, "2")
    session.execute(update(Enrollment).values(leased_until=None))
    with pytest.raises(EditRefused, match="looks at step 5"):
        remove_step(session, s.actor, automation.id, "4")

    remove_step(session, s.actor, automation.id, "2")
    assert [next(iter(x)) for x in automation.definition["steps"]] == [
        "send",
        "wait",
        "wait",
        "send",
        "branch",
    ]
    assert automation.definition["steps"][4]["branch"]["if"] == {"opened": "3"}
    assert _enrollment(session, ann.id).step_path == "1"
    assert _enrollment(session, bob.id).step_path == "2"
    paths = {
        (m.contact_id, m.step_path)
        for m in session.scalars(select(Message).where(Message.contact_id == cy.id))
    }
    tips_row = next(p for c, p in paths if p.startswith("removed."))
    assert {p for _, p in paths} == {"0", "3", tips_row}  # Offer's row is now step 3

    resume_automation(session, s.actor, automation.id)
    clock.advance(timedelta(days=1, minutes=1))
    run(session, rec)  # Bob: Offer; Ann: into the second wait (Tips is gone)
    clock.advance(timedelta(days=1, minutes=1))
    run(session, rec)  # Ann: Offer
    clock.advance(timedelta(days=3))
    run(session, rec)
    assert rec.to("ann@example.com") == ["Welcome", "Offer"]
    assert rec.to("bob@example.com") == ["Welcome", "Tips", "Offer"]
    assert rec.to("cy@example.com") == ["Welcome", "Tips", "Offer"]
    figures = {f.path: f for f in step_figures(session, s.actor, automation.id)}
    assert (figures["0"].sent, figures["3"].sent) == (3, 3)


def test_removing_the_step_contacts_wait_on_moves_them_to_the_next(session, at_t0):
    s = make_setup(session)
    steps = [
        {"send": {"template_id": s.welcome}},
        {"wait": {"days": 3}},
        {"send": {"template_id": s.tips}},
        {"wait": {"hours": 2}},
        {"send": {"template_id": s.offer}},
    ]
    automation = create_automation(
        session, s.actor, {"name": "D", "trigger": {"type": "manual"}, "steps": steps}
    )
    ann = make_contact(session, s.ws, email="ann@example.com")
    enroll_contact(session, s.actor, automation.id, ann.id)
    rec = Recorder()
    run(session, rec)
    pause_automation(session, s.actor, automation.id)
    remove_step(session, s.actor, automation.id, "1")  # the wait Ann is in
    e = _enrollment(session, ann.id)
    assert (e.step_path, clock.as_utc(e.due_at)) == ("1", clock.now())
    remove_step(session, s.actor, automation.id, "1")  # and the Tips she was moved to
    e = _enrollment(session, ann.id)
    assert (e.step_path, clock.as_utc(e.due_at)) == ("1", clock.now() + timedelta(hours=2))
    resume_automation(session, s.actor, automation.id)
    clock.advance(timedelta(hours=2, minutes=1))
    run(session, rec)
    assert rec.to("ann@example.com") == ["Welcome", "Offer"]


def test_a_json_edit_that_removes_a_step_is_read_as_a_removal(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann = make_contact(session, s.ws, email="ann@example.com")
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [ann.id])
    rec = Recorder()
    run(session, rec)
    pause_automation(session, s.actor, automation.id)
    data = copy.deepcopy(automation.definition)
    del data["steps"][1]  # the three-day wait Ann is in
    update_automation(session, s.actor, automation.id, data)
    assert _enrollment(session, ann.id).step_path == "1"  # at the branch
    resume_automation(session, s.actor, automation.id)
    run(session, rec)
    assert rec.to("ann@example.com") == ["Welcome", "Last chance"]
    data2, mapping = without_step(automation.definition, "1.else.0")
    assert mapping == {"0": "0", "1": "1", "1.then.0": "1.then.0", "1.else.0": None}
    assert human_path("2.then.1") == "3 → then 2"


def test_report_figures_per_step_and_the_list(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    create_automation(
        session,
        s.actor,
        {**welcome_series(s), "name": "A draft"},
        activate=False,
    )
    people = [make_contact(session, s.ws, email=f"p{i}@example.com") for i in range(4)]
    clock.advance(timedelta(minutes=1))
    add_members(session, s.actor, s.list_id, [p.id for p in people])
    rec = Recorder()
    run(session, rec)
    clock.advance(timedelta(seconds=MACHINE_OPEN_SECONDS + 60))
    first = {m.contact_id: m.id for m in session.scalars(select(Message))}
    record_open(session, s.actor, first[people[0].id], HUMAN, "203.0.113.9")
    record_open(session, s.actor, first[people[1].id], HUMAN, "203.0.113.9")
    clock.advance(timedelta(days=3, minutes=1))
    run(session, rec)

    figures = {f.path: f for f in step_figures(session, s.actor, automation.id)}
    assert figures["0"].summary == "Send “Welcome”"
    assert figures["1"].summary == "Wait 3 days"
    assert figures["2"].summary == "If opened the previous email"
    assert (figures["0"].sent, figures["0"].unique_opens, figures["0"].delivered) == (4, 2, 4)
    assert figures["0"].rates["open_rate"] == 0.5
    assert (figures["2.then.0"].sent, figures["2.else.0"].sent) == (2, 2)
    report = automation_report(session, s.actor, automation.id)
    assert (report.enrolled, report.finished, report.active) == (4, 4, 0)
    assert sum(d.sent for d in report.per_day) == 8
    assert {d.path for d in report.per_day} == {"0", "2.then.0", "2.else.0"}
    rows = {r.name: r for r in list_automations(session, s.actor)}
    assert (rows["Welcome series"].enrolled, rows["Welcome series"].sent_30_days) == (4, 8)
    assert rows["A draft"].status == "draft" and rows["A draft"].enrolled == 0
    assert rows["Welcome series"].trigger == "Joins the list “Newsletter”"
    clock.advance(timedelta(days=31))
    assert {r.name: r.sent_30_days for r in list_automations(session, s.actor)} == {
        "A draft": 0,
        "Welcome series": 0,
    }


def test_a_contact_moved_during_a_pause_waits_from_the_resume(session, at_t0):
    """A pause holds time: moved onto a wait while paused, the wait counts from the resume;
    moved onto a send, it is due at the resume (not later)."""
    s = make_setup(session)
    steps = [
        {"send": {"template_id": s.welcome}},
        {"wait": {"days": 3}},
        {"wait": {"hours": 2}},
        {"send": {"template_id": s.tips}},
    ]
    automation = create_automation(
        session, s.actor, {"name": "D", "trigger": {"type": "manual"}, "steps": steps}
    )
    ann = make_contact(session, s.ws, email="ann@example.com")
    enroll_contact(session, s.actor, automation.id, ann.id)
    rec = Recorder()
    run(session, rec)
    pause_automation(session, s.actor, automation.id)
    clock.advance(timedelta(hours=5))
    remove_step(session, s.actor, automation.id, "1")  # Ann goes on to the 2-hour wait
    clock.advance(timedelta(days=1))
    resume_automation(session, s.actor, automation.id)
    assert clock.as_utc(_enrollment(session, ann.id).due_at) == clock.now() + timedelta(hours=2)
    pause_automation(session, s.actor, automation.id)
    clock.advance(timedelta(hours=1))
    remove_step(session, s.actor, automation.id, "1")  # and on to the send
    clock.advance(timedelta(hours=1))
    resume_automation(session, s.actor, automation.id)
    assert clock.as_utc(_enrollment(session, ann.id).due_at) <= clock.now()  # due now
    run(session, rec)
    assert rec.to("ann@example.com") == ["Welcome", "Tips"]


def test_a_trigger_reads_with_names_not_ids():
    from core.automations import describe_trigger

    names = {"segment:7": "Berliners", "custom_fields.birthday": "Birthday"}
    assert describe_trigger({"type": "segment_entered", "segment_id": 7}, names) == (
        "Enters the segment “Berliners”"
    )
    assert describe_trigger({"type": "segment_entered", "segment_id": 8}, names) == (
        "Enters segment 8"  # deleted since: the id is all there is
    )
    birthday = {"type": "date_field", "field": "custom_fields.birthday", "yearly": True}
    assert describe_trigger(birthday, names) == "on the date in “Birthday”, every year"
    assert describe_trigger({**birthday, "offset_days": -1, "yearly": False}, names) == (
        "1 day before the date in “Birthday”"
    )
