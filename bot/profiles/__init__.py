"""Profiles YAML text -> validated subscribers, with every problem located by line (pure).

The YAML is composed into a node tree first so that each pydantic error can be mapped back to the
line of the offending value. Any problem rejects the whole file: a bad edit never silently drops
anyone. Problems that do not make the file wrong but make a subscriber useless (no interests) come
back as warnings.

This module reads a file through its parts, validates each subscriber and gathers what they find:

    loading    YAML -> a node tree that keeps lines; a value's node found again by its path
    syntax     a YAML syntax error said in plain words
    bounds     a file nested too deeply, or expanded too far by its aliases
    repeats    keys and subscribers written twice
    schema     the keys of the file, and its JSON Schema for editors
    messages   the file's shape and pydantic's errors said in plain words
    notes      warnings about valid subscribers
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from bot.collector import paused_collector
from bot.errors import Problem, ProfileError
from bot.models import Defaults, Subscriber
from bot.profiles.bounds import ALIAS, beyond_bounds
from bot.profiles.loading import (
    FastLoader,
    Loader,
    child_node,
    key_node,
    line_of,
    node_at,
    parse_yaml,
)
from bot.profiles.messages import (
    one_for_a_sunk_subscriber,
    shape_problems,
    text_hint,
    validation_problems,
)
from bot.profiles.notes import NO_INTERESTS, Note, alert_notes, phrase_notes
from bot.profiles.repeats import duplicate_keys, repeated_items
from bot.profiles.schema import DEFAULT_KEYS, json_schema, json_schema_text
from bot.profiles.syntax import syntax_problem

__all__ = ["Profiles", "json_schema", "json_schema_text", "parse_profiles"]


@dataclass(frozen=True, slots=True)
class Profiles:
    """A valid profiles file: its subscribers, in file order, and what deserves a warning."""

    source: str
    subscribers: tuple[Subscriber, ...]
    warnings: tuple[Problem, ...] = ()


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for lines) and the data built from it, parsed once. A file with aliases
    is read again, as events, to judge how far they expand it before anything visits its nodes
    once for each reference (``beyond_bounds``)."""
    kind: type[yaml.SafeLoader] = FastLoader
    try:
        parsed = parse_yaml(text, kind)
    except yaml.YAMLError:
        kind = Loader
        try:
            parsed = parse_yaml(text, kind)
        except yaml.YAMLError as exc:
            raise ProfileError([syntax_problem(text, exc, source)]) from None
    if ALIAS.search(text) and (problem := beyond_bounds(text, source, kind)) is not None:
        raise ProfileError([problem])
    return parsed


def _valid_defaults(
    data: Any, root: yaml.Node | None, source: str
) -> tuple[dict[str, Any], list[Problem]]:
    """The values of ``defaults:`` that are valid, and a problem for each that is not."""
    defaults = data.get("defaults") if isinstance(data, dict) else None
    if not isinstance(defaults, dict):
        return {}, []
    known = {k: v for k, v in defaults.items() if k in DEFAULT_KEYS}
    try:
        Defaults.model_validate(known)
    except ValidationError as exc:
        problems = validation_problems(
            exc, child_node(root, "defaults"), source, section="defaults"
        )
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
        return {k: v for k, v in known.items() if k not in bad}, problems
    return known, []


def _who(item: Any, index: int) -> str:
    """How to name a subscriber: their address, else their place in the list (and name)."""
    email = item.get("email") if isinstance(item, dict) else None
    if isinstance(email, str | int | float) and str(email).strip():
        return str(email).strip()
    name = item.get("name") if isinstance(item, dict) else None
    return (
        f"#{index + 1} ({name.strip()})"
        if isinstance(name, str) and name.strip()
        else f"#{index + 1}"
    )


_Valid = tuple[Subscriber, tuple[Note, ...]]
"""A subscriber and the notes about them."""


class _Validated:
    """The subscribers of the file parsed last, by their settings exactly as written (defaults
    applied), with the notes about them: a reload after an edit to a file of thousands validates
    again only the entries that changed. The key is ``repr``, which tells apart what equality
    does not (1, 1.0 and true; "1" and 1). Only what is valid is kept: a problem is worded from
    the text and lines of the file, so it is found afresh each time."""

    def __init__(self) -> None:
        self.last: dict[str, _Valid] = {}

    def of(self, settings: dict[str, Any], seen: dict[str, _Valid]) -> _Valid:
        """The subscriber ``settings`` describe and the notes about them, recorded in ``seen``
        (what this parse found valid); ValidationError when they are not valid."""
        key = repr(settings)
        valid = seen.get(key) or self.last.get(key)
        if valid is None:
            subscriber = Subscriber.model_validate(settings)
            valid = subscriber, (*phrase_notes(subscriber), *alert_notes(subscriber))
        seen[key] = valid
        return valid


_VALIDATED = _Validated()


def _validate_one(
    item: Any,
    index: int,
    defaults: dict[str, Any],
    node: yaml.Node | None,
    source: str,
    column: int,
    seen: dict[str, _Valid],
) -> tuple[_Valid | None, list[Problem]]:
    """A subscriber and the notes about them, or their problems; ``column`` is that of the
    subscribers' '-' (0-based); ``seen`` collects what this parse found valid."""
    who = _who(item, index)
    if not isinstance(item, dict):
        message = "expected a subscriber's settings, starting with 'email:'"
        message += text_hint(item, Subscriber.model_fields)
        return None, [Problem(source, line_of(node), who, None, message)]
    try:
        return _VALIDATED.of({**defaults, **item}, seen), []
    except ValidationError as exc:
        problems = validation_problems(exc, node, source, who)
        return None, one_for_a_sunk_subscriber(problems, node, source, who, column)


def parse_profiles(text: str, source: str = "<profiles>") -> Profiles:
    """Parse and validate a profiles file; raise ProfileError listing every problem found.

    The node tree of a file of thousands of subscribers is millions of objects without cycles,
    which the collector would walk again and again as they are made (more than half the time of
    a parse): it is paused meanwhile (``paused_collector``).

    A file nested so deeply that reading it (PyYAML's composer, or a step after it) exhausts
    Python's recursion is one problem, located where it goes too deep (``beyond_bounds``); any
    other RecursionError is raised as it is."""
    text = text.removeprefix("\ufeff")  # a byte order mark, as some Windows editors write
    with paused_collector():
        try:
            return _parse_profiles(text, source)
        except RecursionError:
            problem = beyond_bounds(text, source)
            if problem is None:
                raise
            raise ProfileError([problem]) from None


def _parse_profiles(text: str, source: str) -> Profiles:
    root, data = _compose(text, source)
    problems = duplicate_keys(root, source) if root is not None else []
    problems += shape_problems(root, data, source)
    defaults, found = _valid_defaults(data, root, source)
    problems += found
    if not isinstance(data, dict) or not isinstance(data.get("subscribers"), list):
        raise ProfileError(sorted(problems, key=lambda p: p.line or 0))
    items_node = child_node(root, "subscribers")
    column = items_node.start_mark.column if items_node is not None else 0
    subscribers: list[Subscriber] = []
    warnings: list[Problem] = []
    first_line: dict[str, int | None] = {}
    seen: dict[str, _Valid] = {}
    repeated = repeated_items(items_node, text)
    for index, item in enumerate(data["subscribers"]):
        node = child_node(items_node, index)
        if index in repeated:  # "- *name": an entry above, written again
            alias, entry = repeated[index]
            message = f"duplicate subscriber (the entry at line {entry}, repeated by an alias)"
            problems.append(Problem(source, alias, _who(item, index), "email", message))
            continue
        valid, found = _validate_one(item, index, defaults, node, source, column, seen)
        problems += found
        raw = item.get("email") if isinstance(item, dict) else None
        key = (valid[0].email if valid else str(raw or "")).strip().lower()
        if key and key in first_line:
            where = f"line {first_line[key]}" if first_line[key] else "earlier"
            line = line_of(child_node(node, "email"))
            message = f"duplicate subscriber (first at {where})"
            problems.append(Problem(source, line, key, "email", message))
            continue
        first_line[key] = line_of(node)
        if valid is not None:
            subscriber, notes = valid
            subscribers.append(subscriber)
            if subscriber.interests.empty:
                line = line_of(key_node(node, "interests") or node)
                message = NO_INTERESTS + (
                    " (their alerts still apply)" if subscriber.alerts else ""
                )
                warnings.append(Problem(source, line, subscriber.email, "interests", message))
            warnings += [
                Problem(
                    source, line_of(node_at(node, n.path)), subscriber.email, n.field, n.message
                )
                for n in notes
            ]
    _VALIDATED.last = seen
    if problems:
        raise ProfileError(sorted(problems, key=lambda p: p.line or 0))
    if not subscribers:
        message = "the list is empty: nobody gets mail (every subscriber stored is deactivated)"
        warnings.append(Problem(source, line_of(items_node), None, "subscribers", message))
    return Profiles(source, tuple(subscribers), tuple(sorted(warnings, key=lambda p: p.line or 0)))
