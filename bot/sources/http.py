"""The network shell of the sources: one polite, patient, bounded HTTP GET.

``Fetcher.get`` retries connection errors, 5xx and 429 with exponential backoff and jitter
(``Retry-After`` honoured), except a host name that does not exist and a redirect loop, which
fail at once (a temporary DNS failure is retried); it keeps a minimum interval per host (arXiv
asks for one request every 3 seconds), refuses oversized bodies and unexpected content types.
The clock is injected, so tests never really sleep.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from bot import __version__
from bot.errors import SourceError, no_such_host

log = logging.getLogger("bot.sources.http")

USER_AGENT = f"paperbot/{__version__} (+https://github.com/paperbot; research paper digest bot)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
ARXIV_INTERVALS: Mapping[str, float] = {"arxiv.org": 3.0}


class Clock(Protocol):
    """Wall time and sleeping, injectable so tests control time."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Really wait."""
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """How patient and how strict a Fetcher is."""

    retries: int = 4
    backoff: float = 2.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0
    max_bytes: int = 15_000_000
    min_interval: Mapping[str, float] = field(default_factory=lambda: dict(ARXIV_INTERVALS))


def make_client(
    *, transport: httpx.AsyncBaseTransport | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    """An AsyncClient with timeouts, redirects followed and a User-Agent naming the bot."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=8),
    )


class _Retry(Exception):
    """A failed attempt worth repeating; ``wait`` is what the server asked for, if anything."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.wait = wait


class Fetcher:
    """GETs with retries, per-host pacing, a size cap and a content-type check."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or HttpPolicy()
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self._last: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(
        self,
        source: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        accept: tuple[str, ...] = (),
    ) -> bytes:
        """The body of a successful GET; SourceError once retries are spent or on a hard failure.

        ``accept`` lists substrings one of which the Content-Type must contain (when it is sent).
        """
        attempts = self.policy.retries + 1
        for attempt in range(attempts):
            await self._wait_turn(url)
            try:
                return await self._attempt(source, url, params, accept)
            except _Retry as retry:
                if attempt + 1 == attempts:
                    raise SourceError(
                        source, f"gave up after {attempts} attempts: {retry}"
                    ) from None
                delay = retry.wait if retry.wait is not None else self._backoff(attempt)
                log.info("source %s: %s; retrying in %.1f s", source, retry, delay)
                await self.clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        source: str,
        url: str,
        params: Mapping[str, str | int] | None,
        accept: tuple[str, ...],
    ) -> bytes:
        try:
            async with self.client.stream("GET", url, params=params) as response:
                self._check_status(source, response)
                self._check_type(source, response, accept)
                return await self._read_capped(source, response)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__} for {url}: {exc}".rstrip(": ")
            if no_such_host(exc):  # a name that does not exist will not exist a moment later
                host = urlsplit(url).hostname
                raise SourceError(
                    source, f"host {host} not found (not retried; is DNS working?): {problem}"
                ) from None
            raise _Retry(problem) from None
        except httpx.TooManyRedirects as exc:  # a redirect loop does not end by itself
            raise SourceError(source, f"too many redirects from {url}: {exc}") from None
        except httpx.RequestError as exc:  # a body that cannot be decoded, and the like
            raise _Retry(f"{type(exc).__name__} for {url}: {exc}".rstrip(": ")) from None

    def _check_status(self, source: str, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429 or status >= 500:
            wait = self._retry_after(source, response)
            raise _Retry(f"HTTP {status} from {response.url}", wait)
        if status >= 400:
            raise SourceError(source, f"HTTP {status} from {response.url}")

    def _check_type(self, source: str, response: httpx.Response, accept: tuple[str, ...]) -> None:
        content_type = response.headers.get("content-type", "").lower()
        if accept and content_type and not any(kind in content_type for kind in accept):
            wanted = " or ".join(accept)
            raise SourceError(source, f"expected {wanted} content, got {content_type!r}")

    async def _read_capped(self, source: str, response: httpx.Response) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SourceError(source, f"response of {declared} bytes exceeds the {limit}-byte cap")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise SourceError(source, f"response exceeds the {limit}-byte cap")
            chunks.append(chunk)
        return b"".join(chunks)

    def _retry_after(self, source: str, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return None
        if value.isdigit():
            wait = float(value)
        else:
            try:
                wait = parsedate_to_datetime(value).timestamp() - self.clock.time()
            except (TypeError, ValueError):
                return None
        wait = max(wait, 0.0)
        if wait > self.policy.retry_after_max:
            raise SourceError(
                source,
                f"HTTP {response.status_code}: asked to retry after {wait:.0f} s "
                f"(more than {self.policy.retry_after_max:.0f} s)",
            )
        return wait

    def _backoff(self, attempt: int) -> float:
        base = min(self.policy.backoff_max, self.policy.backoff * 2.0**attempt)
        return base * (0.5 + 0.5 * self.rng.random())

    async def _wait_turn(self, url: str) -> None:
        key, interval = self._pace((urlsplit(url).hostname or "").lower())
        if not interval:
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            last = self._last.get(key)
            if last is not None:
                wait = last + interval - self.clock.time()
                if wait > 0:
                    await self.clock.sleep(wait)
            self._last[key] = self.clock.time()

    def _pace(self, host: str) -> tuple[str, float]:
        """The pacing key (a domain shared by its subdomains) and minimum interval for a host."""
        for domain, seconds in self.policy.min_interval.items():
            if host == domain or host.endswith("." + domain):
                return domain, seconds
        return host, 0.0
