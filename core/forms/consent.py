"""The consent record: reading a contact's history, and retention of unconfirmed signups."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.forms import throttle
from core.infra import clock
from core.infra.config import settings
from core.infra.db import rowcount
from core.infra.permissions import Actor
from core.models import Consent, Contact, ListMembership
from core.models.statuses import ContactStatus


def consent_history(session: Session, actor: Actor, contact_id: int) -> list[Consent]:
    """A contact's consent rows, oldest first (empty for another workspace's contact)."""
    actor.require("read")
    return list(
        session.scalars(
            select(Consent)
            .where(Consent.workspace_id == actor.workspace_id, Consent.contact_id == contact_id)
            .order_by(Consent.created_at, Consent.id)
        )
    )


def sweep_unconfirmed(session: Session, now: datetime | None = None) -> int:
    """Delete contacts left unconfirmed for UNCONFIRMED_RETENTION_DAYS, with their consent
    attempts and memberships, and forget old throttle rows; returns the contacts deleted.

    An unconfirmed contact was never mailed by a campaign, so it has no ledger rows or
    events to delete with it."""
    at = now or clock.now()
    cutoff = at - timedelta(days=settings.unconfirmed_retention_days)
    stale = (
        select(Contact.id)
        .where(Contact.status == ContactStatus.UNCONFIRMED, Contact.created_at < cutoff)
        .scalar_subquery()
    )
    session.execute(delete(Consent).where(Consent.contact_id.in_(stale)))
    session.execute(delete(ListMembership).where(ListMembership.contact_id.in_(stale)))
    deleted = rowcount(
        session.execute(
            delete(Contact).where(
                Contact.status == ContactStatus.UNCONFIRMED, Contact.created_at < cutoff
            ),
            execution_options={"synchronize_session": False},
        )
    )
    throttle.sweep(session, at)
    return deleted
