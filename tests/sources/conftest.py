"""Fixtures for the source tests."""

from __future__ import annotations

import pytest
from sourcekit import FakeClock, Server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Server:
    return Server(clock)
