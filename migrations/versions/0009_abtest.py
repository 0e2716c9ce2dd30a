"""A/B testing: mark the messages held out of the test for the winner

Revision ID: 0009_abtest
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_abtest"
down_revision: str | None = "0008_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A server default makes this a metadata-only change on PostgreSQL 11+ (no table rewrite).
    op.add_column(
        "message",
        sa.Column("ab_rest", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("ab_rest")
