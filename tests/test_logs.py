"""One line per event: readable text by default, JSON with PAPERBOT_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging

import pytest

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
