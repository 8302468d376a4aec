"""``qualitywatch migrate``: bring every store of the platform to this release's schema.

Three migration histories, each recorded in its own version table, so the stores may share a
database or not: the alert service's (``QW_DATABASE_URL``, ``alembic_version``), the ingest outbox's
(``QW_DATABASE_URL``, ``alembic_version_outbox``) and the worker checkpoint store's
(``QW_CHECKPOINT_URL``, ``alembic_version_checkpoints``). The processes also migrate their own store
when they start; this command is the migration job run before a release is rolled out, and says
what it found and did.
"""

from __future__ import annotations

from typing import Any

import click

__all__ = ["command"]


@click.command("migrate")
@click.option(
    "--database-url",
    default=None,
    help="SQLAlchemy URL of the alert store and the ingest outbox (default QW_DATABASE_URL).",
)
@click.option(
    "--checkpoint-url",
    default=None,
    help="SQLAlchemy URL of the worker checkpoint store (default QW_CHECKPOINT_URL).",
)
def command(database_url: str | None, checkpoint_url: str | None) -> None:
    """Migrate the alert store, the ingest outbox and the worker checkpoint store."""
    from alembic.migration import MigrationContext
    from alembic.util import CommandError
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from alerts.db import make_engine, migrate
    from qualitywatch.settings import alert_settings, ingest_settings, stream_settings
    from stream.checkpoint import CheckpointStore, CheckpointStoreError
    from stream.ingest import migrate_store
    from stream.ingest.models import enable_sqlite_wal
    from stream.migrations import Migrated, MigrationError

    def where(url: str) -> str:
        return make_url(url).render_as_string(hide_password=True)

    def unreachable(store: str, url: str, exc: DBAPIError) -> click.ClickException:
        # the driver's own first line ("connection refused", "password authentication failed"),
        # which never holds the password; SQLAlchemy's would add the statement and a link
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        return click.ClickException(f"{store} {where(url)}: cannot be migrated: {reason}")

    # the settings are read, and checked, before any store is touched: one that cannot be used ends
    # the command with one line naming the variable (never its value) and status 1
    alerts_url = database_url or alert_settings().database_url
    outbox_url = database_url or ingest_settings().database_url
    overrides: dict[str, Any] = {"checkpoint_url": checkpoint_url} if checkpoint_url else {}
    stream = stream_settings(**overrides)

    engine = make_engine(alerts_url)
    try:
        with engine.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
        migrate(engine)
        with engine.connect() as conn:
            after = MigrationContext.configure(conn).get_current_revision()
    except CommandError as exc:  # a revision this release does not know
        raise click.ClickException(f"alert store {where(alerts_url)}: {exc}") from exc
    except DBAPIError as exc:  # unreachable, refused, or no such database
        raise unreachable("alert store", alerts_url, exc) from exc
    finally:
        engine.dispose()
    click.echo(f"alert store {where(alerts_url)}: {Migrated('alert store', before, after)}")

    engine = create_engine(outbox_url)
    enable_sqlite_wal(engine)
    try:
        click.echo(f"ingest outbox {where(outbox_url)}: {migrate_store(engine)}")
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    except DBAPIError as exc:
        raise unreachable("ingest outbox", outbox_url, exc) from exc
    finally:
        engine.dispose()

    try:
        store = CheckpointStore(stream.checkpoint_url, stream.group_id)
    except CheckpointStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    store.close()
    click.echo(f"checkpoint store {where(stream.checkpoint_url)}: {store.migrated}")
