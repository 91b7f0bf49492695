"""The profiles file the always-on worker serves, and what it says once about them.

``ProfilesFile`` reads the file once an edit has settled and keeps the last good version;
``Notes`` says who on it gets no digest (the profiles' warnings, the listed addresses that are
suppressed) once, not at every reload that keeps them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.errors import Problem
from bot.models import Subscriber
from bot.profiles import Profiles
from bot.stopping import in_thread
from bot.store.tables import Suppression
from bot.text import plural

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0
"""How long a changed profiles file must have been left alone to be read at the first look after
the change (otherwise it is read once it looks the same at the next look)."""


@dataclass(frozen=True, slots=True)
class _Signature:
    """One version of the profiles file: when it was last written, its size, its content's hash
    (two saves within one tick of the file system's clock still differ)."""

    mtime_ns: int
    size: int
    digest: bytes


class ProfilesFile:
    """The profiles file as last read successfully; a bad edit keeps the last good version.

    A changed file is read only once it has settled: it looks the same as at the previous look,
    or it was last written ``SETTLE_SECONDS`` ago or more. An editor that truncates the file and
    then writes it, or a copy in progress, is not judged half-written (the admin would be alerted
    about a problem gone a moment later). ``wall`` tells the time of the file system's clock.
    """

    def __init__(
        self,
        path: Path,
        reader: Callable[[Path], Profiles],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.reader = reader
        self.wall = wall
        self.subscribers: tuple[Subscriber, ...] = ()
        self.warnings: tuple[Problem, ...] = ()
        """What the last good version deserves a warning for (a subscriber with no interests)."""
        self._seen: _Signature | None = None
        """The version last read (adopted or rejected)."""
        self._looked: _Signature | None = None
        """The version found at the previous look."""

    def _signature(self) -> _Signature | None:
        try:
            stat = self.path.stat()
            digest = hashlib.blake2b(self.path.read_bytes(), digest_size=16).digest()
        except OSError:
            return None
        return _Signature(stat.st_mtime_ns, stat.st_size, digest)

    def changed(self) -> bool:
        """Whether the file differs from the version last read and has settled since: it is the
        same as at the previous look, or was last written long enough ago."""
        now = self._signature()
        before, self._looked = self._looked, now
        if now == self._seen:
            return False
        if now == before:
            return True
        if now is not None and self.wall() - now.mtime_ns / 1e9 >= SETTLE_SECONDS:
            return True
        log.debug("profiles file changed; it is read once it has settled")
        return False

    @property
    def saved_at(self) -> datetime | None:
        """When the version last read was written (None when it could not be found)."""
        if self._seen is None:
            return None
        return datetime.fromtimestamp(self._seen.mtime_ns / 1e9, UTC)

    def load(self) -> tuple[Subscriber, ...]:
        """Read and validate the file; on error raise ProfileError and keep the last good set."""
        self._seen = self._signature()
        return self._keep(self.reader(self.path))

    async def load_aside(self) -> tuple[Subscriber, ...]:
        """``load``, the file read and validated in a thread of its own: a file of thousands of
        subscribers takes a second or more, and the event loop goes on meanwhile (a stop does
        not wait for it)."""
        self._seen = self._signature()
        return self._keep(await in_thread(self.reader, self.path))

    def _keep(self, profiles: Profiles) -> tuple[Subscriber, ...]:
        self.subscribers, self.warnings = profiles.subscribers, profiles.warnings
        return self.subscribers

    def unsettled(self) -> bool:
        """Whether the file differed from the version last read at the last look (a change
        that is read once it has settled)."""
        return self._looked != self._seen

    def forget(self) -> None:
        """Count the file as changed again (its last version could not be adopted)."""
        self._seen = None


class Notes:
    """What was said of the profiles in use (their warnings, the suppressed listed): a reload
    says again only what is new in the new version, and counts the rest in one line (a file of
    thousands may have as many)."""

    def __init__(self) -> None:
        self._said: set[tuple[str | None, ...]] = set()

    def say(
        self,
        warnings: Iterable[Problem],
        subscribers: Iterable[Subscriber],
        suppressed: Mapping[str, Suppression],
    ) -> None:
        """Say who on the profiles just adopted gets no digest: their ``warnings``, and the
        listed ``subscribers`` whose address is ``suppressed`` (by lower-case address)."""
        said: list[tuple[str | None, ...]] = []

        def new(*key: str | None) -> bool:
            """Whether ``key`` was not said of the profiles in use before (it is now)."""
            said.append(key)
            return key not in self._said

        for warning in warnings:  # its line may move: not part of what it says
            if new(warning.subscriber, warning.field, warning.message):
                log.warning("profiles: %s", warning)
        for subscriber in subscribers:
            found = suppressed.get(subscriber.email.lower())
            if found is not None and new(subscriber.email, "suppressed", found.reason):
                log.info(
                    "profiles: %s is suppressed (%s): listed, but gets no mail",
                    subscriber.email, found.reason,
                )  # fmt: skip
        again = sum(1 for key in said if key in self._said)
        if again:
            log.info(
                "profiles: %s said before still %s (`paperbot profiles check` lists the "
                "warnings)", plural(again, "note"), "applies" if again == 1 else "apply",
            )  # fmt: skip
        self._said = set(said)
