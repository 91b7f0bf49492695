"""Inlining CSS once per layout rather than once per message (pure).

css-inline parses the whole stylesheet on every call (about 0.1 ms) and then matches it against
every element, whatever the element's text. The shell of an HTML message (header, topics, the
"more" list, footer) differs from one subscriber to the next only in its strings: names,
addresses, titles, links. So the template is rendered with a numbered *hole* standing in for each
string; that layout is inlined once and kept, split at its holes; and each message with the same
layout fills the holes with its own strings, escaped as the HTML serialiser escapes text or
attribute values, whichever the hole is in.

What keeps a filled layout equal, byte for byte, to inlining the message itself:

- Selectors read class and id attributes, so strings rendered into those are put back before
  the layout is inlined (they become part of the layout), and a layout that still has a hole in
  one after inlining (an unusual quoting) is never kept.
- A stylesheet that reads attribute values or text (``[href^=...]``, ``:empty``) turns layouts
  off, as does a ``<style>`` block in the template itself.
- Holes compare and hash as the strings they stand for, so ``{% if kind == "alert" %}`` takes
  the same branch; numbers, booleans, None, dates and ``Markup`` are not replaced, so anything the
  templates decide from them is part of the layout. Templates may test strings for truth and
  equality but not otherwise inspect them (``|length``, ``|upper``) in an HTML shell.
- Before a new layout is kept, filling it must give exactly the inlined real message; strings
  with characters the HTML parser would change (CR, NUL, other controls) are never filled in:
  such a message is inlined directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date

from markupsafe import Markup, escape

Inline = Callable[[str], str]
Render = Callable[[Mapping[str, object]], str]
Escape = Callable[[str], str]
Parts = list[str | tuple[int, Escape]]
"""An inlined layout: its text, and (hole number, escaping) for each hole."""

_HOLE = re.compile("\ue000([0-9]+)\ue001")
"""A hole: its number between two private-use characters, which HTML parsing leaves alone."""
_PROBE = "&lt;&quot;\ue002"
"""Written after each hole to learn where it ends up: the serialiser writes ``&lt;"`` in text
and ``<&quot;`` in an attribute value."""
_PROBED = re.compile('\ue000([0-9]+)\ue001(&lt;"|<&quot;)\ue002')
_NOT_FILLABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ue000-\ue002]")
"""Characters the HTML parser would change (CR, NUL, ...) or that would read as a hole."""
_READS_VALUES = re.compile(r"\[|:(?:empty|blank|lang|dir)\b")
"""CSS that looks at attribute values or text: styles would then depend on the strings."""
_SELECTED = [re.compile(f'{name}="[^"\ue000]*\ue000[^"]*"') for name in ("class", "id")]
"""A class or id attribute (as templates write them) with a hole in it: a pattern each, as a
pattern that starts with plain text is found much faster."""
_SELECTED_INLINED = re.compile('\\s(?:class|id)="[^"]*\ue000')
"""The same in inlined HTML, where every attribute is written ``name="value"``."""


def _escape_text(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("\xa0", "&nbsp;")
        .replace("<", "&lt;").replace(">", "&gt;")
    )  # fmt: skip


def _escape_attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


_ESCAPES = {'&lt;"': _escape_text, "<&quot;": _escape_attribute}


class Layouts:
    """Inlined layouts, at most ``size``, the least recently used dropped first.

    ``inline`` is the CSS inliner for whole documents; ``css`` its stylesheet, read once to see
    whether layouts can be shared at all.
    """

    def __init__(self, inline: Inline, css: str, size: int) -> None:
        self._inline, self._size = inline, size
        self._kept: dict[str, Parts] | None = None
        if not _READS_VALUES.search(css):
            self._kept = {}

    def inline(self, render: Render, context: Mapping[str, object]) -> str:
        """``inline(render(context))``, filled into the kept layout when there is one."""
        if self._kept is None:
            return self._inline(render(context))
        holes = _Holes()
        layout = holes.keep_selected(render(holes.context(context)))
        parts = self._kept.pop(layout, None)
        if parts is not None:
            self._kept[layout] = parts  # most recently used last
            filled = holes.fill(parts)
            return filled if filled is not None else self._inline(render(context))
        html = self._inline(render(context))
        parts = self._split(layout)
        if parts is not None and holes.fill(parts) == html:
            if len(self._kept) >= self._size:
                del self._kept[next(iter(self._kept))]
            self._kept[layout] = parts
        return html

    def _split(self, layout: str) -> Parts | None:
        """The layout inlined and split at its holes, or None when it must not be kept."""
        if "<style" in layout:
            return None
        inlined = self._inline(_HOLE.sub(lambda hole: hole[0] + _PROBE, layout))
        if _SELECTED_INLINED.search(inlined):
            return None
        pieces = _PROBED.split(inlined)
        if inlined.count("\ue000") != len(pieces) // 3:
            return None  # a hole in neither text nor an attribute value (in a comment, say)
        parts: Parts = []
        for n in range(0, len(pieces) - 1, 3):
            parts += [pieces[n], (int(pieces[n + 1]), _ESCAPES[pieces[n + 2]])]
        parts.append(pieces[-1])
        return parts


class _Hole(str):
    """A string of one message as it appears in a layout: ``\\ue000N\\ue001``.

    It compares (and hashes) as the string it stands for. Holes stand only for non-empty
    strings, so a hole is true exactly when its string is.
    """

    value: str

    def __new__(cls, number: int, value: str) -> _Hole:
        hole = super().__new__(cls, f"\ue000{number}\ue001")
        hole.value = value
        return hole

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, _Hole) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.value)


class _Holes:
    """The strings of one message's template context, each replaced by a numbered hole."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def context(self, context: Mapping[str, object]) -> dict[str, object]:
        """A template context with its strings replaced by holes (see ``stand_in``)."""
        return {key: self.stand_in(value) for key, value in context.items()}

    def stand_in(self, value: object) -> object:
        """``value`` with its strings replaced by holes: through lists and dicts at once, and
        through the attributes of other objects as the template reads them."""
        if isinstance(value, str):
            return value if isinstance(value, Markup) else self._hole(value)
        if isinstance(value, list | tuple):
            return [self.stand_in(item) for item in value]
        if isinstance(value, dict):
            return self.context(value)
        if value is None or isinstance(value, int | float | date):
            return value
        return _StandIn(value, self)

    def _hole(self, value: str) -> str:
        if not value:
            return value
        self.values.append(value)
        return _Hole(len(self.values) - 1, value)

    def keep_selected(self, layout: str) -> str:
        """``layout`` with the holes in class and id attributes replaced by their strings."""

        def settle(attribute: re.Match[str]) -> str:
            return _HOLE.sub(lambda hole: escape(self.values[int(hole[1])]), attribute[0])

        for attribute in _SELECTED:
            layout = attribute.sub(settle, layout)
        return layout

    def fill(self, parts: Parts) -> str | None:
        """The inlined layout with each hole replaced by its escaped string; None when a
        string has characters the HTML parser would have changed."""
        if _NOT_FILLABLE.search("\n".join(self.values)):
            return None
        values = self.values
        return "".join(p if isinstance(p, str) else p[1](values[p[0]]) for p in parts)


class _StandIn:
    """An object whose attributes are read through ``_Holes.stand_in``."""

    __slots__ = ("_holes", "_target")

    def __init__(self, target: object, holes: _Holes) -> None:
        self._target, self._holes = target, holes

    def __getattr__(self, name: str) -> object:
        return self._holes.stand_in(getattr(self._target, name))
