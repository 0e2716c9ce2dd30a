"""webhook: drop ix_event_campaign_type_time, which ix_event_campaign_timeline covers

Every event the webhook stores updates each index of the table. The (campaign_id, type,
occurred_at) index is a prefix-and-column subset of ix_event_campaign_timeline
(campaign_id, type, source, is_machine, occurred_at): the queries that used it (a
campaign's bounces by type, "opened campaign X within N days" segments) get the same plan
on the timeline index, with occurred_at as an index condition (EXPLAIN on 1M events).

Revision ID: 0010_webhook
Revises: 0009_abtest
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_webhook"
down_revision: str | None = "0009_abtest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_campaign_type_time")


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_campaign_type_time", ["campaign_id", "type", "occurred_at"], unique=False
        )
