"""Automation triggers (issue 18): segment and date triggers, the workspace's time zone, the
exit pass's watermark.

- `workspace.timezone` (IANA, default UTC): date triggers' "today" and until_time waits of
  contacts without their own zone.
- `automation.trigger_checked_at`: when beat last looked for a segment's or a date's new
  contacts; `automation_match`: who matched a segment trigger's segment last time.
- `enrollment.trigger_key`: a date trigger's occurrence, enrolled once each.
- `beat_mark`: watermarks of beat passes (the exit pass reads contacts whose status changed
  since its mark, through the new index on contact (status, updated_at)).
- `ix_message_automation_sent`: a partial index over automations' ledger rows only, for the
  dashboard's count of a workspace's automation mail.

Revision ID: 0019_automation_triggers
Revises: 0018_signup_inbox
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_automation_triggers"
down_revision: str | None = "0018_signup_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("workspace") as batch:
        batch.add_column(
            sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC")
        )
    with op.batch_alter_table("automation") as batch:
        batch.add_column(
            sa.Column("trigger_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("trigger_key", sa.String(32), nullable=True))
    op.create_index("ix_contact_status_updated", "contact", ["status", "updated_at"])
    op.create_index(
        "ix_message_automation_sent",
        "message",
        ["workspace_id", "sent_at"],
        postgresql_where=sa.text("automation_id IS NOT NULL"),
        sqlite_where=sa.text("automation_id IS NOT NULL"),
    )
    op.create_table(
        "automation_match",
        sa.Column(
            "automation_id",
            sa.Integer(),
            sa.ForeignKey(
                "automation.id",
                ondelete="CASCADE",
                name="fk_automation_match_automation_id_automation",
            ),
            primary_key=True,
        ),
        sa.Column(
            "contact_id",
            BIG,
            sa.ForeignKey(
                "contact.id", ondelete="CASCADE", name="fk_automation_match_contact_id_contact"
            ),
            primary_key=True,
        ),
        sa.Column(
            "since", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "beat_mark",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("beat_mark")
    op.drop_table("automation_match")
    op.drop_index("ix_message_automation_sent", table_name="message")
    op.drop_index("ix_contact_status_updated", table_name="contact")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("trigger_key")
    with op.batch_alter_table("automation") as batch:
        batch.drop_column("trigger_checked_at")
    with op.batch_alter_table("workspace") as batch:
        batch.drop_column("timezone")
