"""A welcome series through a real Celery worker with beat and the public service's real
tracking pixel (issue 18's headline test): a SIGKILL mid-way, and every contact still gets
each mail of its path exactly once.

The test process writes the database (contacts joining the list) and fetches pixels as a
mail client would; the worker with beat does the rest.
"""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.automations import automation_status, create_automation
from core.contacts.lists import add_members
from core.infra.clock import as_utc
from core.infra.db import session_scope
from core.models import ContactList, Enrollment, Event, Message, Template
from tests.helpers import actor_of, make_contact, make_user, make_workspace, outbox_messages
from tests.processes import PROCESS_BACKEND, process_env, start_webhook, start_worker, wait_until

pytestmark = pytest.mark.slow

CONTACTS = 90
HUMAN = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"


def _setup() -> tuple[object, int, list[int]]:
    with session_scope() as s:
        ws = make_workspace(s, from_email="hello@acme.io", from_name="Acme", max_send_rate=15.0)
        actor = actor_of(make_user(s, ws))
        templates = [
            Template(
                workspace_id=ws.id,
                name=n,
                subject=n,
                html=f"<p>{n} <a href='https://acme.io/{n}'>more</a></p>",
            )
            for n in ("Welcome", "Tips", "Offer")
        ]
        s.add_all([*templates, ContactList(workspace_id=ws.id, name="Newsletter")])
        s.flush()
        welcome, tips, offer = (t.id for t in templates)
        automation = create_automation(
            s,
            actor,
            {
                "name": "Welcome series",
                "trigger": {"type": "list_joined", "list": "Newsletter"},
                "steps": [
                    {"send": {"template_id": welcome}},
                    {"wait": {"minutes": 1}},
                    {
                        "branch": {
                            "if": {"opened": "previous"},
                            "then": [{"send": {"template_id": tips}}],
                            "else": [{"send": {"template_id": offer}}],
                        }
                    },
                ],
            },
        )
        contacts = [make_contact(s, ws, email=f"r{i}@example.com") for i in range(CONTACTS)]
        list_id = s.scalar(select(ContactList.id).where(ContactList.workspace_id == ws.id))
        add_members(s, actor, list_id, [c.id for c in contacts])
        return actor, automation.id, [c.id for c in contacts]


def _sent(step: str) -> int:
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.step_path == step, Message.status == "sent")
            )
            or 0
        )


def _waiting(step: str) -> int:
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Enrollment)
                .where(Enrollment.step_path == step, Enrollment.status == "active")
            )
            or 0
        )


def _two_minutes_pass() -> None:
    """Move the welcomes' sending and the start of everyone's wait two minutes back, and
    hold the wait's end until `_wait_ends`, so no branch is taken before the opens are in."""
    back = timedelta(minutes=2)
    with session_scope() as s:
        for msg in s.scalars(select(Message).where(Message.step_path == "0")):
            msg.sent_at = as_utc(msg.sent_at) - back
        for enrollment in s.scalars(select(Enrollment).where(Enrollment.step_path == "1")):
            enrollment.entered_step_at = as_utc(enrollment.entered_step_at) - back
            enrollment.due_at = as_utc(enrollment.entered_step_at) + timedelta(hours=1)


def _wait_ends() -> None:
    """The one-minute wait ended a minute ago, for everyone."""
    with session_scope() as s:
        for enrollment in s.scalars(select(Enrollment).where(Enrollment.step_path == "1")):
            enrollment.due_at = as_utc(enrollment.entered_step_at) + timedelta(minutes=1)


def _human_opens() -> int:
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.type == "open", Event.is_machine.is_(False))
            )
            or 0
        )


def _finished(actor, automation_id: int) -> int:
    with session_scope() as s:
        return automation_status(s, actor, automation_id)["finished"]


def _subjects(outbox) -> Counter:
    return Counter((m["To"], m["Subject"]) for m in outbox_messages(outbox))


# The engine runs on both backends in test_engine.py; exactly once through a killed worker on
# SQLite is sending/test_worker.py's kill test.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_welcome_series_through_a_killed_worker_sends_each_mail_once(live_db, tmp_path):
    actor, automation_id, _ = _setup()
    webhook, public = start_webhook(process_env(tmp_path, live_db), tmp_path / "webhook.log")
    env = process_env(
        tmp_path, live_db, SEND_TICK_SECONDS="1", SEND_LEASE_SECONDS="3", PUBLIC_BASE_URL=public
    )
    try:
        worker = start_worker(env, tmp_path / "w1.log", concurrency=2, beat=True)
        try:
            wait_until(lambda: _sent("0") >= 20, 60, "a few welcomes sent")
            worker.kill()  # SIGKILL to the whole group, beat included
            worker.popen.wait(10)
        finally:
            worker.stop()
        at_kill = _sent("0")
        assert 0 < at_kill < CONTACTS
        worker = start_worker(env, tmp_path / "w2.log", concurrency=2, beat=True)
        try:
            wait_until(lambda: _sent("0") == CONTACTS, 60, "every welcome sent")
            wait_until(lambda: _waiting("1") == CONTACTS, 60, "everyone on the wait")
            # Two minutes pass: the welcomes were sent, and the contacts reached the one-minute
            # wait, two minutes ago (in the database, where the worker reads time from; the wait
            # itself is timed with a controlled clock in test_engine.py). Opens are then past the
            # machine-open window, and the branch comes due once they are stored.
            _two_minutes_pass()
            # Even-numbered contacts open the welcome through the real pixel, as a person
            # would; the others do not.
            opened = set()
            for msg in outbox_messages(tmp_path / "outbox"):
                n = int(re.match(r"r(\d+)@", msg["To"]).group(1))
                if msg["Subject"] != "Welcome" or n % 2:
                    continue
                html = next(
                    p.get_payload(decode=True).decode()
                    for p in msg.walk()
                    if p.get_content_type() == "text/html"
                )
                pixel = re.search(r'src="([^"]+/t/o/[^"]+\.gif)"', html).group(1)
                request = urllib.request.Request(pixel, headers={"User-Agent": HUMAN})
                with urllib.request.urlopen(request, timeout=10) as reply:
                    assert reply.status == 200
                opened.add(msg["To"])
            assert len(opened) == CONTACTS // 2
            wait_until(lambda: _human_opens() == CONTACTS // 2, 30, "the opens stored")
            _wait_ends()
            wait_until(lambda: _sent("2.then.0") + _sent("2.else.0") == CONTACTS, 150, "all sent")
            # An enrollment whose 3 s lease lapsed on this loaded worker is moved on by the
            # next pass after its mail was recorded: wait for that too.
            wait_until(lambda: _finished(actor, automation_id) == CONTACTS, 60, "all finished")
        finally:
            worker.stop()
    finally:
        webhook.stop()

    got = _subjects(tmp_path / "outbox")
    expected = Counter()
    for i in range(CONTACTS):
        expected[(f"r{i}@example.com", "Welcome")] = 1
        expected[(f"r{i}@example.com", "Tips" if i % 2 == 0 else "Offer")] = 1
    assert got == expected
    with session_scope() as s:
        status = automation_status(s, actor, automation_id)
    assert (status["enrolled"], status["finished"], status["active"]) == (CONTACTS, CONTACTS, 0)
    assert status["steps"][0]["opened"] == CONTACTS // 2
    # The outbox overwrites a file named by the ledger id, so a repeat would not show there:
    # the claims do. Only the messages in flight at the kill (one per pool process) may
    # have been handed to the transport a second time.
    with session_scope() as s:
        claims = s.scalar(select(func.sum(Message.attempts)))
        rows = s.scalar(select(func.count()).select_from(Message))
    assert rows == 2 * CONTACTS
    assert claims - rows <= 2, (claims, rows)
