"""Signup forms and double opt-in (issue 17): lists gain description, visibility and
opt-in; tables `form`, `consent` (append-only proof of consent) and `form_throttle` (the
public service's shared rate limits); contact status `unconfirmed`.

The contact CHECK of migration 0015 is replaced by one that admits `unconfirmed`: on
PostgreSQL dropped and added NOT VALID then validated, on SQLite by rebuilding the table
(batch mode; migrations/env.py turns foreign keys off around it so memberships survive).

Revision ID: 0016_forms
Revises: 0015_status_checks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016_forms"
down_revision: str | None = "0015_status_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CONTACT = ("subscribed", "unsubscribed", "bounced", "complained")
NEW_CONTACT = (*OLD_CONTACT, "unconfirmed")
ACTIONS = ("request", "subscribe", "confirm", "resubscribe", "unsubscribe")
SOURCES = ("form", "import", "manual", "preferences", "one-click", "api")

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _contact_check(values: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE contact DROP CONSTRAINT IF EXISTS ck_contact_status")
        op.execute(
            f"ALTER TABLE contact ADD CONSTRAINT ck_contact_status CHECK ({_in('status', values)})"
            " NOT VALID"
        )
        op.execute("ALTER TABLE contact VALIDATE CONSTRAINT ck_contact_status")
    else:
        with op.batch_alter_table("contact", recreate="always") as batch:
            batch.drop_constraint(op.f("ck_contact_status"), type_="check")
            batch.create_check_constraint(op.f("ck_contact_status"), _in("status", values))


def upgrade() -> None:
    with op.batch_alter_table("contact_list") as batch:
        batch.add_column(
            sa.Column("visibility", sa.String(8), nullable=False, server_default="private")
        )
        batch.add_column(sa.Column("opt_in", sa.String(8), nullable=False, server_default="single"))
        batch.create_check_constraint(
            op.f("ck_contact_list_visibility"), _in("visibility", ("public", "private"))
        )
        batch.create_check_constraint(
            op.f("ck_contact_list_opt_in"), _in("opt_in", ("single", "double"))
        )
    _contact_check(NEW_CONTACT)

    op.create_table(
        "form",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspace.id", ondelete="CASCADE", name="fk_form_workspace_id_workspace"
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("list_ids", JSON, nullable=False, server_default="[]"),
        sa.Column("fields", JSON, nullable=False, server_default="[]"),
        sa.Column("consent_text", sa.Text(), nullable=False, server_default=""),
        sa.Column("success_message", sa.Text(), nullable=False, server_default=""),
        sa.Column("check_inbox_message", sa.Text(), nullable=False, server_default=""),
        sa.Column("redirect_url", sa.Text(), nullable=False, server_default=""),
        sa.Column(
            "welcome_template_id",
            sa.Integer(),
            sa.ForeignKey(
                "template.id", ondelete="SET NULL", name="fk_form_welcome_template_id_template"
            ),
            nullable=True,
        ),
        sa.Column("double_opt_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("workspace_id", "name", name="uq_form_ws_name"),
    )

    op.create_table(
        "consent",
        sa.Column("id", BIG, primary_key=True),
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspace.id", ondelete="CASCADE", name="fk_consent_workspace_id_workspace"
            ),
            nullable=False,
        ),
        sa.Column(
            "contact_id",
            BIG,
            sa.ForeignKey("contact.id", ondelete="CASCADE", name="fk_consent_contact_id_contact"),
            nullable=False,
        ),
        sa.Column("list_ids", JSON, nullable=False, server_default="[]"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_detail", sa.String(300), nullable=False, server_default=""),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey(
                "user_account.id", ondelete="SET NULL", name="fk_consent_user_id_user_account"
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("user_agent", sa.Text(), nullable=False, server_default=""),
        sa.Column("consent_text", sa.Text(), nullable=False, server_default=""),
        sa.Column("request_id", BIG, nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirm_ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("confirm_user_agent", sa.Text(), nullable=False, server_default=""),
        sa.UniqueConstraint("request_id", name="uq_consent_request_id"),
        sa.CheckConstraint(_in("action", ACTIONS), name=op.f("ck_consent_action")),
        sa.CheckConstraint(_in("source", SOURCES), name=op.f("ck_consent_source")),
    )
    op.create_index("ix_consent_contact_time", "consent", ["contact_id", "created_at"])
    op.create_index("ix_consent_workspace_time", "consent", ["workspace_id", "created_at"])

    op.create_table(
        "form_throttle",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_form_throttle_key_at", "form_throttle", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_form_throttle_key_at", table_name="form_throttle")
    op.drop_table("form_throttle")
    op.drop_index("ix_consent_workspace_time", table_name="consent")
    op.drop_index("ix_consent_contact_time", table_name="consent")
    op.drop_table("consent")
    op.drop_table("form")
    op.execute("DELETE FROM contact WHERE status = 'unconfirmed'")
    _contact_check(OLD_CONTACT)
    with op.batch_alter_table("contact_list") as batch:
        batch.drop_constraint(op.f("ck_contact_list_opt_in"), type_="check")
        batch.drop_constraint(op.f("ck_contact_list_visibility"), type_="check")
        batch.drop_column("opt_in")
        batch.drop_column("visibility")
