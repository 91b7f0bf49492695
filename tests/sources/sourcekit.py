"""Test kit for the sources: recorded responses, a fake clock and a scripted HTTP server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.sources import Fetcher, HttpPolicy, make_client

FIXTURES = Path(__file__).parent.parent / "fixtures"

Handler = Callable[[httpx.Request], httpx.Response]


def fixture_bytes(name: str) -> bytes:
    """A recorded response from tests/fixtures (e.g. ``hf/daily_papers_2024-01-16.json``)."""
    return (FIXTURES / name).read_bytes()


@dataclass
class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    now: float = 1_705_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Server:
    """A scripted HTTP server behind httpx.MockTransport that records every request."""

    clock: FakeClock
    routes: dict[str, list[httpx.Response | Exception] | Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(self.clock.now)
        route = self.routes.get(f"{request.url.host}{request.url.path}")
        if route is None:
            return httpx.Response(404, text="not found")
        if callable(route):
            return route(request)
        answer = route.pop(0) if len(route) > 1 else route[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.AsyncClient:
        return make_client(transport=httpx.MockTransport(self.handle))

    def fetcher(self, policy: HttpPolicy | None = None) -> Fetcher:
        return Fetcher(self.client(), policy=policy, clock=self.clock)


def json_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "application/json"})


def html_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers={"content-type": "text/html; charset=utf-8"}
    )


def xml_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers={"content-type": "application/rss+xml; charset=utf-8"}
    )
