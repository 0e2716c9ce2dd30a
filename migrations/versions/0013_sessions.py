"""Signed-out sessions (revoked_session)

Sign-out ends the session on the server: the cookie's token (user and expiry instant)
is recorded and refused on every later run until it would have expired anyway.

Revision ID: 0013_sessions
Revises: 0012_inbox
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_sessions"
down_revision: str | None = "0012_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revoked_session",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_exp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_revoked_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "token_exp", name=op.f("pk_revoked_session")),
    )


def downgrade() -> None:
    op.drop_table("revoked_session")
