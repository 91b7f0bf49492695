"""What a file writes twice: a key in one mapping (YAML would silently keep only the last),
and a subscriber written again as an alias of an entry above.
"""

from __future__ import annotations

import yaml

from bot.errors import Problem
from bot.profiles.loading import Loader, dotted, email_before, line_of


def repeated_items(items: yaml.Node | None, text: str) -> dict[int, tuple[int, int]]:
    """The subscribers written as an alias of an entry above (``- *name``), by index: the
    alias's line and the entry's. YAML gives an alias the very node it names, so the alias's
    own line is found again in the parse events (only when there is one)."""
    if not isinstance(items, yaml.SequenceNode):
        return {}
    first: dict[int, int] = {}
    repeats = [i for i, node in enumerate(items.value) if first.setdefault(id(node), i) != i]
    if not repeats:
        return {}
    lines = _item_lines(text, items.start_mark)
    return {i: (lines[i], items.value[i].start_mark.line + 1) for i in repeats if i in lines}


def _item_lines(text: str, start: yaml.Mark) -> dict[int, int]:
    """The line of each item of the sequence that starts at ``start``."""
    lines: dict[int, int] = {}
    depth: int | None = None
    for event in yaml.parse(text, Loader=Loader):
        mark = event.start_mark
        assert mark is not None, "the parser marks every event"
        if depth is None:
            at = (mark.line, mark.column)
            if isinstance(event, yaml.SequenceStartEvent) and at == (start.line, start.column):
                depth = 0
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            if depth == 0:
                break
            depth -= 1
            continue
        if depth == 0:
            lines[len(lines)] = mark.line + 1
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
    return lines


def duplicate_keys(root: yaml.Node, source: str) -> list[Problem]:
    """Every key written twice in one mapping (YAML would silently keep only the last). A list
    or mapping an alias names again is the very node written at its anchor: it is walked there
    only, its repeated keys said once (and a list shared by thousands of subscribers read
    once)."""
    problems: list[Problem] = []
    walked: set[yaml.Node] = set()

    def walk(node: yaml.Node, path: tuple[str | int, ...], who: str | None) -> None:
        if isinstance(node, yaml.ScalarNode) or node in walked:
            return
        walked.add(node)
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                if path == ("subscribers",):
                    who = email_before(item) or f"#{index + 1}"
                walk(item, (*path, index), who)
            return
        in_subscriber = len(path) == 2 and path[0] == "subscribers"
        first: dict[str, yaml.Node] = {}
        merged = False  # a second subscriber run into this one: the rest repeats because of it
        latest = above = None  # the last email written so far; the one at the first 'email:'
        for key, value in node.value:
            if key.start_mark.line < node.start_mark.line:
                continue  # merged in from an anchor above ('<<: *name'): its own keys may repeat
            name = str(key.value)
            here = (*path, name)
            if in_subscriber:  # two subscribers may have run together: name the one above
                written = str(value.value).strip() if isinstance(value, yaml.ScalarNode) else ""
                latest = written if name == "email" and written else latest
                who = latest or who
            if name not in first:
                first[name] = key
                above = latest if name == "email" else above
            elif in_subscriber and name == "email" and not merged:
                merged = True
                above = above or who
                message = (
                    f"a second 'email:' inside subscriber {above} (line {line_of(first[name])}): "
                    "looks like the '- ' before this subscriber is missing; write "
                    f"'- email: {value.value}', its '-' lined up with the other subscribers'"
                )
                named = value.value if isinstance(value, yaml.ScalarNode) and value.value else who
                problems.append(Problem(source, line_of(key), named, name, message))
            elif not merged:
                section = "defaults" if path == ("defaults",) else None
                # the field as the subscriber (or the defaults block) sees it
                field = here[1:] if section else here[2:] if who else here
                message = f"duplicate key (first at line {line_of(first[name])}): keep only one"
                problems.append(
                    Problem(source, line_of(key), who, dotted(field), message, section=section)
                )
            walk(value, here, who)

    walk(root, (), None)
    return problems
