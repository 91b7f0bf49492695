"""Inlining CSS once per layout rather than once per message (pure).

css-inline parses the whole stylesheet on every call (about 0.1 ms) and then matches it against
every element, whatever the element's text. The shell of an HTML message (header, topics, the
"more" list, footer) differs from one subscriber to the next only in its strings: names,
addresses, titles, links. So the template is rendered with a numbered *hole* standing in for each
string; that layout is inlined once and kept, split at its holes; and each message with the same
layout fills the holes with its own strings, escaped as the HTML serialiser escapes text or
attribute values, whichever the hole is in. Paper cards are made the same way, each inlined as
a fragment; and plain text (no inliner) is filled with its strings as they are.

What keeps a filled layout equal, byte for byte, to inlining the message itself:

- Selectors read class and id attributes, so strings rendered into those are put back before
  the layout is inlined (they become part of the layout), and a layout that still has a hole in
  one after inlining (an unusual quoting) is never kept.
- A stylesheet that reads attribute values or text (``[href^=...]``, ``:empty``) turns layouts
  off, as does a ``<style>`` block in the template itself.
- Holes compare and hash as the strings they stand for, so ``{% if kind == "alert" %}`` takes
  the same branch; numbers, booleans, None, dates and ``Markup`` are not replaced, so anything the
  templates decide from them is part of the layout. Templates may test strings for truth and
  equality but not otherwise inspect them (``|length``, ``|upper``) where layouts are used: a
  render that does (through the hole's own methods, ``<`` or ``in``), or that tests an object
  for truth or equality, or fails where a stand-in cannot do what the object does (a method
  called), is not used: the message is rendered as it is. (A string made from holes, with ``~``
  or ``+``, is a plain string: what is done to it goes unseen.) A string of a subclass of
  ``str`` (``Markup`` or another with ``__html__``) is part of the layout, as it is.
- Before a new layout is kept, filling it must give exactly the inlined real message; strings
  with characters the HTML parser would change (CR, NUL, other controls) are never filled in:
  such a message is inlined directly.

Rendering the template with holes costs more than filling the layout, so each render that gave
a kept layout is also remembered as what it *observed* of its context, in order: the kind (and
for lists and dicts the length and keys, for numbers, booleans, None, dates and ``Markup`` the
value) of each value it was given or read through a stand-in, whether each string is empty, the
result of each comparison and hash of a hole, and the strings put back into class and id
attributes. Anything else a template can see of a hole is its number, given in order; so a
render is a function of exactly these observations, and a later context for which every one
comes out the same, replayed in the same order (the next observation depends only on the
earlier results), would render the very same layout with the same holes: the layout is then
filled without rendering. The observations of all such renders of a template form a tree,
walked from the root, one branch per result. What cannot be replayed exactly is never
remembered, and such a context is rendered as above: a value of a subclass of list, tuple or
dict, a number or date of another type than ``int``, ``bool``, ``float`` or ``date``, a hole
compared with anything but a string, number or another hole, or an attribute that cannot be
read. The trees are dropped, all at once, past a number of leaves or of observations (which grow
with the contexts) per kept layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any

from markupsafe import escape

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
_REFERENCE_HOLE = re.compile("&[#0-9A-Za-z]*\ue000")
"""A hole that may end a character reference the template starts (``&{{ x }}``): the parser
would read it with the string, not on its own."""
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
    whether layouts can be shared at all. Without an inliner the layouts are of plain text:
    nothing is inlined, and strings are filled in as they are.
    """

    def __init__(self, inline: Inline | None, css: str, size: int) -> None:
        self._inline, self._size = inline, size
        self._kept: dict[str, Parts] | None = None
        self._replays: dict[Render, _Node] = {}
        """The observations of the renders that gave kept layouts, a tree per render."""
        self._leaves = self._nodes = 0
        if not _READS_VALUES.search(css):
            self._kept = {}

    def inline(self, render: Render, context: Mapping[str, object]) -> str:
        """``inline(render(context))`` (``render(context)`` for plain text), filled into the
        kept layout when there is one."""
        if self._kept is None:
            return self._whole(render, context)
        root = self._replays.get(render)
        found = None if root is None else _replay(root, context)
        if found is not None:
            parts = self._used(found[0])
            if parts is not None:
                filled = _fill(parts, found[1])
                return filled if filled is not None else self._whole(render, context)
        holes = _Holes()
        try:
            layout = render(holes.context(context))
        except Exception:  # what a stand-in cannot do (call a method, say): render it
            return self._whole(render, context)
        if holes.inspected:  # it looked at a string or object beyond what is observed
            return self._whole(render, context)
        if self._inline is not None:
            layout = holes.keep_selected(layout)
        parts = self._used(layout)
        if parts is not None:
            self._remember(render, holes, layout)
            filled = holes.fill(parts)
            return filled if filled is not None else self._whole(render, context)
        whole = self._whole(render, context)
        parts = self._split(layout)
        if parts is not None and holes.fill(parts) == whole:
            if len(self._kept) >= self._size:
                del self._kept[next(iter(self._kept))]
            self._kept[layout] = parts
            self._remember(render, holes, layout)
        return whole

    def _used(self, layout: str) -> Parts | None:
        """The kept layout, now the most recently used; None when it is not kept."""
        assert self._kept is not None
        parts = self._kept.pop(layout, None)
        if parts is not None:
            self._kept[layout] = parts
        return parts

    def _whole(self, render: Render, context: Mapping[str, object]) -> str:
        """The message itself, without layouts."""
        return render(context) if self._inline is None else self._inline(render(context))

    def _split(self, layout: str) -> Parts | None:
        """The layout inlined and split at its holes, or None when it must not be kept."""
        parts: Parts = []
        if self._inline is None:
            pieces = _HOLE.split(layout)
            for n in range(0, len(pieces) - 1, 2):
                parts += [pieces[n], (int(pieces[n + 1]), str)]
            parts.append(pieces[-1])
            return parts
        if "<style" in layout or _REFERENCE_HOLE.search(layout):
            return None
        inlined = self._inline(_HOLE.sub(lambda hole: hole[0] + _PROBE, layout))
        if _SELECTED_INLINED.search(inlined):
            return None
        pieces = _PROBED.split(inlined)
        if inlined.count("\ue000") != len(pieces) // 3:
            return None  # a hole in neither text nor an attribute value (in a comment, say)
        for n in range(0, len(pieces) - 1, 3):
            parts += [pieces[n], (int(pieces[n + 1]), _ESCAPES[pieces[n + 2]])]
        parts.append(pieces[-1])
        return parts

    def _remember(self, render: Render, holes: _Holes, layout: str) -> None:
        """Add what the render observed, leading to ``layout``, to the render's tree."""
        if not holes.replayable:
            return
        if (
            self._leaves >= REPLAYS_PER_LAYOUT * self._size
            or self._nodes + len(holes.steps) > REPLAY_STEPS_PER_LAYOUT * self._size
        ):
            self._replays.clear()  # rather than tracking which branches are still of use
            self._leaves = self._nodes = 0
        node = self._replays.setdefault(render, _Node())
        for step, result in holes.steps:
            if node.leaf is not None:
                return  # not a function of its observations: never replayed
            if node.step is None:
                node.step = step
            elif node.step != step:
                return
            found = node.next.get(result)
            if found is None:
                found = node.next[result] = _Node()
                self._nodes += 1
            node = found
        if node.step is None:
            self._leaves += node.leaf is None
            node.leaf = (layout, tuple(holes.sources))


REPLAYS_PER_LAYOUT = 2
"""Remembered renders kept (all dropped at once past this many) per kept layout."""
REPLAY_STEPS_PER_LAYOUT = 256
"""Observations kept in the trees (all dropped at once past this many) per kept layout: the
observations of a render grow with its context (a subscriber's topics), its trees with them."""

_ROOT, _ITEM, _ATTR, _EQ, _EQ_HOLE, _HASH, _VALUE = range(7)
Step = tuple[int, int, object, object]
"""An observation: its kind, the number of the value it is about and two arguments."""
_CONSTANTS = (str, int, float, bool, type(None))
"""What a hole may be compared with for the comparison to be replayed."""
_EXACT = (int, bool, type(None), date)


class _Node:
    """A point in a render's observations: the next one (``step``) and a branch per result;
    or, at the end, the layout and the number of the value each hole stands for."""

    __slots__ = ("leaf", "next", "step")

    def __init__(self) -> None:
        self.step: Step | None = None
        self.next: dict[object, _Node] = {}
        self.leaf: tuple[str, tuple[int, ...]] | None = None


def _shape(value: object) -> object:
    """What a render sees of a value besides what it reads through a stand-in (see
    ``_Holes.stand_in``), or None when that cannot be replayed. (Shapes of different kinds of
    value never compare equal: strings, numbers, types and tuples tagged by their first item.)"""
    kind = type(value)
    if kind is str:
        return "s" if value else "e"
    if kind is list or kind is tuple:
        return len(value)  # type: ignore[arg-type]
    if isinstance(value, str):
        return ("m", kind, str(value))  # not a hole: part of the layout, as Markup
    if isinstance(value, list | tuple):
        return None
    if isinstance(value, dict):
        return ("d", tuple(value), tuple(map(type, value))) if kind is dict else None
    if kind in _EXACT:
        return ("v", kind, value)
    if isinstance(value, float):
        return ("f", value.hex()) if kind is float else None
    return None if isinstance(value, int | date) else kind


def _replay(node: _Node, context: Mapping[str, object]) -> tuple[str, list[str]] | None:
    """The layout and the strings of its holes, when ``context`` makes the same observations
    as a remembered render; else None."""
    values: list[Any] = [context]
    keep, shape = values.append, _shape
    try:
        while node.leaf is None:
            kind, a, b, _ = node.step  # type: ignore[misc]
            result: object
            if kind in (_ATTR, _ITEM):
                value = getattr(values[a], b) if kind == _ATTR else values[a][b]  # type: ignore[arg-type]
                keep(value)
                result = shape(value)
            elif kind == _EQ:
                result = values[a] == b
            elif kind == _EQ_HOLE:
                result = values[a] == values[b]  # type: ignore[index]
            elif kind == _HASH:
                result = hash(values[a])
            elif kind == _VALUE:
                result = values[a]
            else:
                result = ("d", tuple(context))
            found = node.next.get(result)
            if found is None:
                return None
            node = found
    except Exception:  # whatever the render would have met: render it
        return None
    layout, sources = node.leaf
    return layout, [values[n] for n in sources]


def _fill(parts: Parts, values: list[str]) -> str | None:
    """The inlined layout with each hole replaced by its escaped string; None when a string has
    characters the HTML parser would have changed."""
    if _NOT_FILLABLE.search("\n".join(values)):
        return None
    return "".join([p if isinstance(p, str) else p[1](values[p[0]]) for p in parts])


class _Hole(str):
    """A string of one message as it appears in a layout: ``\\ue000N\\ue001``.

    It compares (and hashes) as the string it stands for. Holes stand only for non-empty
    strings, so a hole is true exactly when its string is. Comparisons and hashes are
    observations of the render (see ``_Holes``).
    """

    value: str
    source: int
    holes: _Holes

    def __new__(cls, number: int, value: str, source: int, holes: _Holes) -> _Hole:
        hole = super().__new__(cls, f"\ue000{number}\ue001")
        hole.value, hole.source, hole.holes = value, source, holes
        return hole

    def __eq__(self, other: object) -> bool:
        holes = self.holes
        if isinstance(other, _Hole):
            result = self.value == other.value
            if other.holes is holes:
                holes.steps.append(((_EQ_HOLE, self.source, other.source, None), result))
            else:
                holes.replayable = False
        else:
            result = self.value == other
            if type(other) in _CONSTANTS:
                holes.steps.append(((_EQ, self.source, other, type(other)), result))
            else:
                holes.replayable = False
        return result

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        result = hash(self.value)
        self.holes.steps.append(((_HASH, self.source, None, None), result))
        return result

    def __bool__(self) -> bool:
        return True  # as its string (and without asking len(), an inspection)

    def __format__(self, spec: str) -> str:
        if spec:
            self.holes.inspected = True
        return str.__format__(self, spec)


def _inspecting(name: str) -> Callable[..., object]:
    """``str``'s method ``name``, noting that the render inspected a string."""
    method = getattr(str, name)

    def inspect(self: _Hole, *args: object, **kwargs: object) -> object:
        self.holes.inspected = True
        return method(self, *args, **kwargs)

    return inspect


for _name in (
    *("__contains__", "__getitem__", "__iter__", "__len__", "__mod__", "__rmod__"),
    *("__lt__", "__le__", "__gt__", "__ge__"),
    *(name for name in vars(str) if not name.startswith("_")),
):
    setattr(_Hole, _name, _inspecting(_name))


class _Holes:
    """The strings of one message's template context, each replaced by a numbered hole; and
    what the render observed of the context (see ``Layouts``).

    Each value the render is given or reads has a number, in order: the context is 0.
    """

    def __init__(self) -> None:
        self.values: list[str] = []
        self.sources: list[int] = []
        """The number of the value each hole stands for."""
        self.steps: list[tuple[Step, object]] = []
        self.replayable = True
        self.inspected = False
        """Whether the render looked at a string (its length, its order, its words: anything
        but truth and equality) or at an object other than through its attributes, which a
        layout cannot stand for."""
        self._count = 0

    def context(self, context: Mapping[str, object]) -> dict[str, object]:
        """A template context with its strings replaced by holes (see ``stand_in``)."""
        self.steps.append(((_ROOT, 0, None, None), ("d", tuple(context))))
        return {
            key: self.stand_in(value, self._saw(_ITEM, 0, key, value))
            for key, value in context.items()
        }

    def _saw(self, kind: int, parent: int, key: object, value: object) -> int:
        """Observe ``value``, item or attribute ``key`` of value ``parent``; its number."""
        shape = _shape(value)
        if shape is None:
            self.replayable = False
        self.steps.append(((kind, parent, key, None), shape))
        self._count += 1
        return self._count

    def stand_in(self, value: object, number: int) -> object:
        """``value`` (value ``number``) with its strings replaced by holes: through lists and
        dicts at once, and through the attributes of other objects as the template reads them."""
        if isinstance(value, str):
            # Markup, or a subclass with behaviour of its own (__html__): part of the layout
            return self._hole(value, number) if type(value) is str else value
        if isinstance(value, list | tuple):
            return [
                self.stand_in(item, self._saw(_ITEM, number, n, item))
                for n, item in enumerate(value)
            ]
        if isinstance(value, dict):
            return {
                key: self.stand_in(item, self._saw(_ITEM, number, key, item))
                for key, item in value.items()
            }
        if value is None or isinstance(value, int | float | date):
            return value
        return _StandIn(value, self, number)

    def _hole(self, value: str, number: int) -> str:
        if not value:
            return value
        self.values.append(value)
        self.sources.append(number)
        return _Hole(len(self.values) - 1, value, number, self)

    def keep_selected(self, layout: str) -> str:
        """``layout`` with the holes in class and id attributes replaced by their strings."""

        def settle(attribute: re.Match[str]) -> str:
            return _HOLE.sub(settle_hole, attribute[0])

        def settle_hole(hole: re.Match[str]) -> str:
            n = int(hole[1])
            self.steps.append(((_VALUE, self.sources[n], None, None), self.values[n]))
            return escape(self.values[n])

        for attribute in _SELECTED:
            layout = attribute.sub(settle, layout)
        return layout

    def fill(self, parts: Parts) -> str | None:
        """The inlined layout with each hole replaced by its escaped string; None when a
        string has characters the HTML parser would have changed."""
        return _fill(parts, self.values)


class _StandIn:
    """An object whose attributes are read through ``_Holes.stand_in``."""

    __slots__ = ("_holes", "_number", "_target")

    def __init__(self, target: object, holes: _Holes, number: int) -> None:
        self._target, self._holes, self._number = target, holes, number

    def __getattr__(self, name: str) -> object:
        holes = self._holes
        try:
            value = getattr(self._target, name)
        except BaseException:
            holes.replayable = False
            raise
        return holes.stand_in(value, holes._saw(_ATTR, self._number, name, value))

    def _inspect(self) -> Any:
        self._holes.inspected = True
        return self._target

    def __bool__(self) -> bool:
        return bool(self._inspect())

    def __eq__(self, other: object) -> bool:
        return bool(self._inspect() == other)

    def __ne__(self, other: object) -> bool:
        return bool(self._inspect() != other)

    def __hash__(self) -> int:
        return hash(self._inspect())

    def __len__(self) -> int:
        return len(self._inspect())

    def __iter__(self) -> Iterator[object]:
        return iter(self._inspect())

    def __contains__(self, item: object) -> bool:
        return item in self._inspect()

    def __str__(self) -> str:
        return str(self._inspect())
