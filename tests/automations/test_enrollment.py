"""Beat's list enrollment (core/automations/enrollment.py, issue 18): one INSERT … SELECT per
automation over what changed since its high-water mark; a contact already in it is not
enrolled twice, reentry enrolls again only after a new join, a re-subscribe after the mark
still enrolls, and a membership stamped long before the mark is not read again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.automations import create_automation, enroll_contact
from core.automations.enrollment import ENROLL_OVERLAP, enroll_from_lists
from core.contacts.lists import add_members, remove_members
from core.contacts.service import set_status
from core.infra import clock
from core.models import Automation, Enrollment, ListMembership
from tests.automations.test_engine import T0, make_setup, welcome_series
from tests.automations.test_triggers import enrolled, run
from tests.helpers import make_contact

MINUTE = timedelta(minutes=1)


@pytest.fixture
def at_t0():
    clock.freeze(T0)
    yield
    clock.reset()


def test_a_contact_already_in_it_is_not_enrolled_again(session, at_t0):
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann, bob = (make_contact(session, s.ws, email=f"{n}@example.com") for n in ("ann", "bob"))
    clock.advance(MINUTE)
    assert enroll_contact(session, s.actor, automation.id, ann.id) is not None  # by hand
    add_members(session, s.actor, s.list_id, [ann.id, bob.id])
    assert enroll_from_lists(session) == 1
    assert enroll_from_lists(session) == 0  # a second pass (or worker) adds nothing
    assert enrolled(session, automation.id) == [("ann@example.com", 1), ("bob@example.com", 1)]
    # The mark moved, and looking is not an edit: "Changed" on the list stays.
    saved = session.get(Automation, automation.id)
    assert saved is not None
    assert clock.as_utc(saved.trigger_checked_at) == clock.now()
    assert clock.as_utc(saved.updated_at) == clock.as_utc(saved.activated_at)


def test_reentry_enrolls_again_only_after_finishing_and_joining_anew(session, at_t0):
    s = make_setup(session)
    flow = {
        "name": "Again",
        "reentry": True,
        "trigger": {"type": "list_joined", "list": "Newsletter"},
        "steps": [{"send": {"template_id": s.welcome}}],
    }
    automation = create_automation(session, s.actor, flow)
    ann = make_contact(session, s.ws, email="ann@example.com")
    clock.advance(MINUTE)
    add_members(session, s.actor, s.list_id, [ann.id])
    assert run(session).enrolled == 1  # enrolled, sent, finished
    clock.advance(MINUTE)
    assert enroll_from_lists(session) == 0  # finished since joining: not again
    # Left and joined again while still active in it: not twice at once.
    enrollment = session.scalars(select(Enrollment)).one()
    enrollment.status = "active"
    session.flush()
    remove_members(session, s.actor, s.list_id, [ann.id])
    clock.advance(MINUTE)
    add_members(session, s.actor, s.list_id, [ann.id])
    assert enroll_from_lists(session) == 0
    enrollment.status = "finished"
    session.flush()
    clock.advance(MINUTE)
    assert enroll_from_lists(session) == 1  # the join is newer than every enrollment
    assert enrolled(session, automation.id) == [("ann@example.com", 1), ("ann@example.com", 2)]


def test_a_resubscribe_after_the_mark_enrolls_an_old_member(session, at_t0):
    """Ann joined while unsubscribed (not enrolled); hours later, long after the mark moved
    past her join, she re-subscribes: her contact changed since the mark, so she enters."""
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann = make_contact(session, s.ws, email="ann@example.com", status="unsubscribed")
    clock.advance(MINUTE)
    add_members(session, s.actor, s.list_id, [ann.id])
    assert enroll_from_lists(session) == 0
    clock.advance(timedelta(hours=3))
    assert enroll_from_lists(session) == 0
    set_status(session, s.actor, [ann.id], "subscribed", confirm_resubscribe=True)
    clock.advance(MINUTE)
    assert enroll_from_lists(session) == 1
    assert enrolled(session, automation.id) == [("ann@example.com", 1)]


def test_members_stamped_before_the_mark_are_not_read_again(session, at_t0):
    """The pass reads what changed since its mark (less the overlap), not the whole list."""
    s = make_setup(session)
    automation = create_automation(session, s.actor, welcome_series(s))
    ann, bob = (make_contact(session, s.ws, email=f"{n}@example.com") for n in ("ann", "bob"))
    clock.advance(ENROLL_OVERLAP * 3)
    assert enroll_from_lists(session) == 0  # the mark: now
    mark = clock.now()
    clock.advance(MINUTE)
    add_members(session, s.actor, s.list_id, [ann.id, bob.id])
    # Ann's join is stamped within the overlap before the mark (committed late), Bob's
    # before it: only Ann is read. (Both joined after activation: a full read takes both.)
    for contact, stamp in ((ann, mark - ENROLL_OVERLAP / 2), (bob, mark - ENROLL_OVERLAP * 2)):
        session.execute(
            update(ListMembership)
            .where(ListMembership.contact_id == contact.id)
            .values(created_at=stamp)
        )
    assert enroll_from_lists(session) == 1
    assert enrolled(session, automation.id) == [("ann@example.com", 1)]
