"""Profiles YAML text -> validated subscribers, with every problem located by line (pure).

The YAML is composed into a node tree first so that each pydantic error can be mapped back to the
line of the offending value. Any problem rejects the whole file: a bad edit never silently drops
anyone.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from bot.errors import Problem, ProfileError
from bot.models import AlertRule, Interests, Subscriber

TOP_LEVEL_KEYS = {"defaults", "subscribers"}
DEFAULT_KEYS = {"timezone", "send_at", "frequency", "max_papers", "min_score", "send_empty"}


@dataclass(frozen=True, slots=True)
class Profiles:
    """A valid profiles file: its subscribers, in file order."""

    source: str
    subscribers: tuple[Subscriber, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps "07:30" a string instead of YAML 1.1's sexagesimal integer."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    """The node at ``key`` inside a mapping or sequence node, or None."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                found: yaml.Node = k if isinstance(v, yaml.ScalarNode) and v.value == "" else v
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        item: yaml.Node = node.value[key]
        return item
    return None


def _node_at(node: yaml.Node | None, path: Sequence[str | int]) -> yaml.Node | None:
    """Walk down ``path``; stop at the deepest node that exists (its line is the best we have)."""
    for key in path:
        child = _child(node, key)
        if child is None:
            return node
        node = child
    return node


def _duplicate_keys(node: yaml.Node, source: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                problems.append(Problem(source, _line(key), None, key.value, "duplicate key"))
            seen.add(key.value)
            problems += _duplicate_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems += _duplicate_keys(item, source)
    return problems


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(
            [Problem(source, line, None, None, f"not valid YAML: {reason}")]
        ) from None
    return root, data


def _shape_problems(root: yaml.Node | None, data: Any, source: str) -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(source, _line(root), None, None, "expected a mapping with 'subscribers:'")]
    problems = [
        Problem(source, _line(_child(root, key)), None, str(key), "unknown key")
        for key in data
        if key not in TOP_LEVEL_KEYS
    ]
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(
            Problem(source, _line(_child(root, "defaults")), None, "defaults", "expected a mapping")
        )
    else:
        node = _child(root, "defaults")
        problems += [
            Problem(
                source,
                _line(_child(node, k)),
                None,
                f"defaults.{k}",
                f"unknown key (allowed: {', '.join(sorted(DEFAULT_KEYS))})",
            )
            for k in defaults
            if k not in DEFAULT_KEYS
        ]
    if not isinstance(data.get("subscribers"), list):
        problems.append(
            Problem(source, _line(root), None, "subscribers", "expected a list of subscribers")
        )
    return problems


def _known_keys() -> set[str]:
    models = (Subscriber, Interests, AlertRule)
    return {name for model in models for name in model.model_fields}


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(_known_keys()), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _validate_one(
    item: Any, defaults: dict[str, Any], node: yaml.Node | None, source: str
) -> tuple[Subscriber | None, list[Problem]]:
    who = str(item.get("email")) if isinstance(item, dict) and item.get("email") else None
    if not isinstance(item, dict):
        return None, [Problem(source, _line(node), who, None, "expected a mapping with 'email:'")]
    try:
        return Subscriber.model_validate({**defaults, **item}), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = [p for p in err["loc"] if isinstance(p, str | int)]
            field = ".".join(str(p) for p in path) or None
            in_item = path and path[0] in item
            line = _line(_node_at(node, path) if in_item or not path else node)
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key" + _suggestion(str(path[-1]))
            elif err["type"] == "missing":
                message = "required"
            problems.append(Problem(source, line, who, field, message))
        return None, problems


def parse_profiles(text: str, source: str = "<profiles>") -> Profiles:
    """Parse and validate a profiles file; raise ProfileError listing every problem found."""
    root, data = _compose(text, source)
    problems = _duplicate_keys(root, source) if root is not None else []
    problems += _shape_problems(root, data, source)
    if not isinstance(data, dict) or not isinstance(data.get("subscribers"), list):
        raise ProfileError(problems)
    defaults = data.get("defaults") or {}
    defaults = (
        {k: v for k, v in defaults.items() if k in DEFAULT_KEYS}
        if isinstance(defaults, dict)
        else {}
    )
    items_node = _child(root, "subscribers")
    subscribers: list[Subscriber] = []
    first_line: dict[str, int | None] = {}
    for index, item in enumerate(data["subscribers"]):
        node = _child(items_node, index)
        subscriber, found = _validate_one(item, defaults, node, source)
        problems += found
        raw = item.get("email") if isinstance(item, dict) else None
        key = (subscriber.email if subscriber else str(raw or "")).strip().lower()
        if key and key in first_line:
            where = f"line {first_line[key]}" if first_line[key] else "earlier"
            line = _line(_child(node, "email"))
            message = f"duplicate subscriber (first at {where})"
            problems.append(Problem(source, line, key, "email", message))
            continue
        first_line[key] = _line(node)
        if subscriber is not None:
            subscribers.append(subscriber)
    if problems:
        raise ProfileError(problems)
    return Profiles(source, tuple(subscribers))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the profiles file, for editors (config/profiles.schema.json)."""
    subscriber = Subscriber.model_json_schema(mode="validation")
    defs = subscriber.pop("$defs", {})
    defaults: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: v for k, v in subscriber["properties"].items() if k in DEFAULT_KEYS},
    }
    subscriber["properties"]["send_at"] = {
        "type": "string",
        "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
        "description": 'Local send time, "HH:MM".',
    }
    defaults["properties"]["send_at"] = subscriber["properties"]["send_at"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "paperbot profiles",
        "type": "object",
        "additionalProperties": False,
        "required": ["subscribers"],
        "properties": {
            "defaults": defaults,
            "subscribers": {"type": "array", "items": {"$ref": "#/$defs/Subscriber"}},
        },
        "$defs": {**defs, "Subscriber": subscriber},
    }


def json_schema_text() -> str:
    """The schema as the file text committed under config/."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
