"""Contacts imported into an automation's list are enrolled once; a re-import of the same
file enrolls nobody again (issue 18). The real import job, committed to a live database."""

from __future__ import annotations

from datetime import timedelta

from core.automations import create_automation, run_pass
from core.contacts.importing import ImportOptions, run_import_job, start_import_job
from core.infra import clock
from core.infra.db import get_sessionmaker, session_scope
from tests.automations.test_engine import NoLimit, Recorder, make_setup, welcome_series


def _import(actor, path, list_id: int) -> None:
    with session_scope() as session:
        job_id = start_import_job(session, actor, path, ImportOptions(list_id=list_id), 4).id
    assert run_import_job(get_sessionmaker(), job_id) == "done"


def test_imported_contacts_enroll_once(live_db, tmp_path):
    with session_scope() as session:
        s = make_setup(session)
        create_automation(session, s.actor, welcome_series(s))
    path = tmp_path / "people.csv"
    path.write_text("email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(4)))
    clock.advance(timedelta(seconds=1))
    _import(s.actor, path, s.list_id)
    rec = Recorder()
    first = run_pass(get_sessionmaker(), transport=rec, rate_limiter=NoLimit())
    assert (first.enrolled, first.sent) == (4, 4)
    assert rec.to("p0@example.com") == ["Welcome P0"]
    _import(s.actor, path, s.list_id)
    again = run_pass(get_sessionmaker(), transport=rec, rate_limiter=NoLimit())
    assert (again.enrolled, again.sent) == (0, 0)
    assert len(rec.sent) == 4
