"""Warnings about valid subscribers: settings the file accepts that cannot do what was meant
(no interests at all, a phrase holding a comma, an author written as a family name alone, an
exclude that vetoes a keyword).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.models import Subscriber
from bot.profiles.loading import dotted
from bot.text import name_key, terms_of

NO_INTERESTS = (
    "no keywords, description, authors, categories or liked papers: this subscriber will never "
    "get a digest; add some under interests:"
)


@dataclass(frozen=True, slots=True)
class Note:
    """A warning about a valid subscriber, without its line: the field it names, the path to
    the value it is about (from the subscriber's entry), and what it says. It follows from the
    subscriber alone, so it is kept with them and located again in each version of the file."""

    field: str
    path: tuple[str | int, ...]
    message: str


def phrase_notes(subscriber: Subscriber) -> list[Note]:
    """Keywords, authors and excludes that are valid but cannot do what was meant: a phrase
    holding a comma (two phrases written as one), an author written as a family name alone
    (``_surname_alone``), and an exclude that vetoes every paper a keyword of the same
    subscriber matches."""
    interests, found = subscriber.interests, []

    def note(field: str, index: int, message: str) -> None:
        found.append(Note(f"interests.{field}", ("interests", field, index), message))

    for field in ("keywords", "exclude"):
        for index, phrase in enumerate(getattr(interests, field)):
            if two := _phrases_in_one(phrase, field):
                note(field, index, two)
    for index, author in enumerate(interests.authors):
        if surname := _surname_alone(author):
            note("authors", index, surname)
    keywords = [(k, terms_of(k)) for k in interests.keywords] if interests.exclude else []
    for index, veto in enumerate(interests.exclude):
        terms = terms_of(veto)
        for keyword, words in keywords:
            spans = (words[i : i + len(terms)] for i in range(len(words) - len(terms) + 1))
            if terms and terms in spans:
                note("exclude", index, f"{veto!r} vetoes every paper that holds the keyword "
                     f"{keyword!r}")  # fmt: skip
    return found


def _phrases_in_one(phrase: str, field: str) -> str:
    """What to say of ``phrase`` (in ``field``) when it holds a comma, two phrases written as
    one ("" when it holds none)."""
    parts = [part.strip() for part in phrase.split(",") if part.strip()]
    if len(parts) < 2:
        return ""
    written = ", ".join(map(json.dumps, parts))
    return (f"{phrase!r} is one phrase, commas included: for {len(parts)} phrases write "
            f"{field}: [{written}]")  # fmt: skip


def _surname_alone(author: str) -> str:
    """What to say of an author written as a family name alone, which finds every author of
    that name ("" when it has a given name or an initial, or is written in a script without
    capitals, where a name is one word: "王小明" is a family and a given name)."""
    name = name_key(author)
    if name.initials or name.given or not name.keys:
        return ""
    if not any(c.isupper() or c.islower() for c in author):
        return ""
    return (f"{author!r} names no given name or initial: it finds every author named "
            f"{author.strip()}: add the given name or its initial")  # fmt: skip


def alert_notes(subscriber: Subscriber) -> list[Note]:
    """Alert rules that are valid but cannot do what was meant: a phrase holding a comma (two
    phrases written as one), an author written as a family name alone (every author of that
    name fires it)."""
    found = []
    for number, rule in enumerate(subscriber.alerts):
        said = [  # field, index, message
            ("keywords", i, two)
            for i, phrase in enumerate(rule.keywords)
            if (two := _phrases_in_one(phrase, "keywords"))
        ]
        said += [
            ("authors", i, why) for i, a in enumerate(rule.authors) if (why := _surname_alone(a))
        ]
        for field, index, message in said:
            where = ("alerts", number, field, index)
            found.append(Note(dotted(where), where, message))
    return found
