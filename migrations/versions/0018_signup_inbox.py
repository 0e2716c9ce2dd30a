"""Signup inbox (issue 17, speed): table `signup_inbox`, the signups the public service has
accepted and the worker has not yet subscribed (core.forms.inbox).

No foreign key to `form`: a form deleted while its signups wait drops them at the drain.
The consent `source` column (String(16) with a CHECK) already fits every source written
(form, import, manual, preferences, one-click, api), so it is left as it is.

Revision ID: 0018_signup_inbox
Revises: 0017_automations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018_signup_inbox"
down_revision: str | None = "0017_automations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "signup_inbox",
        sa.Column("id", BIG, primary_key=True),
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspace.id", ondelete="CASCADE", name="fk_signup_inbox_workspace_id_workspace"
            ),
            nullable=False,
        ),
        sa.Column("form_id", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("fields", JSON, nullable=False, server_default="{}"),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("user_agent", sa.Text(), nullable=False, server_default=""),
        sa.Column("consent_text", sa.Text(), nullable=False, server_default=""),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("signup_inbox")
