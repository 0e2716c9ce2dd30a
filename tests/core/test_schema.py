"""The migrations create exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.infra.db import create_db_engine
from core.infra.migrate import downgrade, migrate
from core.models import Base

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


def test_status_checks_refuse_unknown_statuses_and_the_upgrade_keeps_rows(backend, databases):
    """Migration 0015 adds the CHECKs; on SQLite it rebuilds tables, which must not cascade
    into the rows that point at them (list memberships of the contact table)."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from core.models import Campaign, Job, Message

    url = databases.fresh(backend)
    downgrade(url, "0014_casefold")
    engine = create_db_engine(url)
    with Session(engine) as session:
        # Plain SQL: workspaces (migrations 0019, 0022) and contacts (0017) gained columns later.
        ws_id = session.execute(
            text(
                "INSERT INTO workspace (slug, name, max_send_rate) VALUES ('kept', 'Kept', 14) "
                "RETURNING id"
            )
        ).scalar_one()
        contact_id = session.execute(
            text(
                "INSERT INTO contact (workspace_id, email) VALUES (:ws, 'kept@example.com') "
                "RETURNING id"
            ),
            {"ws": ws_id},
        ).scalar_one()
        # Plain SQL: the models describe the newest schema (contact_list gained columns).
        session.execute(
            text("INSERT INTO contact_list (workspace_id, name) VALUES (:ws, 'Kept')"),
            {"ws": ws_id},
        )
        session.execute(
            text(
                "INSERT INTO list_membership (list_id, contact_id) "
                "SELECT id, :c FROM contact_list WHERE name = 'Kept'"
            ),
            {"c": contact_id},
        )
        session.commit()
    engine.dispose()
    migrate(url)
    engine = create_db_engine(url)
    bogus = [
        lambda: Campaign(workspace_id=ws_id, name="x", status="bogus"),
        lambda: Message(
            workspace_id=ws_id, campaign_id=1, contact_id=contact_id, email="e", status="bogus"
        ),
        lambda: Job(workspace_id=ws_id, kind="import", status="bogus"),
    ]
    with Session(engine) as session:
        assert session.execute(text("SELECT count(*) FROM list_membership")).scalar() == 1
        with pytest.raises(IntegrityError, match="ck_contact_status|CHECK"):
            session.execute(text("UPDATE contact SET status = 'bogus'"))
        session.rollback()
        for make in bogus:
            session.add(make())
            with pytest.raises(IntegrityError, match="_status|CHECK"):
                session.flush()
            session.rollback()
    engine.dispose()
