"""The webhook's inbox (sns_message.body), and events without foreign keys

The webhook acknowledges an SES notification once it is stored in sns_message with its
body, and makes its events just after, in large batches off the request path
(core.events.process_sns_backlog): `body` is NULL once that is done, and a partial index
holds the backlog. Events lose their four foreign keys, as the ledger did in 0011: each
was checked per event, with a share lock on the parent row. core deletes a campaign's or a
contact's events where it deletes the campaign or the contact.

Revision ID: 0012_inbox
Revises: 0011_ledger
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_inbox"
down_revision: str | None = "0011_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = [
    ("fk_event_workspace_id_workspace", "workspace", "workspace_id"),
    ("fk_event_campaign_id_campaign", "campaign", "campaign_id"),
    ("fk_event_message_id_message", "message", "message_id"),
    ("fk_event_contact_id_contact", "contact", "contact_id"),
]
PENDING = sa.text("body IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("sns_message") as batch:
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.create_index(
            "ix_sns_message_pending",
            ["received_at"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )
    with op.batch_alter_table("event") as batch:
        for name, _, _ in FOREIGN_KEYS:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    # Events whose parents are gone would break the constraints: drop them.
    op.execute(
        "DELETE FROM event WHERE workspace_id NOT IN (SELECT id FROM workspace) "
        "OR (campaign_id IS NOT NULL AND campaign_id NOT IN (SELECT id FROM campaign)) "
        "OR (message_id IS NOT NULL AND message_id NOT IN (SELECT id FROM message)) "
        "OR (contact_id IS NOT NULL AND contact_id NOT IN (SELECT id FROM contact))"
    )
    with op.batch_alter_table("event") as batch:
        for name, table, column in FOREIGN_KEYS:
            batch.create_foreign_key(name, table, [column], ["id"], ondelete="CASCADE")
    # A notification still in the inbox would be lost with its body: the older code
    # cannot make its events. Downgrade with an empty backlog.
    with op.batch_alter_table("sns_message") as batch:
        batch.drop_index("ix_sns_message_pending")
        batch.drop_column("last_error")
        batch.drop_column("attempts")
        batch.drop_column("body")
