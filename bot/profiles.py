"""Profiles YAML text -> validated subscribers, with every problem located by line (pure).

The YAML is composed into a node tree first so that each pydantic error can be mapped back to the
line of the offending value. Any problem rejects the whole file: a bad edit never silently drops
anyone. Problems that do not make the file wrong but make a subscriber useless (no interests) come
back as warnings.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.collector import paused_collector
from bot.errors import Problem, ProfileError
from bot.models import (
    SEND_AT_PATTERN,
    AlertRule,
    Defaults,
    Interests,
    Subscriber,
    frequency_meant,
)
from bot.text import name_key, terms_of

TOP_LEVEL_KEYS = ("defaults", "subscribers")
DEFAULT_KEYS = tuple(Defaults.model_fields)
INTEREST_KEYS = tuple(Interests.model_fields)
EXAMPLES = {"max_papers": "10", "min_score": "0.3", "send_empty": "true"}
NAMED = {"timezone": "Europe/London", "frequency": "daily"}
"""Fields that take one of a set of names: quoting a number there would not make it valid."""
SETTINGS = {"interests": INTEREST_KEYS, "alerts": tuple(AlertRule.model_fields)}
"""The keys of the blocks of settings inside a subscriber's, by the field that holds them."""
ALIASES = {"phrases": "keywords", "phrase": "keywords", "terms": "keywords", "topics": "keywords"}
"""Keys written for another, by the meaning rather than the spelling."""
YAML_HINTS = {
    "mapping values are not allowed here": "a value that contains ': ' must be in quotes",
    "found character '\\t' that cannot start any token": "indent with spaces, not tabs",
}
DEEPEST = 100
"""Lists and mappings one inside another: a file nested far deeper than a profiles file needs (a
few), as by thousands of '[', exhausts Python's recursion when it is read, and is reported at
the place where it passes this many."""
EXPANSION = 100
"""How many times the values written in a file (each list, mapping and single value, an alias
counted as one) its aliases may expand it to, read through them. A list shared by many
subscribers through an alias is read once for each of them, a few times the file at most;
aliases of lists of aliases ("billion laughs": lines each a list of ten aliases of the line
above) expand eight lines to a hundred million values, half a minute to check, and nine lines
to hours. A file beyond it is reported at the alias where its expansion passes it."""
EXPANDED = 100_000
"""Values any file's aliases may expand it to, however few it has written (a list of a hundred
keywords shared by a thousand subscribers)."""
NO_INTERESTS = (
    "no keywords, description, authors, categories or liked papers: this subscriber will never "
    "get a digest; add some under interests:"
)


@dataclass(frozen=True, slots=True)
class Profiles:
    """A valid profiles file: its subscribers, in file order, and what deserves a warning."""

    source: str
    subscribers: tuple[Subscriber, ...]
    warnings: tuple[Problem, ...] = ()


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


class _Loader(_Located, yaml.SafeLoader):
    """SafeLoader that keeps "07:30" a string instead of YAML 1.1's sexagesimal integer."""


class _FastLoader(_Located, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same, parsing with libyaml where PyYAML has it (a large file reads ten times faster;
    the pure-Python parser still words the syntax errors)."""


for _loader in (_Loader, _FastLoader):
    _loader.yaml_implicit_resolvers = {
        key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
    )


def _line(node: yaml.Node | None) -> int | None:
    return None if node is None else node.start_mark.line + 1


def _key_node(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    """The key node ``key`` of a mapping node, or None; of a key written twice, the last (the
    one whose value YAML keeps)."""
    if isinstance(node, yaml.MappingNode):
        for k, _ in reversed(node.value):
            if k.value == key:
                found: yaml.Node = k
                return found
    return None


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
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


def _node_at(node: yaml.Node | None, path: Sequence[str | int]) -> yaml.Node | None:
    """Walk down ``path``; stop at the deepest node that exists (its line is the best we have)."""
    for key in path:
        child = _child(node, key)
        if child is None:
            return node
        node = child
    return node


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


# --- YAML syntax ---------------------------------------------------------------------------------

_EMAIL_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- +)?email:[ \t]*(?P<value>[^#]*?)\s*(#.*)?$")
_ITEM_LINE = re.compile(r"^(?P<indent> *)-[ \t]")
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?:\s|$)")
_FIELD_LINE = re.compile(r"^(?P<indent> *(?:- +)?)(?P<key>[A-Za-z_][\w-]*):(?:\s|$)")
"""A line that starts with a key, after its '- ' if it is a list item: the key's column is the
length of ``indent``."""
_OWN_EMAIL = re.compile(r"\s*- +email(:|\s)\s*(?P<value>[^\s#]+)")
"""The line that starts a subscriber's entry (its ':' may be missing), and their address."""


def _content(text: str) -> bool:
    """Whether a line holds more than spaces and a comment."""
    return bool(text.strip()) and not text.lstrip().startswith("#")


def _content_column(text: str) -> int:
    """The column (0-based) of the first character of a line that is not a space."""
    return len(text) - len(text.lstrip(" "))


def _leaves_section(line: str) -> bool:
    """Whether a line ends the ``subscribers:`` section: a top-level key (not a comment, nor a
    ``- `` item written without indentation)."""
    return bool(line.strip()) and not line.startswith((" ", "#", "-"))


def _subscriber_lines(lines: Sequence[str]) -> tuple[int, int] | None:
    """(index of the ``subscribers:`` line, indentation of its ``- `` items), read from the text."""
    for i, text in enumerate(lines):
        if re.match(r"subscribers:\s*(#.*)?$", text):
            indents = []
            for after in lines[i + 1 :]:
                if _leaves_section(after):
                    break
                if item := _ITEM_LINE.match(after):
                    indents.append(len(item["indent"]))
            return (i, min(indents)) if indents else None
    return None


def _subscriber_near(lines: Sequence[str], number: int) -> str | None:
    """The address of the subscriber entry that holds 1-based line ``number``, from the text."""
    section = _subscriber_lines(lines)
    if section is None or number - 1 <= section[0]:
        return None
    first, indent = section
    start = next(
        (
            i
            for i in range(min(number, len(lines)) - 1, first, -1)
            if (m := _ITEM_LINE.match(lines[i])) and len(m["indent"]) == indent
        ),
        None,
    )
    if start is None:
        return None
    for i in range(start, len(lines)):
        text = lines[i]
        if i > start and (
            ((m := _ITEM_LINE.match(text)) and len(m["indent"]) <= indent) or _leaves_section(text)
        ):
            break
        email = _EMAIL_LINE.match(text[indent + 2 :] if i == start else text)
        if email and (i == start or len(email["indent"]) == indent + 2):
            return email["value"].strip("'\"") or None
    return None


def _parses_past(text: str, number: int) -> bool:
    try:
        yaml.compose(text, Loader=_FastLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return mark is not None and mark.line + 1 > number
    return True


def _missing_dash(lines: list[str], number: int) -> tuple[int, str] | None:
    """The line at or above line ``number`` that starts a subscriber without its ``- ``, if
    the file parses past ``number`` once the dash is put back: (its 1-based line, the line as it
    should be). Only the entry holding line ``number`` is searched, and the file is parsed again
    once at most."""
    section = _subscriber_lines(lines)
    if section is None:
        return None
    first, indent = section
    for i in range(min(number, len(lines)) - 1, first, -1):
        text = lines[i]
        item = _ITEM_LINE.match(text)
        if item and len(item["indent"]) == indent and i < number - 1:
            return None  # the entry starts properly: no dash is missing in it
        key = _KEY_LINE.match(text)
        if key is None:
            continue
        depth = len(key["indent"])
        if depth == indent or (depth == indent + 2 and key["key"] == "email"):
            if not _has_email(lines, i, depth):
                return None  # a field of the subscriber above, not lined up (see _misindented)
            fixed = " " * indent + "- " + text.lstrip()
            if _parses_past("\n".join([*lines[:i], fixed, *lines[i + 1 :]]), number):
                return i + 1, fixed
            return None
    return None


def _has_email(lines: Sequence[str], start: int, depth: int) -> bool:
    """Whether the block of keys at ``depth`` from line index ``start`` holds an ``email:``."""
    for text in lines[start:]:
        key = _KEY_LINE.match(text)
        if _ITEM_LINE.match(text) or (key and len(key["indent"]) < depth) or _leaves_section(text):
            return False
        if key and len(key["indent"]) == depth and key["key"] == "email":
            return True
    return False


def _misindented(lines: list[str], number: int) -> tuple[int, str] | None:
    """(1-based line, message) when the line YAML stopped at, or the one above it, is a
    subscriber's ``- `` indented unlike the others' (less, or more than a field's list item, or
    an entry starting ``- email:`` at all), or a field lined up with the ``- ``."""
    section = _subscriber_lines(lines)
    if section is None:
        return None
    first = section[0]  # YAML takes the list's indent from its first '- '
    indent = next(len(m["indent"]) for text in lines[first + 1 :] if (m := _ITEM_LINE.match(text)))
    for i in (number - 1, number - 2):
        if not first < i < len(lines):
            continue
        text = lines[i]
        item, key = _ITEM_LINE.match(text), _KEY_LINE.match(text)
        starts = bool(_OWN_EMAIL.match(text))  # deeper than a field's list item: still its own
        if item and len(item["indent"]) != indent and (len(item["indent"]) < indent + 2 or starts):
            return i + 1, (
                f"this subscriber's '-' is in column {len(item['indent']) + 1} and the "
                f"others' in column {indent + 1}: line it up with theirs"
            )
        # a '-' as deep as the fields, or deeper: an item of a list in a field (alerts)
        deep = len(item["indent"]) if item and len(item["indent"]) >= indent + 2 else None
        if deep is not None and (above := _item_above(lines, i, first)) not in (None, deep):
            return i + 1, (
                f"this '-' is in column {deep + 1} and the one above in column {above + 1}: "
                "line it up with it"
            )
        if key and len(key["indent"]) == indent:
            return i + 1, (
                f"'{key['key']}:' is lined up with the subscribers' '-': indent it "
                f"{indent + 2} spaces, like the other fields of the subscriber above"
            )
    return None


def _item_above(lines: list[str], index: int, first: int) -> int | None:
    """The indentation of the ``- `` item of a field's list just above line ``index`` (0-based),
    if the lines between are that item's own (deeper, or blank, or comments); an item two
    columns deeper or more is in a list of its own, not the one above."""
    indent = _content_column(lines[index])
    for i in range(index - 1, first, -1):
        text = lines[i]
        if not _content(text):
            continue
        if item := _ITEM_LINE.match(text):
            if len(item["indent"]) > indent + 1:
                continue
            return len(item["indent"])
        if _content_column(text) <= indent:
            return None
    return None


def _line_up(lines: Sequence[str], index: int) -> str | None:
    """What to say of the key that line ``index`` (0-based) starts with when YAML cannot place
    it: the key above it that it is most likely meant to line up with (of the block above it,
    and the key that block belongs to), the nearest of the closest."""
    own = _FIELD_LINE.match(lines[index])
    if own is None:
        return None
    column, best = len(own["indent"]), None
    for text in reversed(lines[:index]):
        if _leaves_section(text):
            break
        key = _FIELD_LINE.match(text)
        if key and len(key["indent"]) != column:
            distance = abs(len(key["indent"]) - column)
            best = (distance, key) if best is None or distance < best[0] else best
        if (key or _ITEM_LINE.match(text)) and _content_column(text) <= column:
            break  # the key or item the block above belongs to
    if best is None:
        return None
    other = best[1]
    side = "more" if column > len(other["indent"]) else "less"
    return f"'{own['key']}:' is indented {side} than '{other['key']}:' above it: line it up with it"


def _missing_colon(lines: Sequence[str], index: int, column: int) -> tuple[int, int, str]:
    """(1-based line, column, message) for a key written without its ':' on line ``index``."""
    written = lines[index][column:].split(" #", 1)[0].strip()
    key = written.split()[0] if written else written
    return index + 1, column + 1, f"no ':' in {written!r} (add ':' after {key!r})"


def _unclosed(lines: Sequence[str], exc: yaml.MarkedYAMLError) -> tuple[int, int, str] | None:
    """A ``[`` (or ``{``) left open, at the line where it opened: YAML stops at the end of the
    file or on the next line of the file's own structure (a key, a ``- ``; its first word may be
    read as one more item). Or, on that line, two items without a ',' between them."""
    opened, mark = exc.context_mark, exc.problem_mark
    if opened is None or mark is None:
        return None
    bracket = lines[opened.line][opened.column]
    if bracket not in "[{":
        return None
    end, what = ("]", "list") if bracket == "[" else ("}", "mapping")
    if mark.line == opened.line:
        message = f"expected ',' or '{end}' here: put a ',' between the items of the {what}"
        return mark.line + 1, mark.column + 1, message
    text = lines[mark.line] if mark.line < len(lines) else ""
    if text and not (_FIELD_LINE.match(text) or _ITEM_LINE.match(text)):
        return None  # a line of the list itself: a ',' missing at the end of the one above, say
    message = f"the '{bracket}' opened here is never closed: end the {what} with '{end}'"
    return opened.line + 1, opened.column + 1, message


QUOTING = {
    '"': "a '\"' inside double quotes is written \\\" (or put the value in single quotes)",
    "'": "a \"'\" inside single quotes is written '' (or put the value in double quotes)",
}
"""How to write a quote character inside a value quoted with it."""


def _quote_before(text: str, mark: yaml.Mark) -> yaml.ScalarToken | None:
    """The quoted value YAML read just before ``mark`` (where it stopped), if that is what it
    read last."""
    last = None
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if (token.start_mark.line, token.start_mark.column) >= (mark.line, mark.column):
                break
            last = token
    except yaml.YAMLError:
        pass  # the mistake that stopped the parser, met again
    return last if isinstance(last, yaml.ScalarToken) and last.style in QUOTING else None


def _quote_left_open(
    text: str, lines: Sequence[str], exc: yaml.MarkedYAMLError
) -> tuple[int, int, str] | None:
    """(1-based line, column, message) of a quote never closed on its line, where it opens: YAML
    reads on, lines below included, to the next quote character and stops just after it, or at
    the end of the file. Or of a quoted value closed early by a quote character of its own."""
    mark = exc.problem_mark
    if mark is None:
        return None
    if exc.context == "while scanning a quoted scalar" and exc.context_mark is not None:
        opened = exc.context_mark
        runs_on = mark.line > opened.line or (exc.problem or "").endswith("end of stream")
        return _never_closed(lines, opened.line, opened.column) if runs_on else None
    token = _quote_before(text, mark)
    if token is None or token.end_mark.line != mark.line:
        return None
    start = token.start_mark
    if start.line < mark.line:
        return _never_closed(lines, start.line, start.column)
    if token.end_mark.column != mark.column:
        return None  # text after the closing quote, not in it: not the quote's doing
    end, in_flow = token.end_mark.column, (exc.context or "").startswith("while parsing a flow")
    if in_flow and "," in lines[start.line][start.column : end]:  # ["a model, "flow matching"]
        return _never_closed(lines, start.line, start.column, line_end=False)
    # in a list, where the item was meant to end is anyone's guess: no example
    return _own_quote(lines, start.line, start.column, end, example=not in_flow)


def _quoted_value(line: str, column: int) -> tuple[str, str, str]:
    """The line split around the value quoted at ``column``: what is before it, the value (up
    to a comment; inside the ']' or '}' of a list or mapping opened before it), what is after."""
    head, body = line[:column], line[column:].split(" #", 1)[0].rstrip()
    nested = head.count("[") > head.count("]") or head.count("{") > head.count("}")
    value = body.rstrip(" ]},") if nested else body
    return head, value, body[len(value) :]


def _never_closed(
    lines: Sequence[str], index: int, column: int, *, line_end: bool = True
) -> tuple[int, int, str] | None:
    """What to say of the quote opened at (``index``, ``column``) that is never closed at the
    end of its value (``line_end``) or, in a list, before the ',' that ends its item."""
    line = lines[index] if index < len(lines) else ""
    quote = line[column : column + 1]
    if quote not in QUOTING:
        return None
    head, value, tail = _quoted_value(line, column)
    if line_end:
        where, closed = "on the same line", head + value + quote + tail
    else:
        comma = line.index(",", column)
        where, closed = "before the ',' after it", line[:comma] + quote + line[comma:]
    message = f"the quote opened here is never closed: end it with {quote!r} {where}"
    return index + 1, column + 1, message + _for_example(closed.strip())


def _own_quote(
    lines: Sequence[str], index: int, column: int, end: int, *, example: bool = True
) -> tuple[int, int, str]:
    """What to say of the value quoted at (``index``, ``column``) whose own quote character
    closes the quote early, at ``end`` (the column just after it); with the line as it should
    read when ``example``."""
    quote = lines[index][column]
    other = "'" if quote == '"' else '"'
    head, value, tail = _quoted_value(lines[index], column)
    value = value[1:].removesuffix(quote)
    if other in value:
        value = quote + value.replace(quote, '\\"' if quote == '"' else "''") + quote
    else:
        value = other + value + other
    message = (
        f"the quote opened here ends at the {quote!r} in column {end}, before the value does: "
        f"{QUOTING[quote]}"
    )
    written = (head + value + tail).strip()
    return index + 1, column + 1, message + (_for_example(written) if example else "")


def _for_example(line: str) -> str:
    """``line`` offered as an example of how to write it, unless it is too long to read."""
    return f", e.g. {line}" if len(line) <= 80 else ""


def _colon_in_value(lines: Sequence[str], index: int, column: int) -> tuple[int, int, str] | None:
    """For a ':' YAML does not allow at (index, column): a key indented more than the value above
    it (YAML reads it as more of that value), a ':' missing on the line above, or a frequency
    written with a space after its ':'."""
    text = lines[index]
    key = _FIELD_LINE.match(text)
    if key is None:
        return None
    if text.find(":", len(key["indent"])) == column:  # the ':' of the line's own key
        told = _line_up(lines, index)
        if told is not None:
            return index + 1, len(key["indent"]) + 1, told
        above = next((i for i in range(index - 1, -1, -1) if _content(lines[i])), None)
        if above is None or ":" in lines[above]:
            return None
        item = _ITEM_LINE.match(lines[above])
        return _missing_colon(lines, above, item.end() if item else _content_column(lines[above]))
    value = text[key.end() :].split(" #", 1)[0].strip()
    meant = frequency_meant(value) if key["key"] == "frequency" else None
    if meant is None:
        return None  # a value that holds ': ' and needs quotes (YAML_HINTS)
    return index + 1, column + 1, f"{value!r} has a ': ' in it: write frequency: {meant}"


def _explained(lines: list[str], exc: yaml.MarkedYAMLError) -> tuple[int, int, str] | None:
    """(1-based line, column, message) of the mistake behind a YAML error, said as what to do,
    when it is one of the usual ones; None leaves the parser's words."""
    problem, mark, opened = exc.problem or "", exc.problem_mark, exc.context_mark
    if problem == "could not find expected ':'" and opened is not None:
        return _missing_colon(lines, opened.line, opened.column)
    if problem.startswith("expected ',' or "):
        return _unclosed(lines, exc)
    if mark is None:
        return None
    misplaced = _misindented(lines, mark.line + 1)
    if misplaced is not None:
        number, message = misplaced
        return number, _content_column(lines[number - 1]) + 1, message
    if mark.line >= len(lines):
        return None
    if problem == "mapping values are not allowed here":
        return _colon_in_value(lines, mark.line, mark.column)
    if problem.endswith("but found '<block mapping start>'"):
        told = _line_up(lines, mark.line)
        return None if told is None else (mark.line + 1, mark.column + 1, told)
    return None


def _syntax_problem(text: str, exc: yaml.YAMLError, source: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    lines = text.splitlines()
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        number = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"not valid YAML: character U+{exc.character:04X} is not allowed in YAML text"
        return Problem(
            source, number, _subscriber_near(lines, number), None, message, column=column
        )
    if mark is None:
        return Problem(source, None, None, None, f"not valid YAML: {exc}")
    number, column = mark.line + 1, mark.column + 1
    marked = exc if isinstance(exc, yaml.MarkedYAMLError) else None
    quoted = _quote_left_open(text, lines, marked) if marked else None
    dash = None if quoted else _missing_dash(lines, number)
    if dash is not None:
        number, fixed = dash
        field = lines[number - 1].lstrip().split(":", 1)[0]
        message = (
            "not valid YAML: looks like the '- ' before this subscriber is missing; "
            f"write {fixed.strip()!r}, its '-' lined up with the other subscribers'"
        )
        column = len(lines[number - 1]) - len(lines[number - 1].lstrip()) + 1
        who = _subscriber_near([*lines[: number - 1], fixed, *lines[number:]], number)
        return Problem(source, number, who, field, message, column=column)
    explained = quoted or (_explained(lines, marked) if marked else None)
    if explained is not None:
        number, column, message = explained
    else:
        reason = getattr(exc, "problem", None) or str(exc)
        hint = YAML_HINTS.get(reason)
        message = reason + (f" ({hint})" if hint else "")
    if number > len(lines):  # the end of the file, after its last line break
        number, column = max(len(lines), 1), len(lines[-1]) + 1 if lines else 1
    own = _OWN_EMAIL.match(lines[number - 1]) if number <= len(lines) else None
    who = own["value"].strip("'\"") if own else _subscriber_near(lines, number)
    return Problem(source, number, who, None, f"not valid YAML: {message}", column=column)


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for lines) and the data built from it, parsed once. A file with aliases
    is read again, as events, to judge how far they expand it before anything visits its nodes
    once for each reference (``_beyond_bounds``)."""
    kind: type[yaml.SafeLoader] = _FastLoader
    try:
        parsed = _parse(text, kind)
    except yaml.YAMLError:
        kind = _Loader
        try:
            parsed = _parse(text, kind)
        except yaml.YAMLError as exc:
            raise ProfileError([_syntax_problem(text, exc, source)]) from None
    if _ALIAS.search(text) and (problem := _beyond_bounds(text, source, kind)) is not None:
        raise ProfileError([problem])
    return parsed


def _parse(text: str, kind: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    loader = kind(text)
    try:
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


_ALIAS = re.compile(r"\*(?<![^\s\[{,:]\*)")
"""A '*' where an alias may start (at the start of a value): the text of a file without one
holds no alias, and is not read again (``_beyond_bounds``); one inside a quoted value or a
comment only costs that reading. The '*' comes first, for the search to be quick."""


def _beyond_bounds(text: str, source: str, kind: type[yaml.SafeLoader] = _Loader) -> Problem | None:
    """Where ``text`` takes more to read than a profiles file can, if it does: more than
    ``DEEPEST`` lists and mappings one inside another (an alias reaching as deep as the
    collection it names), an alias inside the collection it names (which holds itself without
    end), or aliases that expand it far past the values written in it (``EXPANSION``), at the
    alias where the expansion passes that bound. Read from its parse events, which PyYAML makes
    without recursion, with the parser of ``kind``."""
    heights: dict[str, int] = {}  # of each anchored collection: itself and those inside it
    sizes: dict[str, int] = {}  # of each anchored node: the values it expands to
    anchors: list[str | None] = []  # of the collections entered, the innermost last
    deepest: list[int] = []  # the depth reached inside each of them so far
    before: list[int] = []  # the values expanded to before each of them
    expanded = written = 0
    passing: list[tuple[int, yaml.Event]] = []  # aliases past the bound for the file read so far
    try:
        for event in yaml.parse(text, Loader=kind):
            if isinstance(event, yaml.ScalarEvent):
                expanded, written = expanded + 1, written + 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                continue
            if isinstance(event, yaml.CollectionStartEvent):
                anchors.append(event.anchor)
                deepest.append(0)
                before.append(expanded)
                expanded, written = expanded + 1, written + 1
                reach = len(anchors)
            elif isinstance(event, yaml.AliasEvent):
                name = event.anchor or ""
                if name in anchors:
                    message = f"the alias *{name} is inside what &{name} names: it holds itself"
                    return _beyond(text, source, event, message + " without end")
                expanded, written = expanded + sizes.get(name, 1), written + 1
                if expanded > max(EXPANDED, EXPANSION * written):
                    passing.append((expanded, event))
                reach = len(anchors) + heights.get(name, 0)
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, reach, start = anchors.pop(), deepest.pop(), before.pop()
                if anchor is not None:
                    heights[anchor], sizes[anchor] = reach - len(anchors), expanded - start
            else:
                continue
            if deepest:
                deepest[-1] = max(deepest[-1], reach)
            if reach > DEEPEST:
                message = (
                    f"nested too deeply to read: more than {DEEPEST} lists and mappings one "
                    "inside another (a profiles file needs a few)"
                )
                return _beyond(text, source, event, message)
    except yaml.YAMLError:  # a syntax error before any of these
        pass
    bound = max(EXPANDED, EXPANSION * written)
    alias = next((event for count, event in passing if count > bound), None)
    if alias is None:
        return None
    message = (
        f"aliases expand the file to more than {bound:,} values from the {written:,} written "
        "in it: an alias repeats all it names, its aliases included, so aliases of lists of "
        "aliases multiply"
    )
    return _beyond(text, source, alias, message)


def _beyond(text: str, source: str, event: yaml.Event, message: str) -> Problem:
    """The problem ``message`` at ``event``, for ``_beyond_bounds``."""
    mark = event.start_mark
    assert mark is not None, "the parser marks every event"
    number = mark.line + 1
    who = _subscriber_near(text.splitlines(), number)
    return Problem(source, number, who, None, message, column=mark.column + 1)


def _repeated_items(items: yaml.Node | None, text: str) -> dict[int, tuple[int, int]]:
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
    for event in yaml.parse(text, Loader=_Loader):
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


# --- the node tree: repeated keys ----------------------------------------------------------------


def _duplicate_keys(root: yaml.Node, source: str) -> list[Problem]:
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
                    who = _email_before(item) or f"#{index + 1}"
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
                    f"a second 'email:' inside subscriber {above} (line {_line(first[name])}): "
                    "looks like the '- ' before this subscriber is missing; write "
                    f"'- email: {value.value}', its '-' lined up with the other subscribers'"
                )
                named = value.value if isinstance(value, yaml.ScalarNode) and value.value else who
                problems.append(Problem(source, _line(key), named, name, message))
            elif not merged:
                section = "defaults" if path == ("defaults",) else None
                # the field as the subscriber (or the defaults block) sees it
                field = here[1:] if section else here[2:] if who else here
                message = f"duplicate key (first at line {_line(first[name])}): keep only one"
                problems.append(
                    Problem(source, _line(key), who, _dotted(field), message, section=section)
                )
            walk(value, here, who)

    walk(root, (), None)
    return problems


# --- pydantic errors -> messages -----------------------------------------------------------------


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
        return f"expected settings indented below '{key}:', one per line" + _text_hint(
            value, fields
        )
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


def _text_hint(value: Any, fields: Collection[str]) -> str:
    """How to write as settings text that YAML read instead: a key without its ':'
    ('keywords [x]'), or an address alone ('- ada@example.org')."""
    written = value.strip() if isinstance(value, str) else ""
    first, _, rest = written.partition(" ")
    if first in fields and rest:
        return f": add ':' after '{first}'"
    if "email" in fields and re.fullmatch(r"[^\s@]+@[^\s@]+", written):
        return f": write '- email: {written}'"
    return ""


def _problems(
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
            key = _key_node(_node_at(node, path[:-1]), path[-1])
            line, message = _line(key or _node_at(node, path)), _unknown_key(path)
        else:
            at = _node_at(node, path)
            line, message = _line(at), _message(err, at)
        field = _dotted(path) or None
        named = _email_before(node, line) if who and line else None
        problems.append(Problem(source, line, named or who, field, message, section=section))
    return problems


def _email_before(node: yaml.Node | None, line: int | None = None) -> str | None:
    """The last ``email:`` of a subscriber's mapping at or above ``line`` (anywhere when None):
    the subscriber a line belongs to even when two subscribers ran together (a missing ``- ``)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            written = str(value.value).strip() if isinstance(value, yaml.ScalarNode) else ""
            above = line is None or (_line(key) or 0) <= line
            if key.value == "email" and above and written:
                found = written
    return found


# --- the file ------------------------------------------------------------------------------------


def _shape_problems(root: yaml.Node | None, data: Any, source: str) -> list[Problem]:
    if not isinstance(data, dict):
        message = "expected a mapping with 'subscribers:' (a list, each entry starting '- email:')"
        if data is None:  # nothing but comments and blank lines (an editor caught mid-save?)
            message = "the file is empty: " + message
        return [Problem(source, _line(root), None, None, message)]
    problems = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            line = _line(_key_node(root, key))
            hint = _suggestion(str(key), TOP_LEVEL_KEYS)
            problems.append(Problem(source, line, None, str(key), "unknown key" + hint))
    defaults, node = data.get("defaults"), _child(root, "defaults")
    if defaults is not None and not isinstance(defaults, dict):
        message = "expected settings indented below 'defaults:', such as timezone: UTC"
        problems.append(Problem(source, _line(node), None, None, message, section="defaults"))
    elif defaults:
        allowed = f"(allowed: {', '.join(sorted(DEFAULT_KEYS))})"
        problems += [
            Problem(
                source,
                _line(_key_node(node, k)),
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
            problems.append(Problem(source, _line(root), None, "subscribers", message))
    elif not isinstance(subscribers, list):
        message = "expected a list of subscribers, each entry starting '- email:'"
        if subscribers is None:
            message = "is empty: below it, write one '- email: ...' entry per subscriber"
        line = _line(_child(root, "subscribers"))
        problems.append(Problem(source, line, None, "subscribers", message))
    return problems


@dataclass(frozen=True, slots=True)
class _Note:
    """A warning about a valid subscriber, without its line: the field it names, the path to
    the value it is about (from the subscriber's entry), and what it says. It follows from the
    subscriber alone, so it is kept with them and located again in each version of the file."""

    field: str
    path: tuple[str | int, ...]
    message: str


def _phrase_notes(subscriber: Subscriber) -> list[_Note]:
    """Keywords, authors and excludes that are valid but cannot do what was meant: a phrase
    holding a comma (two phrases written as one), an author written as a family name alone
    (``_surname_alone``), and an exclude that vetoes every paper a keyword of the same
    subscriber matches."""
    interests, found = subscriber.interests, []

    def note(field: str, index: int, message: str) -> None:
        found.append(_Note(f"interests.{field}", ("interests", field, index), message))

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


def _alert_notes(subscriber: Subscriber) -> list[_Note]:
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
            found.append(_Note(_dotted(where), where, message))
    return found


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
        problems = _problems(exc, _child(root, "defaults"), source, section="defaults")
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


_Valid = tuple[Subscriber, tuple[_Note, ...]]
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
            valid = subscriber, (*_phrase_notes(subscriber), *_alert_notes(subscriber))
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
        message += _text_hint(item, Subscriber.model_fields)
        return None, [Problem(source, _line(node), who, None, message)]
    try:
        return _VALIDATED.of({**defaults, **item}, seen), []
    except ValidationError as exc:
        problems = _problems(exc, node, source, who)
        return None, _one_for_a_sunk_subscriber(problems, node, source, who, column)


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
        if isinstance(key, int) and _key_node(child, "email") is not None:
            return here, child
        if (found := _sunk_subscriber(child, here)) is not None:
            return found
    return None


def _one_for_a_sunk_subscriber(
    problems: list[Problem], node: yaml.Node | None, source: str, who: str, column: int
) -> list[Problem]:
    """The problems of a subscriber, with those of a subscriber indented into it (one per key it
    has, each unknown there) said once: where it is, and where its '-' belongs (``column``)."""
    sunk = _sunk_subscriber(node)
    if sunk is None:
        return problems
    path, item = sunk
    field = _dotted(path)
    kept = [p for p in problems if p.field != field and not (p.field or "").startswith(field + ".")]
    if len(kept) == len(problems):
        return problems
    message = (
        f"looks like subscriber {_email_before(item)} is indented too far: move its '-' to "
        f"column {column + 1} (level with the other subscribers)"
    )
    return [*kept, Problem(source, _line(item), who, field, message)]


def parse_profiles(text: str, source: str = "<profiles>") -> Profiles:
    """Parse and validate a profiles file; raise ProfileError listing every problem found.

    The node tree of a file of thousands of subscribers is millions of objects without cycles,
    which the collector would walk again and again as they are made (more than half the time of
    a parse): it is paused meanwhile (``paused_collector``).

    A file nested so deeply that reading it (PyYAML's composer, or a step after it) exhausts
    Python's recursion is one problem, located where it goes too deep (``_beyond_bounds``); any
    other RecursionError is raised as it is."""
    text = text.removeprefix("\ufeff")  # a byte order mark, as some Windows editors write
    with paused_collector():
        try:
            return _parse_profiles(text, source)
        except RecursionError:
            problem = _beyond_bounds(text, source)
            if problem is None:
                raise
            raise ProfileError([problem]) from None


def _parse_profiles(text: str, source: str) -> Profiles:
    root, data = _compose(text, source)
    problems = _duplicate_keys(root, source) if root is not None else []
    problems += _shape_problems(root, data, source)
    defaults, found = _valid_defaults(data, root, source)
    problems += found
    if not isinstance(data, dict) or not isinstance(data.get("subscribers"), list):
        raise ProfileError(sorted(problems, key=lambda p: p.line or 0))
    items_node = _child(root, "subscribers")
    column = items_node.start_mark.column if items_node is not None else 0
    subscribers: list[Subscriber] = []
    warnings: list[Problem] = []
    first_line: dict[str, int | None] = {}
    seen: dict[str, _Valid] = {}
    repeated = _repeated_items(items_node, text)
    for index, item in enumerate(data["subscribers"]):
        node = _child(items_node, index)
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
            line = _line(_child(node, "email"))
            message = f"duplicate subscriber (first at {where})"
            problems.append(Problem(source, line, key, "email", message))
            continue
        first_line[key] = _line(node)
        if valid is not None:
            subscriber, notes = valid
            subscribers.append(subscriber)
            if subscriber.interests.empty:
                line = _line(_key_node(node, "interests") or node)
                message = NO_INTERESTS + (
                    " (their alerts still apply)" if subscriber.alerts else ""
                )
                warnings.append(Problem(source, line, subscriber.email, "interests", message))
            warnings += [
                Problem(source, _line(_node_at(node, n.path)), subscriber.email, n.field, n.message)
                for n in notes
            ]
    _VALIDATED.last = seen
    if problems:
        raise ProfileError(sorted(problems, key=lambda p: p.line or 0))
    if not subscribers:
        message = "the list is empty: nobody gets mail (every subscriber stored is deactivated)"
        warnings.append(Problem(source, _line(items_node), None, "subscribers", message))
    return Profiles(source, tuple(subscribers), tuple(sorted(warnings, key=lambda p: p.line or 0)))


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
        "pattern": f"^{SEND_AT_PATTERN}$",
        "description": 'Local send time, "HH:MM" (or "HH:MM:SS").',
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
