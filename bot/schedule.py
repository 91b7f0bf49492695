"""When each subscriber's digest is due, in their own time zone (pure: the clock is an argument).

A subscriber's digest for local date D is due once ``now`` has passed ``send_at`` on D in their
zone, on the days their frequency names. Time zone rules decide the odd days:

- a send time that does not exist (spring forward, e.g. 02:30 in New York on 2024-03-10) is
  read with the offset in force before the gap, so it falls just after the gap and is sent at the
  first sweep after it;
- a send time that happens twice (fall back) is due from its first occurrence; the ledger key
  (subscriber, date) makes sure it is sent once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta

from bot.models import Subscriber

ANNOUNCE_WEEKDAYS = {"hf": range(0, 5), "arxiv": range(0, 5)}  # Mon-Fri lists (UTC dates)


def send_instant(subscriber: Subscriber, day: date) -> datetime:
    """The UTC instant of ``send_at`` on local date ``day`` (first occurrence; gaps skip ahead)."""
    local = datetime.combine(day, subscriber.send_at.replace(tzinfo=None), tzinfo=subscriber.zone)
    return local.astimezone(UTC)


def due_date(
    subscriber: Subscriber, now: datetime, catch_up: bool = True, after: datetime | None = None,
    unnamed: date | None = None,
) -> date | None:  # fmt: skip
    """The local date of the latest scheduled send at or before ``now`` (within a week).

    Normally today, once ``send_at`` has passed; after downtime it can be the previous scheduled
    day, so the missed digest goes out at once (only that one: the ledger settles the rest).
    Without ``catch_up`` (a new subscriber) only today counts, and with ``after`` (the previous
    sweep) only earlier sends that fell after it: a send a running worker saw pass without
    making it was not due then (the frequency named another day, or the subscriber was away).
    Today's send counts even so (``send_at`` moved earlier than the time of day, a subscriber
    added since), unless it is ``unnamed``: a sweep saw it pass while their frequency named no
    digest that day (see ``passed_unnamed``), so a frequency edited after it makes up nothing.
    """
    today = now.astimezone(subscriber.zone).date()
    for back in range(8 if catch_up else 1):
        day = today - timedelta(days=back)
        if not subscriber.sends_on(day):
            continue
        instant = send_instant(subscriber, day)
        seen = after is not None and instant <= after  # a sweep saw it pass
        if instant <= now and (not seen or (back == 0 and day != unnamed)):
            return day
    return None


def passed_unnamed(subscribers: Iterable[tuple[int, Subscriber]], now: datetime) -> dict[int, date]:
    """The local date of each subscriber whose ``send_at`` on it has passed at ``now`` while
    their frequency names no digest that day."""
    result = {}
    for sid, subscriber in subscribers:
        today = now.astimezone(subscriber.zone).date()
        if not subscriber.sends_on(today) and send_instant(subscriber, today) <= now:
            result[sid] = today
    return result


def due(
    subscribers: Iterable[tuple[int, Subscriber]],
    now: datetime,
    latest: Mapping[int, date] | None = None,
    after: datetime | None = None,
    unnamed: Mapping[int, date] | None = None,
) -> list[tuple[int, Subscriber, date]]:
    """Subscribers whose digest is due now and not settled yet, with its date.

    ``latest`` is the date of each subscriber's latest digest in the ledger, whatever became of
    it. A subscriber without one is new: their first digest waits for their first send time
    instead of catching up on the day before. A send on or before that date is not due: its
    digest was made, or one for a later date (sent ahead of its time by hand) covers it, as it
    holds every paper since the digest before. ``after`` is when the previous sweep ran, if one
    did, and ``unnamed`` the sends a sweep saw pass on days the frequency did not name (see
    ``due_date``).

    After downtime this yields only the latest missed digest, never one per missed day: it
    carries every paper since the previous digest.
    """
    latest, unnamed = latest or {}, unnamed or {}
    result = []
    for sid, subscriber in subscribers:
        day = due_date(subscriber, now, sid in latest, after, unnamed.get(sid))
        if day is not None and not covered(day, latest.get(sid)):
            result.append((sid, subscriber, day))
    return result


def covered(day: date, latest: date | None) -> bool:
    """Whether a digest for ``day`` is settled by the subscriber's ``latest`` digest date in the
    ledger: made for that date, or for a later one."""
    return latest is not None and day <= latest


def should_announce(source: str, day: date) -> bool:
    """Whether a source normally publishes a list for this (UTC) date; holidays aside."""
    kind = source.split(":", 1)[0]
    weekdays = ANNOUNCE_WEEKDAYS.get(kind)
    return weekdays is not None and day.weekday() in weekdays
