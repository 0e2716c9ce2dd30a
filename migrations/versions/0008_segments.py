"""segments: event indexes for activity conditions

Revision ID: 0008_segments
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_segments"
down_revision: str | None = "0007_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_type_time_contact", ["type", "occurred_at", "contact_id"], unique=False
        )
        batch_op.create_index(
            "ix_event_campaign_type_contact", ["campaign_id", "type", "contact_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_campaign_type_contact")
        batch_op.drop_index("ix_event_type_time_contact")
