"""The migrations create exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.db import create_db_engine
from core.models import Base
from core.schema import downgrade, migrate

TABLES = {
    "workspace",
    "user_account",
    "password_reset_token",
    "invitation",
    "contact",
    "custom_field",
    "contact_list",
    "list_membership",
    "segment",
    "template",
    "campaign",
    "variant",
    "message",
    "event",
    "suppression",
}


def test_migrations_match_models_and_downgrade(backend, databases):
    url = databases.fresh(backend)
    engine = create_db_engine(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("message")}
        assert {"ix_message_provider_id", "ix_message_campaign_status_id"} <= indexes
    engine.dispose()
    downgrade(url, "base")
    engine = create_db_engine(url)
    with engine.connect() as conn:
        assert not TABLES & set(inspect(conn).get_table_names())
    engine.dispose()
    migrate(url)
