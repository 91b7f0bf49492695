"""One line per event: readable text by default, JSON with PAPERBOT_LOG_FORMAT=json."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.logs import setup_logging


@pytest.fixture(autouse=True)
def restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json")
    logging.getLogger("bot.test").info("sent %d digests\nto people", 3)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bot.test").exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "sent 3 digests\nto people" and first["level"] == "info"
    assert first["logger"] == "bot.test" and first["time"].endswith("+00:00")
    assert "ValueError: boom" in second["exception"]


def test_text_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("text")
    logging.getLogger("bot.test").warning("source hf failed")
    assert "WARNING bot.test: source hf failed" in capsys.readouterr().err


async def test_a_job_still_running_at_its_next_run_is_not_warned_about_but_a_missed_run_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("text")
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
    started, finished = [], []

    async def slow() -> None:
        started.append(1)
        await asyncio.sleep(0.5)  # five ticks of its trigger
        finished.append(1)

    async def late() -> None:
        pass

    now = datetime.now(UTC)
    scheduler.add_job(slow, IntervalTrigger(seconds=0.1), name="slow", next_run_time=now)
    scheduler.add_job(late, DateTrigger(now - timedelta(seconds=10)), name="late")
    scheduler.start()
    await asyncio.sleep(0.7)
    scheduler.pause()
    while len(finished) < len(started):
        await asyncio.sleep(0.05)
    scheduler.shutdown()
    err = capsys.readouterr().err
    assert len(started) == 2, err  # the ticks in between were skipped
    assert "maximum number of running instances" not in err
    assert 'WARNING apscheduler.executors.default: Run time of job "late (trigger' in err
