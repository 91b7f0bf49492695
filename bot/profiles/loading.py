"""Reading a profiles file's YAML into a node tree that keeps the line of each value, and
finding a value's node (and so its line) again from its path in the data.

Two loaders read it alike: libyaml's where PyYAML has it, for speed, and the pure-Python one,
whose syntax errors say more. Both keep "07:30" text, and report a value that its tag cannot
be built from as a YAML error at its line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml


class _Located:
    """A value its tag cannot be built from (``!!timestamp never``, ``!!bool maybe``, an empty
    ``!!int``) is a YAML error at its line, as a syntax error is, rather than whatever PyYAML's
    constructor raises (a KeyError or an IndexError among others)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except (ValueError, TypeError, AttributeError, OverflowError, LookupError):
            kind, value = node.tag.rsplit(":", 1)[-1], node.value
            what = repr(value) if isinstance(value, str) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {kind}", node.start_mark
            ) from None


class Loader(_Located, yaml.SafeLoader):
    """SafeLoader that keeps "07:30" a string instead of YAML 1.1's sexagesimal integer."""


class FastLoader(_Located, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same, parsing with libyaml where PyYAML has it (a large file reads ten times faster;
    the pure-Python parser still words the syntax errors)."""


for _loader in (Loader, FastLoader):
    _loader.yaml_implicit_resolvers = {
        key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
    )


def parse_yaml(text: str, kind: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    loader = kind(text)
    try:
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


def line_of(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def key_node(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    """The key node ``key`` of a mapping node, or None; of a key written twice, the last (the
    one whose value YAML keeps)."""
    if isinstance(node, yaml.MappingNode):
        for k, _ in reversed(node.value):
            if k.value == key:
                found: yaml.Node = k
                return found
    return None


def child_node(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    """The node at ``key`` inside a mapping (the last of a key written twice, as YAML keeps
    that value) or a sequence node, or None."""
    if isinstance(node, yaml.MappingNode):
        for k, v in reversed(node.value):
            if k.value == key:
                found: yaml.Node = k if isinstance(v, yaml.ScalarNode) and v.value == "" else v
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        item: yaml.Node = node.value[key]
        return item
    return None


def node_at(node: yaml.Node | None, path: Sequence[str | int]) -> yaml.Node | None:
    """Walk down ``path``; stop at the deepest node that exists (its line is the best we have)."""
    for key in path:
        child = child_node(node, key)
        if child is None:
            return node
        node = child
    return node


def dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def email_before(node: yaml.Node | None, line: int | None = None) -> str | None:
    """The last ``email:`` of a subscriber's mapping at or above ``line`` (anywhere when None):
    the subscriber a line belongs to even when two subscribers ran together (a missing ``- ``)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            written = str(value.value).strip() if isinstance(value, yaml.ScalarNode) else ""
            above = line is None or (line_of(key) or 0) <= line
            if key.value == "email" and above and written:
                found = written
    return found
