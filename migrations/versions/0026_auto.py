"""Beat's list enrollment and the daily sunset recompute read only what they need.

- `ix_list_membership_list_created` (issue 18): the members who joined a list since the
  enrollment pass's mark, so a pass costs what joined, not how many members the list has.
- `ix_event_engaged` and `ix_message_campaign_left` (issue 19): partial indexes of human
  opens and clicks, and of campaign mail that left, each by (workspace, contact, time); the
  recompute reads both from the indexes alone in contact order and merges them, instead of
  hashing ten million events and four million messages.

Revision ID: 0026_auto
Revises: 0024_local_time
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_auto"
down_revision: str | None = "0024_local_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENGAGED = sa.text("type IN ('open', 'click') AND is_machine IS false")
CAMPAIGN_LEFT = sa.text("campaign_id IS NOT NULL AND status IN ('sent', 'uncertain')")


def upgrade() -> None:
    op.create_index(
        "ix_list_membership_list_created", "list_membership", ["list_id", "created_at"]
    )
    op.create_index(
        "ix_event_engaged",
        "event",
        ["workspace_id", "contact_id", "occurred_at"],
        postgresql_where=ENGAGED,
        sqlite_where=ENGAGED,
    )
    op.create_index(
        "ix_message_campaign_left",
        "message",
        ["workspace_id", "contact_id", "sent_at"],
        postgresql_where=CAMPAIGN_LEFT,
        sqlite_where=CAMPAIGN_LEFT,
    )


def downgrade() -> None:
    op.drop_index("ix_message_campaign_left", table_name="message")
    op.drop_index("ix_event_engaged", table_name="event")
    op.drop_index("ix_list_membership_list_created", table_name="list_membership")
