"""Plain data shared by every stage: papers, subscribers, matches, digests.

No I/O happens here. Subscribers are pydantic models because the profiles file is validated into
them (and the editor JSON Schema is generated from them); papers and matches are light dataclasses.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from bot.ids import MAX_ID, paper_id

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCY_PATTERN = r"^(daily|weekdays|weekly:(mon|tue|wed|thu|fri|sat|sun))$"
CATEGORY_PATTERN = r"^[a-zA-Z-]+(\.[a-zA-Z-]+)?$"
EMPTY_EMAIL = "is empty: every subscriber needs an address, e.g. email: ada@example.org"

Phrase = Annotated[str, Field(min_length=1, max_length=200)]


def _arxiv_category(value: object) -> object:
    if isinstance(value, str) and not re.match(CATEGORY_PATTERN, value.strip()):
        raise ValueError(
            f"{value!r} is not an arXiv category: write an archive, a dot and a subject class, "
            "such as cs.LG, math.ST or stat.ML (or an archive alone, such as hep-th)"
        )
    return value


def frequency_meant(value: str) -> str | None:
    """The frequency a misspelt one most likely means ('Weekly: Monday' -> weekly:mon, 'week
    days' -> weekdays, 'mon' or 'Mondays' -> weekly:mon), or None."""
    meant = re.sub(r"^(weekly:\w{3})\w*$", r"\1", re.sub(r"[\s_-]", "", value.lower()))
    if meant == "weekday":
        return "weekdays"
    day = meant.removesuffix("s")
    if len(day) >= 3 and (named := [d for d in DAYS if d.lower().startswith(day)]):
        return f"weekly:{named[0][:3].lower()}"
    return meant if re.match(FREQUENCY_PATTERN, meant) else None


def _known_frequency(value: object) -> object:
    if isinstance(value, str) and not re.match(FREQUENCY_PATTERN, value.strip()):
        meant = frequency_meant(value)
        hint = f" (did you mean {meant}?)" if meant else ""
        raise ValueError(f"{value!r} is not daily, weekdays or weekly:mon … weekly:sun{hint}")
    return value


@lru_cache(maxsize=1024)
def zone_named(name: str) -> ZoneInfo:
    """The time zone of an IANA name, kept: ``ZoneInfo`` itself keeps only the last few used
    strongly, so a roster across a dozen zones would read each zone's file again for every
    subscriber at every sweep. An unknown name raises ``ZoneInfoNotFoundError``."""
    return ZoneInfo(name)


def _known_zone(value: str) -> str:
    try:
        zone_named(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a directory
        meant = _zone_meant(value)
        hint = f"did you mean {meant}?" if meant else "use an IANA name such as Europe/Berlin"
        raise ValueError(f"unknown time zone {value!r} ({hint})") from None
    return value


def _squeezed(name: str) -> str:
    """A zone name as typed loosely: lower case, without '_', '-' or spaces."""
    return re.sub(r"[\s_-]", "", name.lower())


def _zone_meant(value: str) -> str | None:
    """The IANA name a misspelt one most likely means: the same but for case, '_' or spaces
    (america/NewYork), a city alone (london), or a close spelling (Europe/Londn)."""
    names, cities = _zones()
    wanted = _squeezed(value)
    close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.9)
    return names.get(wanted) or cities.get(wanted) or (names[close[0]] if close else None)


@lru_cache(maxsize=1)
def _zones() -> tuple[dict[str, str], dict[str, str]]:
    """Every IANA time zone name by its squeezed spelling, and by its city's where only one
    name ends in that city (an Etc/ name is no city)."""
    names = {_squeezed(name): name for name in sorted(available_timezones())}
    by_city: dict[str, list[str]] = {}
    for name in names.values():
        if "/" in name and not name.startswith("Etc/"):  # Etc/GMT+1 is UTC-1: no guessing
            by_city.setdefault(_squeezed(name.rsplit("/", 1)[1]), []).append(name)
    return names, {city: found[0] for city, found in by_city.items() if len(found) == 1}


SEND_AT_PATTERN = "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"
"""A local time of day, "HH:MM" (seconds may follow)."""


_CLOCK = re.compile(
    r"(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2})(?::(?P<second>\d{2}))?)?\s*"
    r"(?:(?P<half>[ap])\.?m\.?)?",
    re.IGNORECASE,
)
"""A time of day as people write it: 7:30, 18.30, 18h30, 6:45 am, 6pm."""


def send_at_meant(value: str) -> str | None:
    """The 24-hour "HH:MM" a time written otherwise most likely means ('6:45pm' -> 18:45,
    '18.30' -> 18:30, '7:30' -> 07:30), or None."""
    found = _CLOCK.fullmatch(value.strip())
    if found is None or not (found["minute"] or found["half"]):
        return None
    hour, minute, second = (int(found[part] or 0) for part in ("hour", "minute", "second"))
    if found["half"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if found["half"].lower() == "p" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if found["second"] else "")


def _hh_mm(value: object) -> object:
    if not isinstance(value, str | time) or (
        isinstance(value, str) and not re.fullmatch(SEND_AT_PATTERN, value.strip())
    ):
        meant = send_at_meant(value) if isinstance(value, str) else None
        hint = f': write "{meant}"' if meant else ""
        raise ValueError(f'{value!r} is not a time of day "HH:MM" (00:00 to 23:59){hint}')
    return value


def _paper_id(value: object) -> object:
    if isinstance(value, str):
        found = paper_id(value)
        if found is None:
            raise ValueError(
                f"{value!r} is not a paper id: write an arXiv id such as 2401.04088 (a version "
                "or an arxiv.org link is read as the id)"
            )
        return found
    return value


Category = Annotated[str, Field(pattern=CATEGORY_PATTERN), BeforeValidator(_arxiv_category)]
PaperId = Annotated[str, Field(min_length=1, max_length=MAX_ID), BeforeValidator(_paper_id)]
TimeZoneName = Annotated[
    str, Field(description="IANA time zone name, e.g. Europe/London."), AfterValidator(_known_zone)
]
SendAt = Annotated[time, Field(description='Local send time, "HH:MM".'), BeforeValidator(_hh_mm)]
Frequency = Annotated[
    str,
    Field(pattern=FREQUENCY_PATTERN, description="daily | weekdays | weekly:mon … weekly:sun"),
    BeforeValidator(_known_frequency),
]
# Strict: YAML's true/false never pass as numbers, quoted "5" never passes as 5, 1 never as true.
MaxPapers = Annotated[int, Field(strict=True, ge=1, le=100)]
MinScore = Annotated[float, Field(strict=True, ge=0, le=1)] | None
SendEmpty = Annotated[bool, Field(strict=True)]


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper, normalised the same way whatever the source.

    ``id`` is the arXiv id without version when there is one. Optional fields are ``None`` or empty
    when the source does not know them.
    """

    id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    url: str | None = None
    pdf_url: str | None = None
    published: datetime | None = None
    categories: tuple[str, ...] = ()
    upvotes: int | None = None
    source: str = ""
    comments: int | None = None
    hf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    ai_summary: str | None = None
    keywords: tuple[str, ...] = ()


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(x for x in second if x not in first)


def _names(sources: str) -> tuple[str, ...]:
    return tuple(name for name in sources.split(",") if name)


def _most(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def combine_papers(a: Paper, b: Paper) -> Paper:
    """One record from two views of the same paper (two sources, or a fetch and what is stored):
    ``a`` wins where both know a field; categories and sources are joined, counts the larger."""
    return replace(
        a,
        title=a.title or b.title,
        abstract=a.abstract or b.abstract,
        authors=a.authors or b.authors,
        url=a.url or b.url,
        pdf_url=a.pdf_url or b.pdf_url,
        published=a.published or b.published,
        categories=_union(a.categories, b.categories),
        upvotes=_most(a.upvotes, b.upvotes),
        source=",".join(_union(_names(a.source), _names(b.source))),
        comments=_most(a.comments, b.comments),
        hf_url=a.hf_url or b.hf_url,
        code_url=a.code_url or b.code_url,
        project_url=a.project_url or b.project_url,
        ai_summary=a.ai_summary or b.ai_summary,
        keywords=a.keywords or b.keywords,
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def normalized_email(value: str) -> str:
    """A deliverable address in the form subscribers are stored in (an international domain in
    Unicode, as written in the profiles file); ValueError saying what is wrong otherwise."""
    local = value.rpartition("@")[0]
    if not local.isascii():
        odd = "".join(dict.fromkeys(c for c in local if not c.isascii()))
        raise ValueError(
            f"{value!r}: the part before the @ must be plain ASCII ({odd!r} cannot be "
            "delivered: the mail server would need SMTPUTF8); an international domain "
            "after the @ is fine"
        )
    try:
        return validate_email(value, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r}: {exc}") from None


def email_key(value: str) -> str:
    """How addresses are compared: normalised, then lower case, so ``Ada@EXAMPLE.org`` and
    ``ada@example.org`` (or a domain's punycode and Unicode forms) are one address; ValueError
    when ``value`` is not an address."""
    return normalized_email(value.strip()).lower()


def weekly_day(frequency: str) -> str | None:
    """The day a ``weekly:mon`` … frequency names (``Monday``), or None for other frequencies."""
    day = frequency.removeprefix("weekly:")
    return DAYS[WEEKDAYS.index(day)] if day != frequency and day in WEEKDAYS else None


class Interests(_Strict):
    """What a subscriber wants to read about."""

    keywords: list[Phrase] = Field(default_factory=list, description="Phrases to look for.")
    description: str = Field("", max_length=5000, description="Free text, used as a soft query.")
    exclude: list[Phrase] = Field(default_factory=list, description="Phrases that veto a paper.")
    authors: list[Phrase] = Field(default_factory=list, description="Authors to follow.")
    categories: list[Category] = Field(
        default_factory=list, description="arXiv categories, e.g. cs.LG."
    )
    like: list[PaperId] = Field(default_factory=list, description="Ids of papers liked.")

    @property
    def empty(self) -> bool:
        """Whether nothing here can select a paper (``exclude`` only takes papers away)."""
        return not (
            self.keywords or self.description or self.authors or self.categories or self.like
        )

    @property
    def written(self) -> tuple[str, ...]:
        """The text written here that can define an acronym ("mixture of experts (MoE)"), as
        papers do: the description, keywords and excludes."""
        return (self.description, *self.keywords, *self.exclude)


class AlertRule(_Strict):
    """Send an alert at once when a new paper has one of these authors or phrases."""

    name: str | None = Field(None, max_length=80)
    authors: list[Phrase] = Field(default_factory=list)
    keywords: list[Phrase] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_a_trigger(self) -> AlertRule:
        if not self.authors and not self.keywords:
            raise ValueError("an alert needs at least one of 'authors' or 'keywords'")
        return self


class Defaults(_Strict):
    """The ``defaults:`` block: what every subscriber gets unless they set their own."""

    timezone: TimeZoneName = "UTC"
    send_at: SendAt = time(8, 0)
    frequency: Frequency = "daily"
    max_papers: MaxPapers = 10
    min_score: MinScore = None
    send_empty: SendEmpty = False


class Subscriber(_Strict):
    """One subscriber as the profiles file describes them (defaults already applied)."""

    email: str = Field(description="Where digests go.")
    name: str | None = Field(None, max_length=200)
    timezone: TimeZoneName = "UTC"
    send_at: SendAt = time(8, 0)
    frequency: Frequency = "daily"
    max_papers: MaxPapers = 10
    min_score: MinScore = None
    send_empty: SendEmpty = False
    interests: Interests = Field(default_factory=Interests)
    alerts: list[AlertRule] = Field(default_factory=list)

    @field_validator("email", mode="before")
    @classmethod
    def _email_given(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(EMPTY_EMAIL)
        return value

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        return normalized_email(value)

    @field_validator("name")
    @classmethod
    def _one_line_name(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\r\n]", value):
            raise ValueError("must be a single line")
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The subscriber's time zone."""
        return zone_named(self.timezone)

    def sends_on(self, day: date) -> bool:
        """Whether ``frequency`` calls for a digest on this local date."""
        if self.frequency == "daily":
            return True
        if self.frequency == "weekdays":
            return day.weekday() < 5
        return DAYS[day.weekday()] == weekly_day(self.frequency)

    def previous_due(self, day: date) -> date:
        """The last date before ``day`` that ``frequency`` calls for a digest on."""
        return next(
            earlier
            for earlier in (day - timedelta(days=n) for n in range(1, 8))
            if self.sends_on(earlier)
        )

    def not_due_on(self, day: date) -> str | None:
        """How ``frequency`` reads when it calls for no digest on this local date (``weekly on
        Mondays``, ``weekdays only``), or None when it does."""
        if self.sends_on(day):
            return None
        if self.frequency == "weekdays":
            return "weekdays only"
        return f"weekly on {weekly_day(self.frequency)}s"


@dataclass(frozen=True, slots=True)
class Match:
    """A paper scored for one subscriber, with the reasons shown to them.

    ``snippet`` is the sentence(s) to show; ``marks`` are (start, end) character spans of matched
    terms inside it.
    """

    paper: Paper
    score: float
    reasons: tuple[str, ...] = ()
    snippet: str = ""
    marks: tuple[tuple[int, int], ...] = ()


DigestKind = Literal["digest", "alert", "empty"]


@dataclass(frozen=True, slots=True)
class Digest:
    """What one subscriber receives for one date: the picks, and what matched but did not fit.

    ``earlier`` counts the papers of its lists that reached the subscriber before it (in an
    alert), so a "nothing matched" note does not say that nothing did. ``unlisted`` counts the
    further matches left out of ``more`` because no message lists them (see
    ``bot.render.listed_only``). ``rules`` names, in an alert, the rules that fired on each
    paper of ``matches`` and then of ``more``: the email lists it under the first of them.
    """

    subscriber: Subscriber
    date: date
    matches: tuple[Match, ...]
    more: tuple[Paper, ...] = ()
    kind: DigestKind = "digest"
    topics: tuple[str, ...] = field(default=())
    earlier: int = 0
    unlisted: int = 0
    rules: tuple[tuple[str, ...], ...] = ()

    @property
    def more_count(self) -> int:
        """How many papers matched but did not fit."""
        return len(self.more) + self.unlisted
