"""The command line: the only place that reads argv and the environment, and calls asyncio.run.

Every command turns a BotError into one clear line on stderr and the error's exit code; a
traceback is only ever shown for a bug.

    app.py      the typer apps, error handling, factories from settings to real parts
    send.py     send
    inspect.py  fetch, papers, match, explain, preview
    service.py  run (worker), serve (unsubscribe links)
    admin.py    profiles check|schema, unsubscribe, unsuppress, status
"""

from bot.cli import admin, inspect, send, service  # noqa: F401  (importing registers the commands)
from bot.cli.app import app, main, make_fetch, read_profiles

__all__ = ["app", "main", "make_fetch", "read_profiles"]
