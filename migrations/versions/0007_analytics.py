"""analytics: covering indexes for campaign reports

Revision ID: 0007_analytics
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_analytics"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_campaign_report",
            ["campaign_id", "type", "source", "is_machine", "message_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_event_campaign_timeline",
            ["campaign_id", "type", "source", "is_machine", "occurred_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_campaign_timeline")
        batch_op.drop_index("ix_event_campaign_report")
