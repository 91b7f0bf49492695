"""A YAML syntax error said in plain words. The usual mistakes in a profiles file (a missing
'- ', ':' or closing quote, a line out of line with its neighbours, a '[' never closed) are
found from the text around the place where the parser stopped, and said as what to write
instead, naming the subscriber whose entry holds the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml

from bot.errors import Problem
from bot.models import frequency_meant
from bot.profiles.loading import FastLoader, Loader

YAML_HINTS = {
    "mapping values are not allowed here": "a value that contains ': ' must be in quotes",
    "found character '\\t' that cannot start any token": "indent with spaces, not tabs",
}
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


def subscriber_near(lines: Sequence[str], number: int) -> str | None:
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
        yaml.compose(text, Loader=FastLoader)
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
        for token in yaml.scan(text, Loader=Loader):
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


def syntax_problem(text: str, exc: yaml.YAMLError, source: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    lines = text.splitlines()
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        number = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"not valid YAML: character U+{exc.character:04X} is not allowed in YAML text"
        return Problem(source, number, subscriber_near(lines, number), None, message, column=column)
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
        who = subscriber_near([*lines[: number - 1], fixed, *lines[number:]], number)
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
    who = own["value"].strip("'\"") if own else subscriber_near(lines, number)
    return Problem(source, number, who, None, f"not valid YAML: {message}", column=column)
