"""Logging: one line per event, human-readable by default, JSON with PAPERBOT_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _SkippedOverlap(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached" warnings.

    Every job allows one run at a time and coalesces the runs it missed, so a sweep that takes
    longer than the sweep interval just delays the next one; that is no reason to warn on every
    tick. APScheduler's other warnings (a run missed by more than its grace time) stay.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the "maximum number of running instances reached" record."""
        return "maximum number of running instances reached" not in str(record.msg)


_SKIPPED_OVERLAP = _SkippedOverlap()


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send log lines to stderr in the chosen format (idempotent)."""
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # its notes on connections it cleans up
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_OVERLAP)
