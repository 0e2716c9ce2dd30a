"""The signup inbox: posts of a signup form accepted by the public service, subscribed by
the worker a moment later.

Why: what a post's answer says depends only on the form (see core.forms.signup), so the
request path need not subscribe anybody. It checks the post without the database
(`signup.check_submission`), then `accept_signups` appends it here, in one transaction
shared with the posts arriving alongside it (webhook/groups.py), after the per-IP limit.
That is one short INSERT per batch instead of a contact, a consent row, two throttle
rows, an address lock and a broker publish per post.

The worker drains the inbox every SIGNUP_DRAIN_SECONDS (`drain_signup_backlog`, beat):
for each row, the subscription of a post as before (`signup.subscribe_checked`: address
lock, suppression, the exact per-address cap on confirmation mails, the contact, the
consent rows), and the row is deleted in the same transaction as its effect, so a killed
worker loses nothing and subscribes nothing twice. The mails a batch asks for leave as
one task per MAIL_CHUNK mails after it commits. Rows are taken in id order, locked and
skipped when another drain holds them (PostgreSQL), so several workers may drain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.forms import signup, throttle
from core.forms.subscribe import Mails, Shown, Signup, subscribe_many
from core.infra import clock, jobs
from core.infra.config import settings
from core.infra.db import sqlite_writer_lock
from core.infra.errors import NotFound
from core.models import FormThrottle, SignupInbox

log = logging.getLogger(__name__)

MAILS_TASK = "worker.tasks_forms.send_signup_mails"
MAIL_CHUNK = 50  # mails per task the drain queues
MAX_SIGNUP_ATTEMPTS = 5  # failed tries at a row before it is left for a person
ACCEPTED = "accepted"
LIMITED = "limited"  # over the per-IP limit: 429

_INBOX = SignupInbox.__table__
_THROTTLE = FormThrottle.__table__


@dataclass(frozen=True)
class SignupItem:
    """A checked post, as the request path hands it to the inbox."""

    workspace_id: int
    form_id: str
    email: str
    fields: dict[str, Any]
    ip: str
    user_agent: str
    consent_text: str


def item_for(form: signup.PublicForm, checked: signup.Checked, ip: str, agent: str) -> SignupItem:
    return SignupItem(
        form.workspace_id,
        form.id,
        checked.email,
        checked.fields,
        (ip or "")[:64],
        (agent or "")[: signup.MAX_AGENT],
        form.consent_text,
    )


def accept_signups(
    conn: Connection, items: Sequence[SignupItem], now: datetime | None = None
) -> list[str]:
    """The request path: book each item against its IP's hourly limit and append the
    ones within it to the inbox, in the caller's transaction. One outcome per item:
    ACCEPTED, or LIMITED (the IP posted FORM_POSTS_PER_IP_PER_HOUR times within the hour).

    The limit is coarse, like every per-IP limit: on PostgreSQL two processes' batches
    may both take an IP's last post (on SQLite the writers queue on one lock)."""
    at = now or clock.now()
    limit = settings.form_posts_per_ip_per_hour
    keys = {item.ip: throttle.ip_key(item.ip) for item in items}
    used: dict[str, int] = dict.fromkeys(keys.values(), 0)
    counted = conn.execute(
        select(_THROTTLE.c.key, func.count())
        .where(_THROTTLE.c.key.in_(list(used)), _THROTTLE.c.at > at - timedelta(hours=1))
        .group_by(_THROTTLE.c.key)
    )
    for key, count in counted:
        used[key] = int(count)
    outcomes: list[str] = []
    booked: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        key = keys[item.ip]
        if used[key] >= limit:
            outcomes.append(LIMITED)
            continue
        used[key] += 1
        outcomes.append(ACCEPTED)
        booked.append({"key": key, "at": at})
        rows.append(
            {
                "workspace_id": item.workspace_id,
                "form_id": item.form_id,
                "email": item.email,
                "fields": item.fields,
                "ip": item.ip,
                "user_agent": item.user_agent,
                "consent_text": item.consent_text,
                "received_at": at,
            }
        )
    if rows:
        conn.execute(insert(_THROTTLE), booked)
        conn.execute(insert(_INBOX), rows)
    return outcomes


# Waiting in the inbox, and not yet given up on.
_PENDING = _INBOX.c.attempts < MAX_SIGNUP_ATTEMPTS


def process_signup_backlog(
    session: Session, limit: int = 50, only: Sequence[int] | None = None
) -> int:
    """Subscribe up to `limit` signups waiting in the inbox, oldest first, and delete
    them, in the caller's transaction; returns how many it took (`only`: just these ids).
    The mails they ask for are queued to leave when the transaction commits."""
    query = select(_INBOX).where(_PENDING)
    if only is not None:
        query = query.where(_INBOX.c.id.in_(list(only)))
    query = query.order_by(_INBOX.c.id).limit(limit).with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if not rows:
        return 0
    forms: dict[str, signup.PublicForm | None] = {}
    signups: list[Signup] = []
    for row in rows:
        if row.form_id not in forms:
            try:
                forms[row.form_id] = signup.public_form(session, row.form_id)
            except NotFound:
                forms[row.form_id] = None
        form = forms[row.form_id]
        if form is None or form.workspace_id != row.workspace_id:
            log.warning("signup %s: its form %s is gone; dropped", row.id, row.form_id)
            continue
        shown = Shown(
            row.ip, row.user_agent, row.consent_text, row.form_id, clock.as_utc(row.received_at)
        )
        signups.append(Signup(form, signup.Checked(row.email, dict(row.fields or {})), shown))
    mails = Mails()
    outcomes = subscribe_many(session, signups, mails)
    for s, outcome in zip(signups, outcomes, strict=True):
        log.debug("form %s: %s", s.form.id, outcome)
    session.execute(delete(_INBOX).where(_INBOX.c.id.in_([row.id for row in rows])))
    _enqueue_in_chunks(session, mails)
    return len(rows)


def _enqueue_in_chunks(session: Session, mails: Mails) -> None:
    """One task per MAIL_CHUNK mails: a broker publish per mail would cost the drain more
    than the subscriptions themselves (about 10 ms each on the SQLite broker)."""
    confirmations, welcomes = mails.confirmations, mails.welcomes
    while confirmations or welcomes:
        c, confirmations = confirmations[:MAIL_CHUNK], confirmations[MAIL_CHUNK:]
        room = MAIL_CHUNK - len(c)
        w, welcomes = welcomes[:room], welcomes[room:]
        jobs.enqueue(session, MAILS_TASK, c, w)


def pending_signups(session: Session, limit: int = 50) -> list[int]:
    """The ids waiting in the inbox, oldest first (without locking them)."""
    query = select(_INBOX.c.id).where(_PENDING).order_by(_INBOX.c.id).limit(limit)
    return list(session.scalars(query))


def note_signup_failure(session: Session, row_id: int, error: str) -> None:
    """A signup that could not be subscribed: counted, with the error; after
    MAX_SIGNUP_ATTEMPTS it stays in the inbox for a person and is no longer tried."""
    session.execute(
        update(_INBOX)
        .where(_INBOX.c.id == row_id)
        .values(attempts=_INBOX.c.attempts + 1, last_error=error[:2000])
    )


def drain_signup_backlog(sessions: sessionmaker[Session], batch: int | None = None) -> int:
    """Subscribe every signup waiting in the inbox, `batch` per transaction, until none is
    left; returns how many it took. The worker runs it (worker.tasks_forms.drain_signups)
    every SIGNUP_DRAIN_SECONDS. It runs its own transactions, so it takes a session
    factory.

    A batch that fails is retried one signup at a time; one that fails alone is counted
    against it (`note_signup_failure`), so that it cannot hold up the rest."""
    batch = batch or settings.signup_drain_batch
    total = 0
    while True:
        try:
            with _writer(sessions), sessions.begin() as session:
                taken = process_signup_backlog(session, batch)
        except Exception:
            log.exception("a batch of signups failed; retrying them one by one")
            taken = _drain_one_by_one(sessions, batch)
        total += taken
        if taken < batch:
            return total


def _writer(sessions: sessionmaker[Session]) -> AbstractContextManager[None]:
    """On SQLite, queue with the webhook's writers (core.infra.db.sqlite_writer_lock):
    its requests wait for a drain batch to commit, not for SQLite's busy-handler sleeps."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, Engine):
        return sqlite_writer_lock(bind)
    return nullcontext()


def _drain_one_by_one(sessions: sessionmaker[Session], batch: int) -> int:
    with sessions.begin() as session:
        ids = pending_signups(session, batch)
    for row_id in ids:
        try:
            with _writer(sessions), sessions.begin() as session:
                process_signup_backlog(session, 1, only=[row_id])
        except Exception as exc:
            log.exception("signup %s failed", row_id)
            with sessions.begin() as session:
                note_signup_failure(session, row_id, f"{type(exc).__name__}: {exc}")
    return len(ids)
