"""A valid YAML file whose values do not make valid profiles, said in plain words: the file's
own shape (its top-level keys, the defaults, the list of subscribers) and pydantic's errors
about each subscriber or the defaults, each located by line and said as what to write instead.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Sequence
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.errors import Problem
from bot.models import AlertRule, Interests, Subscriber
from bot.profiles.loading import child_node, dotted, email_before, key_node, line_of, node_at
from bot.profiles.schema import DEFAULT_KEYS, INTEREST_KEYS, TOP_LEVEL_KEYS

EXAMPLES = {"max_papers": "10", "min_score": "0.3", "send_empty": "true"}
NAMED = {"timezone": "Europe/London", "frequency": "daily"}
"""Fields that take one of a set of names: quoting a number there would not make it valid."""
SETTINGS = {"interests": INTEREST_KEYS, "alerts": tuple(AlertRule.model_fields)}
"""The keys of the blocks of settings inside a subscriber's, by the field that holds them."""
ALIASES = {"phrases": "keywords", "phrase": "keywords", "terms": "keywords", "topics": "keywords"}
"""Keys written for another, by the meaning rather than the spelling."""


def _closest(key: str, candidates: Collection[str]) -> str | None:
    if ALIASES.get(key.lower()) in candidates:
        return ALIASES[key.lower()]
    close = difflib.get_close_matches(key, sorted(candidates), n=1)
    return close[0] if close else None


def _suggestion(key: str, candidates: Collection[str]) -> str:
    close = _closest(key, candidates)
    return f" (did you mean '{close}'?)" if close else ""


def _unknown_key(path: Sequence[str | int]) -> str:
    """What to say about a key the model does not know, given where it is."""
    key, parent = str(path[-1]), [p for p in path[:-1] if isinstance(p, str)]
    if not parent:
        if key in INTEREST_KEYS:
            return f"unknown key: '{key}' belongs under interests: (indent it below 'interests:')"
        return "unknown key" + _suggestion(key, Subscriber.model_fields)
    if parent == ["interests"]:
        if key in Subscriber.model_fields:
            return (
                f"unknown key: '{key}' is a subscriber setting, not an interest "
                "(move it out of interests:, level with 'email:')"
            )
        return "unknown key" + _suggestion(key, Interests.model_fields)
    if parent == ["alerts"]:
        return "unknown key" + _suggestion(key, AlertRule.model_fields)
    return "unknown key"


def _example(key: str, path: Sequence[str | int], value: str) -> str:
    """``key: value`` as it should be written (a list item in brackets)."""
    return f"{key}: [{value}]" if path and isinstance(path[-1], int) else f"{key}: {value}"


def _message(err: ErrorDetails, node: yaml.Node | None) -> str:
    """A message that says what is wrong and how to write it instead."""
    kind, value = err["type"], err.get("input")
    path = [p for p in err["loc"] if isinstance(p, str | int)]
    key = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
    raw = node.value if isinstance(node, yaml.ScalarNode) and node.value else None
    typed = "a boolean (true/false)" if isinstance(value, bool) else "a number"
    if kind == "missing":
        return "required" + (": every subscriber needs an address" if path == ["email"] else "")
    if value is None and kind.endswith("_type"):
        return "is empty: give a value or remove the line"
    if kind == "string_type" and isinstance(value, bool | int | float) and key in NAMED:
        return f"YAML reads {raw or value} as {typed}: write a name, e.g. {key}: {NAMED[key]}"
    if kind == "string_type" and isinstance(value, bool | int | float) and raw:
        return (
            f"YAML reads {raw} as {typed}, not as text: put it in quotes, "
            f"e.g. {_example(key, path, json.dumps(raw))}"
        )
    if kind in ("int_type", "float_type") and isinstance(value, str):
        shown = value.strip() if re.fullmatch(r"\s*[-+]?\d+(\.\d*)?\s*", value) else EXAMPLES[key]
        return f"{value!r} is text: write a number without quotes, e.g. {key}: {shown}"
    if kind in ("int_type", "float_type") and isinstance(value, bool):
        return (
            f"YAML reads {raw or value} as a boolean (true/false), not a number: "
            f"write a number, e.g. {key}: {EXAMPLES[key]}"
        )
    if kind in ("less_than_equal", "greater_than_equal") and "ctx" in err:
        bound = err["ctx"]["le" if kind == "less_than_equal" else "ge"]
        word = "at most" if kind == "less_than_equal" else "at least"
        shown = f"{bound:g}" if isinstance(bound, int | float) else bound
        return f"must be {word} {shown} (found {value!r})"
    if kind == "int_type":
        return f"{value!r} is not a whole number: write one, e.g. {key}: {EXAMPLES[key]}"
    if kind == "bool_type":
        shown = repr(value) if isinstance(value, str) else raw or repr(value)
        return f"{shown} is not true or false: write {key}: true or {key}: false"
    if kind == "list_type" and path == ["alerts"]:
        return "expected a list of rules: write each below alerts: as '- authors: [...]'"
    if kind == "list_type":
        text = value if isinstance(value, str) else raw or "..."
        items = [part.strip() for part in text.split(",") if part.strip()] or [text]
        return f"expected a list: write {key}: [{', '.join(map(json.dumps, items))}]"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        fields = SETTINGS.get(str(path[0]), ()) if path else ()
        return f"expected settings indented below '{key}:', one per line" + text_hint(value, fields)
    if kind == "string_type" and isinstance(value, list | dict):
        return _not_text(key, path, value, node)
    if kind == "string_too_short":
        listed = path and isinstance(path[-1], int)
        return "is empty: " + (
            "remove it from the list" if listed else "give a value or remove the line"
        )
    if kind == "string_too_long" and isinstance(value, str) and "ctx" in err:
        limit = err["ctx"]["max_length"]
        return f"is {len(value)} characters long, more than the {limit} allowed: shorten it"
    return str(err["msg"]).removeprefix("Value error, ")


def _not_text(key: str, path: Sequence[str | int], value: Any, node: yaml.Node | None) -> str:
    """What to say of a list, or settings, written where text belongs."""
    if isinstance(value, list) and key == "email":
        return "expected one address, not a list: give each subscriber their own '- email:' entry"
    if isinstance(value, list) and path and isinstance(path[-1], int):
        items = ", ".join(json.dumps(str(v)) for v in value if isinstance(v, str | int | float))
        return f"a list inside the list: write the items in one '[...]', e.g. {key}: [{items}]"
    if isinstance(value, list):
        return "expected one value, not a list: write it without '[...]'" + (
            f", e.g. {key}: {NAMED[key]}" if key in NAMED else ""
        )
    pairs = node.value if isinstance(node, yaml.MappingNode) and node.flow_style else []
    written = ", ".join(f"{k.value}: {v.value}" for k, v in pairs if isinstance(v, yaml.ScalarNode))
    if not written:  # settings below the key: a value's own line indented too far, say
        return f"expected text, not settings: write the value on the line of '{key}:'"
    return (
        f"YAML reads {written} as 'key: value' settings, not as text: put it in quotes, "
        f"e.g. {_example(key, path, json.dumps(written))}"
    )


def text_hint(value: Any, fields: Collection[str]) -> str:
    """How to write as settings text that YAML read instead: a key without its ':'
    ('keywords [x]'), or an address alone ('- ada@example.org')."""
    written = value.strip() if isinstance(value, str) else ""
    first, _, rest = written.partition(" ")
    if first in fields and rest:
        return f": add ':' after '{first}'"
    if "email" in fields and re.fullmatch(r"[^\s@]+@[^\s@]+", written):
        return f": write '- email: {written}'"
    return ""


def validation_problems(
    exc: ValidationError,
    node: yaml.Node | None,
    source: str,
    who: str | None = None,
    section: str | None = None,
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = [p for p in err["loc"] if isinstance(p, str | int)]
        if err["type"] == "extra_forbidden":
            key = key_node(node_at(node, path[:-1]), path[-1])
            line, message = line_of(key or node_at(node, path)), _unknown_key(path)
        else:
            at = node_at(node, path)
            line, message = line_of(at), _message(err, at)
        field = dotted(path) or None
        named = email_before(node, line) if who and line else None
        problems.append(Problem(source, line, named or who, field, message, section=section))
    return problems


def shape_problems(root: yaml.Node | None, data: Any, source: str) -> list[Problem]:
    if not isinstance(data, dict):
        message = "expected a mapping with 'subscribers:' (a list, each entry starting '- email:')"
        if data is None:  # nothing but comments and blank lines (an editor caught mid-save?)
            message = "the file is empty: " + message
        return [Problem(source, line_of(root), None, None, message)]
    problems = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            line = line_of(key_node(root, key))
            hint = _suggestion(str(key), TOP_LEVEL_KEYS)
            problems.append(Problem(source, line, None, str(key), "unknown key" + hint))
    defaults, node = data.get("defaults"), child_node(root, "defaults")
    if defaults is not None and not isinstance(defaults, dict):
        message = "expected settings indented below 'defaults:', such as timezone: UTC"
        problems.append(Problem(source, line_of(node), None, None, message, section="defaults"))
    elif defaults:
        allowed = f"(allowed: {', '.join(sorted(DEFAULT_KEYS))})"
        problems += [
            Problem(
                source,
                line_of(key_node(node, k)),
                None,
                str(k),
                f"unknown key{_suggestion(str(k), DEFAULT_KEYS)} {allowed}",
                section="defaults",
            )
            for k in defaults
            if k not in DEFAULT_KEYS
        ]
    subscribers = data.get("subscribers")
    if "subscribers" not in data:
        if not any(_closest(str(key), TOP_LEVEL_KEYS) == "subscribers" for key in data):
            message = "required: add 'subscribers:' and below it one '- email: ...' per subscriber"
            problems.append(Problem(source, line_of(root), None, "subscribers", message))
    elif not isinstance(subscribers, list):
        message = "expected a list of subscribers, each entry starting '- email:'"
        if subscribers is None:
            message = "is empty: below it, write one '- email: ...' entry per subscriber"
        line = line_of(child_node(root, "subscribers"))
        problems.append(Problem(source, line, None, "subscribers", message))
    return problems


def _sunk_subscriber(
    node: yaml.Node | None, path: tuple[str | int, ...] = ()
) -> tuple[tuple[str | int, ...], yaml.Node] | None:
    """A list item holding an ``email:`` inside a subscriber's settings (in alerts:, say): the
    next subscriber, indented so far that YAML reads it as part of this one. Its path and node."""
    children: list[tuple[str | int, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [(str(k.value), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    for key, child in children:
        here = (*path, key)
        if isinstance(key, int) and key_node(child, "email") is not None:
            return here, child
        if (found := _sunk_subscriber(child, here)) is not None:
            return found
    return None


def one_for_a_sunk_subscriber(
    problems: list[Problem], node: yaml.Node | None, source: str, who: str, column: int
) -> list[Problem]:
    """The problems of a subscriber, with those of a subscriber indented into it (one per key it
    has, each unknown there) said once: where it is, and where its '-' belongs (``column``)."""
    sunk = _sunk_subscriber(node)
    if sunk is None:
        return problems
    path, item = sunk
    field = dotted(path)
    kept = [p for p in problems if p.field != field and not (p.field or "").startswith(field + ".")]
    if len(kept) == len(problems):
        return problems
    message = (
        f"looks like subscriber {email_before(item)} is indented too far: move its '-' to "
        f"column {column + 1} (level with the other subscribers)"
    )
    return [*kept, Problem(source, line_of(item), who, field, message)]
