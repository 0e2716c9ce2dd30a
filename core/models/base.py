"""The declarative base, naming convention, column helpers and the value lists the models
check against."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Integer,
    MetaData,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.infra.clock import now
from core.models.statuses import CampaignStatus, ContactStatus, JobStatus, MessageStatus

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.

JSONType = JSON().with_variant(JSONB(), "postgresql")


# 64-bit ids where tables grow without bound; SQLite needs INTEGER to alias its rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

    if TYPE_CHECKING:
        # Every model here maps one Table; DeclarativeBase only promises a FromClause.
        __table__: ClassVar[Table]


def _ts() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), default=now, server_default=func.now(), nullable=False
    )


ROLES = ("owner", "admin", "editor", "viewer")


CONTACT_STATUSES = tuple(s.value for s in ContactStatus)


FIELD_TYPES = ("text", "number", "date", "boolean")


LIST_VISIBILITIES = ("public", "private")


LIST_OPT_INS = ("single", "double")


# What a consent row records (core.forms): a double-opt-in request waiting for its link, a
# subscription at once (single opt-in), its confirmation, a re-subscription of an
# unsubscribed contact (always confirmed), an unsubscription.
CONSENT_ACTIONS = ("request", "subscribe", "confirm", "resubscribe", "unsubscribe")


# Where a consent came from: a form (source_detail: its id), an import (the file name), a
# user in the app (user_id), the preference centre, a one-click unsubscribe, the API.
CONSENT_SOURCES = ("form", "import", "manual", "preferences", "one-click", "api")


CAMPAIGN_STATUSES = tuple(s.value for s in CampaignStatus)


MESSAGE_STATUSES = tuple(s.value for s in MessageStatus)


JOB_STATUSES = tuple(s.value for s in JobStatus)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    """A CHECK that `column` holds one of `values` (migration 0015 adds them)."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


EVENT_TYPES = (
    "sent",
    "delivered",
    "open",
    "click",
    "bounce",
    "complaint",
    "unsubscribe",
    "reject",
    "delivery_delay",
    "rendering_failure",
    "subscription",
)
