"""The long-running processes of the Procfile: ``run`` (worker) and ``serve`` (web)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from functools import partial
from typing import Annotated

import typer

from bot.cli.app import (
    app,
    delivery_target,
    handle_errors,
    make_deps,
    make_mailer,
    out,
    read_profiles,
    settings,
)
from bot.errors import ConfigError, UsageError
from bot.roster import ProfilesFile
from bot.scheduler import run_worker
from bot.store import Store
from bot.web import UnsubscribeServer
from bot.worker import Worker


@app.command()
@handle_errors
def run() -> None:
    """The always-on worker: fetches, sends each digest at its local time, sends alerts."""
    config = settings()
    profiles = ProfilesFile(config.profiles, partial(read_profiles, configured=True))
    worker = Worker(make_deps(config), lambda: make_mailer(config), profiles)
    target = delivery_target(make_mailer(config))
    asyncio.run(run_worker(worker, config.sweep_seconds, config.sources, target))


@app.command()
@handle_errors
def serve(
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST", help="Address to listen on (:: for IPv6 and IPv4)"),
    ] = "0.0.0.0",
    port: Annotated[
        int,
        typer.Option(
            "--port", envvar="PORT", metavar="PORT", min=0, max=65535, help="Port (or $PORT)"
        ),
    ] = 8080,
) -> None:
    """Serve the unsubscribe links (PAPERBOT_BASE_URL points here)."""
    config = settings()
    if config.secret_key is None:
        raise ConfigError(
            "invalid settings:\n  PAPERBOT_SECRET_KEY: needed to check unsubscribe links"
        )
    secret = config.secret_key.get_secret_value()
    store = Store(config.database_url)
    contact = config.unsubscribe_mailto or config.admin_email or config.sender.addr_spec
    try:
        server = UnsubscribeServer(
            (host, port), store, secret, config.base_url, config.previous_secrets, contact
        )
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        store.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    shown = f"[{host}]" if server.address_family == socket.AF_INET6 else host
    url = f"http://{shown}:{server.server_port}"
    links = f"{url}{server.prefix}/unsubscribe"
    out.print(f"Serving unsubscribe links on {links} (health check: {url}/healthz)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
