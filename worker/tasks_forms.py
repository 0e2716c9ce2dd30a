"""Signup form tasks (issue 17): the signup inbox's drain, the confirmation and welcome
mails, and retention."""

from __future__ import annotations

import logging

from core.forms import consent, inbox, mail
from core.forms.subscribe import CONFIRM_TASK, WELCOME_TASK
from core.infra import jobs
from core.infra.db import get_sessionmaker, read_scope, session_scope
from worker.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="worker.tasks_forms.drain_signups", soft_time_limit=300, time_limit=360)
def drain_signups() -> int:
    """Subscribes the signups the public service has accepted (its signup inbox)."""
    return inbox.drain_signup_backlog(get_sessionmaker())


@app.task(
    name="worker.tasks_forms.send_signup_mails",
    acks_late=True,
    soft_time_limit=300,
    time_limit=360,
)
def send_signup_mails(confirmations: list[int], welcomes: list[int]) -> int:
    """The mails of one drained batch, each in its own transaction; one that fails is
    handed to its own retrying task, so the others are not sent again."""
    sent = 0
    for task, send, ids in (
        (CONFIRM_TASK, mail.send_confirmation, confirmations),
        (WELCOME_TASK, mail.send_welcome, welcomes),
    ):
        for row_id in ids:
            try:
                with read_scope() as session:  # reads only: no SQLite write lock
                    sent += send(session, row_id) == "sent"
            except Exception:
                log.exception("%s %s failed; retrying it alone", task, row_id)
                jobs.enqueue(None, task, row_id)
    return sent


@app.task(
    name="worker.tasks_forms.send_confirmation",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def send_confirmation(request_id: int) -> str:
    """Mails the confirmation link of a double-opt-in request (nothing if it is done)."""
    with read_scope() as session:
        return mail.send_confirmation(session, request_id)


@app.task(
    name="worker.tasks_forms.send_welcome",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def send_welcome(consent_id: int) -> str:
    """Mails the form's welcome template to a contact who just subscribed."""
    with read_scope() as session:
        return mail.send_welcome(session, consent_id)


@app.task(name="worker.tasks_forms.sweep_unconfirmed", soft_time_limit=600, time_limit=660)
def sweep_unconfirmed() -> int:
    """Deletes unconfirmed contacts past UNCONFIRMED_RETENTION_DAYS with their attempts."""
    with session_scope() as session:
        return consent.sweep_unconfirmed(session)
