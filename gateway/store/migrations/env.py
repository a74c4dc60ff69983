"""Alembic environment: migrations run on the connection the gateway hands over
(`config.attributes["connection"]`), or on `sqlalchemy.url` when run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from gateway.store.tables import metadata

config = context.config


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as sync_connection:
        run(sync_connection)
