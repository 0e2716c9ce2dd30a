"""Beat's due scan (issue 18) reads enrollments in (due_at, id) order: the index on
(status, due_at) gains id, so the scan stops after its batch instead of sorting every due
enrollment first (a million contacts imported at once are a million enrollments due at the
same instant).

Revision ID: 0020_enrollment_due_index
Revises: 0019_automation_triggers
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_enrollment_due_index"
down_revision: str | None = "0019_automation_triggers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_enrollment_status_due_id", "enrollment", ["status", "due_at", "id"])
    op.drop_index("ix_enrollment_status_due", table_name="enrollment")


def downgrade() -> None:
    op.create_index("ix_enrollment_status_due", "enrollment", ["status", "due_at"])
    op.drop_index("ix_enrollment_status_due_id", table_name="enrollment")
