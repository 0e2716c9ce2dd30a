"""The message ledger without foreign keys, and one index fewer per row

A snapshot writes a million ledger rows in one INSERT … SELECT; PostgreSQL checked four
foreign keys row by row (two thirds of its time) and kept an index on contact_id that the
unique (contact_id, campaign_id) now serves. See core.models.Message.

Revision ID: 0011_ledger
Revises: 0010_webhook
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ledger"
down_revision: str | None = "0010_webhook"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = [
    ("fk_message_workspace_id_workspace", "workspace", "workspace_id", "CASCADE"),
    ("fk_message_campaign_id_campaign", "campaign", "campaign_id", "CASCADE"),
    ("fk_message_contact_id_contact", "contact", "contact_id", "CASCADE"),
    ("fk_message_variant_id_variant", "variant", "variant_id", "SET NULL"),
]
SENT_ONLY = sa.text("provider_message_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        for name, _, _, _ in FOREIGN_KEYS:
            batch.drop_constraint(name, type_="foreignkey")
        batch.drop_index("ix_message_contact")
        batch.drop_index("ix_message_provider_id")
        batch.drop_constraint("uq_message_campaign_contact", type_="unique")
        batch.create_unique_constraint("uq_message_contact_campaign", ["contact_id", "campaign_id"])
        batch.create_index(
            "ix_message_provider_id",
            ["provider_message_id"],
            postgresql_where=SENT_ONLY,
            sqlite_where=SENT_ONLY,
        )


def downgrade() -> None:
    # Ledger rows whose campaign or contact is gone would break the constraints: drop them.
    op.execute(
        "DELETE FROM message WHERE campaign_id NOT IN (SELECT id FROM campaign) "
        "OR contact_id NOT IN (SELECT id FROM contact)"
    )
    op.execute(
        "UPDATE message SET variant_id = NULL "
        "WHERE variant_id IS NOT NULL AND variant_id NOT IN (SELECT id FROM variant)"
    )
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_provider_id")
        batch.drop_constraint("uq_message_contact_campaign", type_="unique")
        batch.create_unique_constraint("uq_message_campaign_contact", ["campaign_id", "contact_id"])
        batch.create_index("ix_message_provider_id", ["provider_message_id"])
        batch.create_index("ix_message_contact", ["contact_id"])
        for name, table, column, ondelete in FOREIGN_KEYS:
            batch.create_foreign_key(name, table, [column], ["id"], ondelete=ondelete)
