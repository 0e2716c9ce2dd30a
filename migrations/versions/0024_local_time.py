"""Send in each contact's morning: time-zone waves (issue 19).

- `campaign.local_send_time` ("HH:MM"): the campaign goes out at this time in each
  contact's zone, in waves from `scheduled_at` (core.campaigns.waves).
- `campaign.waves_dispatched_at`: how far beat's tick has queued the waves that fell due.
- `message.due_at`: when a ledger row's wave is due (NULL: send when dispatched), and a
  partial index (campaign, status, due) holding only the rows of time-zone campaigns.
- a partial index on `contact (workspace_id, timezone)` for the contacts that have a zone:
  the snapshot's one UPDATE per zone reads only that zone's contacts.

Revision ID: 0024_local_time
Revises: 0023_resend_sunset
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_local_time"
down_revision: str | None = "0023_resend_sunset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DATED = sa.text("due_at IS NOT NULL")
ZONED = sa.text("timezone IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("local_send_time", sa.String(5), nullable=True))
        batch.add_column(
            sa.Column("waves_dispatched_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_message_campaign_status_due",
        "message",
        ["campaign_id", "status", "due_at"],
        postgresql_where=DATED,
        sqlite_where=DATED,
    )
    op.create_index(
        "ix_contact_workspace_timezone",
        "contact",
        ["workspace_id", "timezone"],
        postgresql_where=ZONED,
        sqlite_where=ZONED,
    )


def downgrade() -> None:
    op.drop_index("ix_contact_workspace_timezone", table_name="contact")
    op.drop_index("ix_message_campaign_status_due", table_name="message")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("due_at")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("waves_dispatched_at")
        batch.drop_column("local_send_time")
