"""Local send times across time zones and DST transitions (injected instants, no sleeping)."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.models import Subscriber
from bot.schedule import due, due_date, passed_unnamed, send_instant, should_announce


def sub(zone: str, send_at: str, frequency: str = "daily") -> Subscriber:
    return Subscriber.model_validate(
        {"email": "ada@example.org", "timezone": zone, "send_at": send_at, "frequency": frequency}
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "send_at", "day", "instant"),
    [
        # spring forward: 02:30 does not exist; it is read as 03:30 EDT, just after the gap
        ("America/New_York", "02:30", date(2024, 3, 10), utc(2024, 3, 10, 7, 30)),
        # fall back: 01:30 happens twice; the first (EDT) counts
        ("America/New_York", "01:30", date(2024, 11, 3), utc(2024, 11, 3, 5, 30)),
        ("Europe/Berlin", "02:30", date(2024, 3, 31), utc(2024, 3, 31, 1, 30)),
        ("Europe/Berlin", "02:30", date(2024, 10, 27), utc(2024, 10, 27, 0, 30)),
        ("Asia/Kolkata", "09:00", date(2024, 6, 1), utc(2024, 6, 1, 3, 30)),
        # Lord Howe moves its clocks by 30 minutes: 02:00 -> 02:30 on 2024-10-06
        ("Australia/Lord_Howe", "02:15", date(2024, 10, 6), utc(2024, 10, 5, 15, 45)),
        # ...and 02:00 -> 01:30 on 2024-04-07: 01:45 happens twice, first at +11:00
        ("Australia/Lord_Howe", "01:45", date(2024, 4, 7), utc(2024, 4, 6, 14, 45)),
        ("Australia/Lord_Howe", "08:00", date(2024, 7, 1), utc(2024, 6, 30, 21, 30)),
    ],
)
def test_send_instant(zone: str, send_at: str, day: date, instant: datetime) -> None:
    assert send_instant(sub(zone, send_at), day) == instant


def test_spring_forward_gap_is_sent_at_the_first_sweep_after_it() -> None:
    ny = sub("America/New_York", "02:30")
    yesterday = date(2024, 3, 9)
    assert due_date(ny, utc(2024, 3, 10, 6, 59)) == yesterday  # 01:59 EST, before the gap
    assert due_date(ny, utc(2024, 3, 10, 7, 0)) == yesterday  # 03:00 EDT, the gap just ended
    assert due_date(ny, utc(2024, 3, 10, 7, 31)) == date(2024, 3, 10)


@pytest.mark.parametrize(
    ("zone", "send_at", "first", "second"),
    [
        ("America/New_York", "01:30", utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30)),
        ("Europe/Berlin", "02:30", utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30)),
    ],
)
def test_fall_back_repeat_keeps_the_same_date(
    zone: str, send_at: str, first: datetime, second: datetime
) -> None:
    subscriber = sub(zone, send_at)
    day = first.astimezone(subscriber.zone).date()
    assert due([(1, subscriber)], first) == [(1, subscriber, day)]
    # an hour later the same local time comes round again: the same date, so the same ledger
    # key, which the first send has settled
    assert due([(1, subscriber)], second) == [(1, subscriber, day)]


def test_due_uses_the_local_date() -> None:
    kolkata = sub("Asia/Kolkata", "09:00")
    assert due_date(kolkata, utc(2024, 6, 1, 3, 29)) == date(2024, 5, 31)
    assert due_date(kolkata, utc(2024, 6, 1, 3, 30)) == date(2024, 6, 1)
    # 20:00 UTC is already the next day in Kolkata, but before 09:00 there
    assert due_date(kolkata, utc(2024, 6, 1, 20, 0)) == date(2024, 6, 1)
    assert due_date(kolkata, utc(2024, 6, 1, 19, 0)) == date(2024, 6, 1)
    assert due_date(kolkata, utc(2024, 6, 2, 3, 30)) == date(2024, 6, 2)
    # 05:00 in Kolkata is 23:30 UTC the day before: sent then, it is the digest of the local date
    early = sub("Asia/Kolkata", "05:00")
    assert due_date(early, utc(2024, 6, 1, 23, 29)) == date(2024, 6, 1)
    assert due_date(early, utc(2024, 6, 1, 23, 30)) == date(2024, 6, 2)


def test_after_downtime_only_the_latest_digest_is_due() -> None:
    subscriber = sub("UTC", "08:00")
    last = {1: date(2024, 6, 3)}  # the date of the latest digest in the ledger
    assert due([(1, subscriber)], utc(2024, 6, 5, 12), last) == [(1, subscriber, date(2024, 6, 5))]
    # down from 4 June 07:00 to 5 June 07:00: the latest missed digest (4 June) is due at once
    assert due([(1, subscriber)], utc(2024, 6, 5, 7), last) == [(1, subscriber, date(2024, 6, 4))]


@pytest.mark.parametrize("frequency", ["daily", "weekly:mon"])
def test_a_digest_for_a_later_date_covers_the_sends_before_it(frequency: str) -> None:
    """A digest sent ahead of its time (Thursday's before 08:00 on Thursday, or a weekly one on
    a day its frequency does not name) leaves no earlier send to make up; the next one is due."""
    subscriber = sub("UTC", "08:00", frequency)
    thursday = {1: date(2024, 6, 6)}
    assert due([(1, subscriber)], utc(2024, 6, 6, 7), thursday) == []
    assert due([(1, subscriber)], utc(2024, 6, 6, 9), thursday) == []
    following = date(2024, 6, 7) if frequency == "daily" else date(2024, 6, 10)
    at_9 = utc(following.year, following.month, following.day, 9)
    assert due([(1, subscriber)], at_9, thursday) == [(1, subscriber, following)]


def test_a_new_subscriber_waits_for_the_first_send_time() -> None:
    subscriber = sub("UTC", "08:00")
    assert due([(1, subscriber)], utc(2024, 6, 5, 7)) == []
    assert due([(1, subscriber)], utc(2024, 6, 5, 8)) == [(1, subscriber, date(2024, 6, 5))]


def test_todays_send_seen_passing_on_a_day_the_frequency_did_not_name_is_not_made_up() -> None:
    """Weekly on Mondays, seen at noon on Wednesday 5 June; then edited to weekdays."""
    monday = sub("UTC", "08:00", "weekly:mon")
    noon = utc(2024, 6, 5, 12)
    assert passed_unnamed([(1, monday), (2, sub("UTC", "08:00"))], noon) == {1: date(2024, 6, 5)}
    assert passed_unnamed([(1, monday)], utc(2024, 6, 5, 7)) == {}  # not passed yet
    weekdays = sub("UTC", "08:00", "weekdays")
    last = {1: date(2024, 6, 3)}
    unnamed = {1: date(2024, 6, 5)}
    assert due([(1, weekdays)], utc(2024, 6, 5, 12, 30), last, noon, unnamed) == []
    # without such a sweep (a new subscriber, send_at moved earlier) today's send still counts
    assert due([(1, weekdays)], utc(2024, 6, 5, 12, 30), last, noon) == [
        (1, weekdays, date(2024, 6, 5))
    ]
    assert due([(1, weekdays)], utc(2024, 6, 6, 8), last, noon, unnamed) == [
        (1, weekdays, date(2024, 6, 6))
    ]


@pytest.mark.parametrize(
    ("frequency", "weekday_dates"),
    [
        ("weekdays", {date(2024, 6, d) for d in range(3, 8)}),  # Mon to Fri
        ("weekly:wed", {date(2024, 6, 5)}),
        ("daily", {date(2024, 6, d) for d in range(3, 10)}),
    ],
)
def test_frequencies(frequency: str, weekday_dates: set[date]) -> None:
    subscriber = sub("UTC", "08:00", frequency)
    days = [date(2024, 6, n) for n in range(3, 10)]
    due_days = {d for d in days if due_date(subscriber, utc(d.year, d.month, d.day, 9)) == d}
    assert due_days == weekday_dates


def test_a_send_at_the_very_moment_of_the_previous_sweep_was_seen_by_it() -> None:
    """A sweep at 08:00:00 sharp saw Tuesday's 08:00 send pass: were it not made then (the
    frequency named another day), a later edit does not make it up on Wednesday morning."""
    daily = sub("UTC", "08:00")
    last = {1: date(2024, 6, 3)}
    sweep = utc(2024, 6, 4, 8)
    assert due([(1, daily)], utc(2024, 6, 5, 7), last, sweep) == []
    assert due([(1, daily)], utc(2024, 6, 5, 7), last, sweep - timedelta(seconds=1)) == [
        (1, daily, date(2024, 6, 4))
    ]


def test_should_announce() -> None:
    assert should_announce("arxiv:cs.LG", date(2024, 6, 3))
    assert not should_announce("hf", date(2024, 6, 8))
    assert not should_announce("sample", date(2024, 6, 3))


def test_each_time_zone_is_read_once_for_a_roster_across_many_zones() -> None:
    """A sweep asks every subscriber's zone: with more zones in the roster than ``ZoneInfo``
    keeps by itself, each would be read from its file again, subscriber after subscriber."""
    zones = ["Europe/London", "America/New_York", "Asia/Kolkata", "Europe/Berlin", "Asia/Tokyo",
             "America/Los_Angeles", "Australia/Sydney", "America/Sao_Paulo", "Africa/Lagos",
             "Asia/Shanghai", "Pacific/Auckland", "Europe/Madrid"]  # fmt: skip
    first = weakref.ref(sub("Europe/Paris", "08:00").zone)
    for zone in zones:
        sub(zone, "08:00").zone.utcoffset(datetime(2026, 11, 27))
    gc.collect()
    assert first() is sub("Europe/Paris", "08:00").zone
