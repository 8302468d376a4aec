"""``qualitywatch alerts``: run the alert service, migrate its database, issue tokens."""

from __future__ import annotations

import click

from .settings import alert_settings

__all__ = ["alert_settings", "command"]


@click.group("alerts")
def command() -> None:
    """The alert service (settings from QW_* environment variables)."""


@command.command("serve")
@click.option("--host", default=None, help="listen address (default QW_HOST)")
@click.option("--port", type=int, default=None, help="listen port (default QW_PORT)")
@click.option("--no-consume", is_flag=True, help="do not read the warnings topic (HTTP only)")
def serve(host: str | None, port: int | None, no_consume: bool) -> None:
    """Migrate the database, then serve the API, the periodic tick and the warnings consumer."""
    import gc

    import uvicorn

    from alerts import build_runtime, create_app

    settings = alert_settings(**({"consume": False} if no_consume else {}))
    runtime = build_runtime(settings)
    app = create_app(runtime, background=True)
    # what exists now (modules, the app) lives as long as the process: keep it out of full
    # collections, which otherwise rescan it after every consumed batch
    gc.freeze()
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="info")


@command.command("migrate")
@click.option("--revision", default="head", show_default=True)
def migrate_cmd(revision: str) -> None:
    """Bring the database (QW_DATABASE_URL) to the given migration."""
    from alerts.db import make_engine, migrate

    settings = alert_settings()
    migrate(make_engine(settings.database_url), revision)
    click.echo(f"migrated {settings.database_url.split('@')[-1]} to {revision}")


@command.group("token")
def token() -> None:
    """Bearer tokens."""


@token.command("create")
@click.option("--name", required=True, help="who the token is for")
@click.option("--role", required=True, type=click.Choice(["inspector", "duty_officer", "responder", "admin"]))
@click.option("--county", default=None, help="restrict to one county (GB/T 2260 code of the catalogue)")
def token_create(name: str, role: str, county: str | None) -> None:
    """Issue a token and print it once (only its digest is stored).

    A --county the catalogue (QW_CATALOGUE_PATH) does not know is refused with one line, exit
    status 1, before the database is touched."""
    from alerts import SystemClock
    from alerts.auth.service import create_token
    from alerts.db import make_engine, make_session_factory, migrate
    from alerts.errors import InvalidInput
    from alerts.inputs import check_catalogue
    from schemas import load_catalogue

    settings = alert_settings()
    catalogue = load_catalogue(settings.catalogue_path)  # the settings checked that it loads
    try:
        check_catalogue(catalogue, county=county)
        engine = make_engine(settings.database_url)
        migrate(engine)
        with make_session_factory(engine)() as session:
            _, clear = create_token(
                session,
                name=name,
                role=role,
                county=county,
                now=SystemClock().now(),
                catalogue=catalogue,
                actor="cli",
            )
            session.commit()
    except InvalidInput as exc:  # every field it checks is an option of this command
        raise click.ClickException(f"--{exc.field}: {exc.message}") from None
    click.echo(clear)
