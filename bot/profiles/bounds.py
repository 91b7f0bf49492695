"""How much a file may take to read: how deeply its lists and mappings nest, and how far its
aliases expand it. A file past either is one problem, at the place where it goes too far, found
from the parse events before anything walks the node tree (which would recurse as deep, and
visit an alias's node once for each reference).
"""

from __future__ import annotations

import re

import yaml

from bot.errors import Problem
from bot.profiles.loading import Loader
from bot.profiles.syntax import subscriber_near

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


ALIAS = re.compile(r"\*(?<![^\s\[{,:]\*)")
"""A '*' where an alias may start (at the start of a value): the text of a file without one
holds no alias, and is not read again (``beyond_bounds``); one inside a quoted value or a
comment only costs that reading. The '*' comes first, for the search to be quick."""


def beyond_bounds(text: str, source: str, kind: type[yaml.SafeLoader] = Loader) -> Problem | None:
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
    """The problem ``message`` at ``event``, for ``beyond_bounds``."""
    mark = event.start_mark
    assert mark is not None, "the parser marks every event"
    number = mark.line + 1
    who = subscriber_near(text.splitlines(), number)
    return Problem(source, number, who, None, message, column=mark.column + 1)
