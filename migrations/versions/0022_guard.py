"""The deliverability guard (issue 19): the workspace's limits (`guard_bounce_limit`,
`guard_complaint_limit`) and table `campaign_guard`, the guard's record of a campaign.

Revision ID: 0022_guard
Revises: 0020_enrollment_due_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022_guard"
down_revision: str | None = "0020_enrollment_due_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _user(name: str) -> sa.Column:
    return sa.Column(
        name,
        sa.Integer(),
        sa.ForeignKey(
            "user_account.id", ondelete="SET NULL", name=f"fk_campaign_guard_{name}_user_account"
        ),
        nullable=True,
    )


def _at(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("workspace") as batch:
        batch.add_column(
            sa.Column("guard_bounce_limit", sa.Float(), nullable=False, server_default="0.04")
        )
        batch.add_column(
            sa.Column("guard_complaint_limit", sa.Float(), nullable=False, server_default="0.0008")
        )
    op.create_table(
        "campaign_guard",
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey(
                "campaign.id", ondelete="CASCADE", name="fk_campaign_guard_campaign_id_campaign"
            ),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspace.id", ondelete="CASCADE", name="fk_campaign_guard_workspace_id_workspace"
            ),
            nullable=False,
        ),
        _at("paused_at"),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("metric", sa.String(16), nullable=False, server_default=""),
        sa.Column("rate", sa.Float(), nullable=False, server_default="0"),
        sa.Column("feedback", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pauses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("overrides", sa.Integer(), nullable=False, server_default="0"),
        _at("overridden_at"),
        _user("overridden_by_id"),
        _at("acknowledged_at"),
        _user("acknowledged_by_id"),
        _at("notified_at"),
        _at("send_override_at"),
        _user("send_override_by_id"),
        sa.Column("send_override_detail", JSON, nullable=False, server_default="{}"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "ix_campaign_guard_workspace", "campaign_guard", ["workspace_id", "acknowledged_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_guard_workspace", table_name="campaign_guard")
    op.drop_table("campaign_guard")
    with op.batch_alter_table("workspace") as batch:
        batch.drop_column("guard_complaint_limit")
        batch.drop_column("guard_bounce_limit")
