"""Alembic environment: migrates the database named by settings (or -x url=...)."""

from logging.config import fileConfig

from alembic import context

from core.infra.config import settings
from core.infra.db import create_db_engine
from core.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    return (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or settings.database_url
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_db_engine(_url())
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
        )
        if sqlite:
            _without_foreign_keys(connection)
        else:
            with context.begin_transaction():
                context.run_migrations()
    engine.dispose()


def _without_foreign_keys(connection) -> None:
    """SQLite: rebuilding a table (batch mode) drops the old one, and with foreign keys on
    that DROP deletes every row pointing at it (list memberships of a rebuilt contact
    table, cascaded). The pragma only changes outside a transaction, so it is set on the
    raw connection before Alembic begins; the keys are checked once the migrations ran."""
    raw = connection.connection.dbapi_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
