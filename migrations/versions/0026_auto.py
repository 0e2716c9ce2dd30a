"""Beat's list enrollment reads only memberships made since its mark (issue 18): an index on
(list_id, created_at), so a pass costs what joined, not how many members the list has.

Revision ID: 0026_auto
Revises: 0023_resend_sunset
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026_auto"
down_revision: str | None = "0023_resend_sunset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_list_membership_list_created", "list_membership", ["list_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_list_membership_list_created", table_name="list_membership")
