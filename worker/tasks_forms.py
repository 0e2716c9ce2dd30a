"""Signup form tasks (issue 17): the confirmation and welcome mails, and retention."""

from __future__ import annotations

from core.forms import consent, mail
from core.infra.db import session_scope
from worker.celery_app import app


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
    with session_scope() as session:
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
    with session_scope() as session:
        return mail.send_welcome(session, consent_id)


@app.task(name="worker.tasks_forms.sweep_unconfirmed", soft_time_limit=600, time_limit=660)
def sweep_unconfirmed() -> int:
    """Deletes unconfirmed contacts past UNCONFIRMED_RETENTION_DAYS with their attempts."""
    with session_scope() as session:
        return consent.sweep_unconfirmed(session)
