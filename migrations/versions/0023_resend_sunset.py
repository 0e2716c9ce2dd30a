"""Resend to non-openers and the sunset policy (issue 19).

- `campaign.parent_campaign_id`: a resend names the campaign it follows up. No foreign key,
  like the ledger's ids: `core.campaigns.service.delete_campaign` clears it when the parent
  goes.
- `contact.inactive_since`: set by the daily sunset recompute, cleared by a human open or
  click (core.contacts.sunset); a partial index holds only the inactive contacts.
- `sunset_policy`: one row per workspace that changed the defaults (N campaigns over D days),
  and the id of its built-in "Inactive contacts" segment.

Revision ID: 0023_resend_sunset
Revises: 0022_guard
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_resend_sunset"
down_revision: str | None = "0022_guard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INACTIVE = sa.text("inactive_since IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("parent_campaign_id", sa.Integer(), nullable=True))
    op.create_index("ix_campaign_parent", "campaign", ["parent_campaign_id"])

    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("inactive_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_contact_inactive",
        "contact",
        ["workspace_id", "inactive_since"],
        postgresql_where=INACTIVE,
        sqlite_where=INACTIVE,
    )

    op.create_table(
        "sunset_policy",
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspace.id", ondelete="CASCADE", name="fk_sunset_policy_workspace_id_workspace"
            ),
            primary_key=True,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("min_campaigns", sa.Integer(), nullable=False, server_default="10"),
        sa.Column("min_days", sa.Integer(), nullable=False, server_default="120"),
        sa.Column(
            "segment_id",
            sa.Integer(),
            sa.ForeignKey(
                "segment.id", ondelete="SET NULL", name="fk_sunset_policy_segment_id_segment"
            ),
            nullable=True,
        ),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("sunset_policy")
    op.drop_index("ix_contact_inactive", table_name="contact")
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("inactive_since")
    op.drop_index("ix_campaign_parent", table_name="campaign")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("parent_campaign_id")
