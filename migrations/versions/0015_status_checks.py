"""CHECK constraints: each status column holds one of its statuses (core.models.statuses)

The lists are written out here, not imported: a migration states the schema of its day.
PostgreSQL adds each constraint NOT VALID and then validates it (existing rows are checked
without blocking writes for the scan); SQLite cannot add a constraint to a table, so the
table is rebuilt with it (Alembic's batch mode copies rows and indexes).

Revision ID: 0015_status_checks
Revises: 0014_casefold
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_status_checks"
down_revision: str | None = "0014_casefold"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = {
    "contact": ("subscribed", "unsubscribed", "bounced", "complained"),
    "campaign": ("draft", "scheduled", "sending", "paused", "sent", "failed", "cancelled"),
    "message": ("queued", "held", "sending", "sent", "failed", "uncertain", "cancelled"),
    "job": ("pending", "running", "done", "failed"),
}


def _condition(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, values in STATUSES.items():
        name = f"ck_{table}_status"
        if postgres:
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({_condition(values)}) NOT VALID"
            )
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
        else:
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.create_check_constraint(op.f(name), _condition(values))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in STATUSES:
        name = f"ck_{table}_status"
        if postgres:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        else:
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.drop_constraint(op.f(name), type_="check")
