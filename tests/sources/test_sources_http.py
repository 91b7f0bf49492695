"""The polite HTTP shell: retries, backoff, Retry-After, pacing, size cap; time is faked."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator
from email.utils import formatdate

import httpcore
import httpx
import pytest
from sourcekit import FakeClock, Server, json_response

from bot import __version__
from bot.errors import SourceError
from bot.sources import Fetcher, HttpPolicy, make_client
from bot.sources.http import USER_AGENT

URL = "https://huggingface.co/api/daily_papers"
ROUTE = "huggingface.co/api/daily_papers"
OK = json_response(b"[]")


def test_the_client_names_the_bot_and_has_timeouts() -> None:
    client = make_client()
    assert client.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"paperbot/{__version__} ")
    assert client.timeout.connect == 10.0 and client.timeout.read == 30.0


async def test_the_user_agent_is_sent(server: Server) -> None:
    server.routes[ROUTE] = [OK]
    await server.fetcher().get("hf", URL)
    assert server.requests[0].headers["user-agent"].startswith("paperbot/")


async def test_5xx_then_success_retries_with_growing_jittered_backoff(
    server: Server, clock: FakeClock
) -> None:
    server.routes[ROUTE] = [httpx.Response(502), httpx.Response(503), httpx.Response(500), OK]
    body = await server.fetcher(HttpPolicy(backoff=2.0)).get("hf", URL)
    assert body == b"[]"
    assert len(server.requests) == 4
    first, second, third = clock.sleeps
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 4.0 and 4.0 <= third <= 8.0


async def test_backoff_is_capped(server: Server, clock: FakeClock) -> None:
    server.routes[ROUTE] = [httpx.Response(503)] * 4 + [OK]
    await server.fetcher(HttpPolicy(backoff=10.0, backoff_max=15.0)).get("hf", URL)
    assert max(clock.sleeps) <= 15.0


async def test_connection_errors_are_retried(server: Server) -> None:
    server.routes[ROUTE] = [httpx.ConnectError("connection refused"), httpx.ReadTimeout("slow"), OK]
    assert await server.fetcher().get("hf", URL) == b"[]"
    assert len(server.requests) == 3


def lookup_failure(errno: int, text: str) -> httpx.ConnectError:
    """What httpx raises when a host name lookup fails: its error raised from httpcore's, which
    httpcore raised (``from None``) while handling the lookup error."""
    lookup = socket.gaierror(errno, text)
    wrapped = httpcore.ConnectError(lookup)
    wrapped.__context__, wrapped.__suppress_context__ = lookup, True
    error = httpx.ConnectError(f"[Errno {errno}] {text}")
    error.__cause__ = wrapped
    return error


async def test_a_host_name_that_does_not_exist_is_not_retried(
    server: Server, clock: FakeClock
) -> None:
    server.routes[ROUTE] = [lookup_failure(socket.EAI_NONAME, "Name or service not known"), OK]
    with pytest.raises(SourceError) as caught:
        await server.fetcher().get("hf", URL)
    assert str(caught.value) == (
        "source hf: host huggingface.co not found (not retried; is DNS working?): "
        f"ConnectError for {URL}: [Errno {socket.EAI_NONAME}] Name or service not known"
    )
    assert len(server.requests) == 1 and clock.sleeps == []


async def test_a_temporary_lookup_failure_is_retried(server: Server) -> None:
    failure = lookup_failure(socket.EAI_AGAIN, "Temporary failure in name resolution")
    server.routes[ROUTE] = [failure, OK]
    assert await server.fetcher().get("hf", URL) == b"[]"
    assert len(server.requests) == 2


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real network transport, counting the requests it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await super().handle_async_request(request)


async def test_a_name_that_never_resolves_fails_after_one_try(clock: FakeClock) -> None:
    """Through the real resolver: a name under .invalid never resolves (RFC 2606)."""
    try:
        socket.getaddrinfo("paperbot.invalid", 443)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            pytest.skip("this machine's resolver cannot say that a name does not exist")
    transport = CountingTransport()
    async with make_client(transport=transport) as client:
        with pytest.raises(SourceError, match=r"host paperbot\.invalid not found \(not retried"):
            await Fetcher(client, clock=clock).get("hf", "https://paperbot.invalid/api/papers")
    assert len(transport.requests) == 1 and clock.sleeps == []


async def test_429_honours_retry_after_seconds(server: Server, clock: FakeClock) -> None:
    server.routes[ROUTE] = [httpx.Response(429, headers={"Retry-After": "7"}), OK]
    await server.fetcher().get("hf", URL)
    assert clock.sleeps == [7.0]


async def test_retry_after_may_be_an_http_date(server: Server, clock: FakeClock) -> None:
    when = formatdate(clock.now + 20, usegmt=True)
    server.routes[ROUTE] = [httpx.Response(503, headers={"Retry-After": when}), OK]
    await server.fetcher().get("hf", URL)
    assert clock.sleeps == [pytest.approx(20.0, abs=1.0)]


async def test_an_unreasonable_retry_after_fails_at_once(server: Server) -> None:
    server.routes[ROUTE] = [httpx.Response(429, headers={"Retry-After": "86400"}), OK]
    with pytest.raises(SourceError, match="asked to retry after 86400 s"):
        await server.fetcher().get("hf", URL)
    assert len(server.requests) == 1


async def test_retries_exhausted_is_a_source_error_with_the_last_problem(
    server: Server, clock: FakeClock
) -> None:
    server.routes[ROUTE] = [httpx.Response(503)]
    with pytest.raises(SourceError) as caught:
        await server.fetcher(HttpPolicy(retries=3)).get("hf", URL)
    assert str(caught.value) == f"source hf: gave up after 4 attempts: HTTP 503 from {URL}"
    assert len(server.requests) == 4 and len(clock.sleeps) == 3


async def test_client_errors_are_not_retried(server: Server) -> None:
    server.routes[ROUTE] = [httpx.Response(404)]
    with pytest.raises(SourceError, match="HTTP 404"):
        await server.fetcher().get("hf", URL)
    assert len(server.requests) == 1


async def test_wrong_content_type_is_refused(server: Server) -> None:
    server.routes[ROUTE] = [
        httpx.Response(200, text="<html/>", headers={"content-type": "text/html"})
    ]
    with pytest.raises(SourceError, match="expected json content, got 'text/html'"):
        await server.fetcher().get("hf", URL, accept=("json",))


async def test_a_declared_oversized_body_is_refused(server: Server) -> None:
    server.routes[ROUTE] = [json_response(b"[" + b" " * 2000 + b"]")]
    with pytest.raises(SourceError, match="exceeds the 1000-byte cap"):
        await server.fetcher(HttpPolicy(max_bytes=1000)).get("hf", URL)


async def test_an_undeclared_oversized_body_is_cut_off(server: Server) -> None:
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 100

    server.routes[ROUTE] = lambda request: httpx.Response(200, content=endless())
    with pytest.raises(SourceError, match="response exceeds the 1000-byte cap"):
        await server.fetcher(HttpPolicy(max_bytes=1000)).get("hf", URL)


async def test_arxiv_hosts_get_one_request_every_three_seconds(
    server: Server, clock: FakeClock
) -> None:
    for path in ("rss.arxiv.org/rss/cs.LG", "export.arxiv.org/rss/cs.CL", ROUTE):
        server.routes[path] = [OK]
    fetcher = server.fetcher()
    await fetcher.get("arxiv", "https://rss.arxiv.org/rss/cs.LG")
    await fetcher.get("hf", URL)
    await fetcher.get("arxiv", "https://export.arxiv.org/rss/cs.CL")
    await fetcher.get("arxiv", "https://rss.arxiv.org/rss/cs.LG")
    arxiv_times = [
        t for r, t in zip(server.requests, server.times, strict=True) if "arxiv" in r.url.host
    ]
    gaps = [b - a for a, b in itertools.pairwise(arxiv_times)]
    assert gaps == [pytest.approx(3.0), pytest.approx(3.0)]
    assert server.times[1] == server.times[0]  # Hugging Face is not held back by arXiv pacing


async def test_pacing_also_spaces_retries(server: Server, clock: FakeClock) -> None:
    server.routes["rss.arxiv.org/rss/cs.LG"] = [httpx.Response(503), OK]
    await server.fetcher(HttpPolicy(backoff=0.1)).get("arxiv", "https://rss.arxiv.org/rss/cs.LG")
    assert server.times[1] - server.times[0] >= 3.0
