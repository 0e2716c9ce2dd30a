"""Automations (issue 18): tables `automation` and `enrollment`; the message ledger serves
automations' send steps too (campaign_id may be NULL; automation_id, enrollment_id and
step_path, unique per enrollment and step); contacts gain an optional IANA `timezone`.

On SQLite the message table is rebuilt (batch mode) to drop campaign_id's NOT NULL; on
PostgreSQL that and the new columns are catalogue-only changes, and the unique constraint
builds one index over the ledger.

Revision ID: 0017_automations
Revises: 0016_forms
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017_automations"
down_revision: str | None = "0016_forms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOMATION = ("draft", "active", "paused")
ENROLLMENT = ("active", "finished", "exited")

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "automation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspace.id", ondelete="CASCADE", name="fk_automation_workspace_id_workspace"
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", JSON, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_by_id",
            sa.Integer(),
            sa.ForeignKey(
                "user_account.id",
                ondelete="SET NULL",
                name="fk_automation_created_by_id_user_account",
            ),
            nullable=True,
        ),
        _now("created_at"),
        _now("updated_at"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_automation_ws_name"),
        sa.CheckConstraint(_in("status", AUTOMATION), name=op.f("ck_automation_status")),
    )
    op.create_index("ix_automation_status", "automation", ["status"])

    op.create_table(
        "enrollment",
        sa.Column("id", BIG, primary_key=True),
        sa.Column(
            "automation_id",
            sa.Integer(),
            sa.ForeignKey(
                "automation.id", ondelete="CASCADE", name="fk_enrollment_automation_id_automation"
            ),
            nullable=False,
        ),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column(
            "contact_id",
            BIG,
            sa.ForeignKey(
                "contact.id", ondelete="CASCADE", name="fk_enrollment_contact_id_contact"
            ),
            nullable=False,
        ),
        sa.Column("generation", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("step_path", sa.String(64), nullable=False, server_default="0"),
        _now("entered_step_at"),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _now("created_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "automation_id", "contact_id", "generation", name="uq_enrollment_automation_contact"
        ),
        sa.CheckConstraint(_in("status", ENROLLMENT), name=op.f("ck_enrollment_status")),
    )
    op.create_index("ix_enrollment_status_due", "enrollment", ["status", "due_at"])
    op.create_index("ix_enrollment_contact", "enrollment", ["contact_id", "status"])

    with op.batch_alter_table("message") as batch:
        batch.alter_column("campaign_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("automation_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("enrollment_id", BIG, nullable=True))
        batch.add_column(sa.Column("step_path", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_message_enrollment_step", ["enrollment_id", "step_path"])

    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("timezone")
    op.execute("DELETE FROM message WHERE campaign_id IS NULL")
    with op.batch_alter_table("message") as batch:
        batch.drop_constraint("uq_message_enrollment_step", type_="unique")
        batch.drop_column("step_path")
        batch.drop_column("enrollment_id")
        batch.drop_column("automation_id")
        batch.alter_column("campaign_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_enrollment_contact", table_name="enrollment")
    op.drop_index("ix_enrollment_status_due", table_name="enrollment")
    op.drop_table("enrollment")
    op.drop_index("ix_automation_status", table_name="automation")
    op.drop_table("automation")
