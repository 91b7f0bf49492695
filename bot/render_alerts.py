"""What an alert email shows of the rules that fired: its subject, and its papers by rule.

An alert lists its papers grouped by the first rule each fires, in the order
``bot.alerts.alert_digest`` gives them (``Digest.rules``). Each group gets a heading, both where
papers are shown in full and in the list by title, but only when there are several groups: an
alert of one rule reads as it always did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bot.models import Digest
from bot.render_views import MoreGroup, MoreView, PaperView, one_line, short_title

SUBJECT_MAX = 78
"""Longest alert subject: a phone shows the first 40 to 60 characters, a desktop about 78."""
TITLE_MIN = 25
"""Fewest characters of a paper's title worth naming in an alert subject; with less room the
subject counts the paper instead."""


def quoted_names(names: Sequence[str]) -> str:
    """The alert rules that fired, each quoted: ``“Lee”``, ``“Lee” and “SSMs”``,
    ``“Lee”, “RL” and “SSMs”``."""
    quoted = [f"“{one_line(name)}”" for name in names if name.strip()]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else "".join(quoted)


def alert_subject(rules: Sequence[str], total: int, title: str, others: int | None = None) -> str:
    """The subject of an alert of ``total`` papers, the first titled ``title``, that ``rules``
    fired (the first heads the first group): ``Alert for “Lee”: <title>`` for one paper,
    ``Alert for “Lee” and “SSMs”: 5 new papers``, or ``Alert for “Lee” and 2 more rules: 5 new
    papers`` when the names do not all fit. ``others``: how many rules the names after the first
    belong to (``bot.alerts.rules_named``; by default one each).

    At most ``SUBJECT_MAX`` characters and one ellipsis: the title is cut when there is room
    for ``TITLE_MIN`` characters of it, else the paper is counted and, as a last resort, the
    first rule's name is cut (before a title of at most ``TITLE_MIN`` characters, or the count).
    """
    names = [one_line(name) for name in rules if name.strip()]
    others = len(names) - 1 if others is None else others
    heads = _heads(names, others)
    count = f"{total} new paper{'' if total == 1 else 's'}"
    if total == 1:
        for head in heads:
            if len(_subject(head, title)) <= SUBJECT_MAX:
                return _subject(head, title)
        for head in heads:
            room = SUBJECT_MAX - len(_subject(head, ""))
            if room >= TITLE_MIN:
                return _subject(head, short_title(title, room))
    for head in heads:
        if len(_subject(head, count)) <= SUBJECT_MAX:
            return _subject(head, count)
    tail = title if total == 1 and len(title) <= TITLE_MIN else count
    more = _others(others)
    room = SUBJECT_MAX - len(_subject(f"“”{more}", tail))
    return _subject(f"“{short_title(names[0], room)}”{more}", tail)


def _heads(names: list[str], others: int) -> list[str]:
    """The ways a subject may name the rules, best first: all of them, then the first and how
    many other rules (``others``) the rest belong to."""
    if len(names) < 2:
        return [f"“{name}”" for name in names] or [""]
    return [quoted_names(names), f"“{names[0]}”{_others(others)}"]


def _others(count: int) -> str:
    return f" and {count} more rule{'' if count == 1 else 's'}" if count else ""


def _subject(head: str, tail: str) -> str:
    return f"Alert for {head}: {tail}" if head else f"Alert: {tail}"


def heading(rule: str) -> str:
    """The heading of the papers an alert lists under ``rule`` (none: no rule fires on them
    any more, the profile having changed since the alert was first made)."""
    return f"Alert “{one_line(rule)}”" if rule.strip() else "Other papers"


@dataclass(frozen=True)
class Groups:
    """Where an alert's rule headings go, before which picks (``heads``) and further matches
    (``more_heads``), and which other rules each of them matches (``also``, ``more_also``).
    Empty (``UNGROUPED``) when the papers are not grouped."""

    heads: Sequence[str]
    also: Sequence[str]
    more_heads: Sequence[str] = ()
    more_also: Sequence[str] = ()

    def picks(self, papers: Sequence[PaperView]) -> Iterator[tuple[int, PaperView, str, str]]:
        """Each of the first picks ``papers``, ranked from 1, with its heading and what else
        it matches."""
        if not self.heads:
            return ((rank, paper, "", "") for rank, paper in enumerate(papers, 1))
        return self._picks(papers)

    def _picks(self, papers: Sequence[PaperView]) -> Iterator[tuple[int, PaperView, str, str]]:
        listed = zip(papers, self.heads[: len(papers)], self.also[: len(papers)], strict=True)
        for rank, (paper, head, also) in enumerate(listed, 1):
            yield rank, paper, head, also

    def more(self, items: Sequence[MoreView]) -> list[MoreGroup]:
        """The further matches ``items`` in their groups (one without a heading when the
        papers are not grouped)."""
        if not self.more_heads:
            return [MoreGroup("", list(items))] if items else []
        groups = [MoreGroup("", [])]
        heads = [*self.more_heads, *[""] * (len(items) - len(self.more_heads))]
        for item, head in zip(items, heads, strict=True):
            if head:
                groups.append(MoreGroup(head, []))
            groups[-1].items.append(item)
        return [group for group in groups if group.items]


UNGROUPED = Groups((), ())


def rule_groups(digest: Digest) -> Groups:
    """Where the headings go in ``digest``, and what else each paper matches (``Also matches
    “SSMs”``): a heading before each paper that starts its group in its list (shown in full,
    or by title). None unless the papers fall in more than one group."""
    if digest.kind != "alert":
        return UNGROUPED
    shown, listed = len(digest.matches), len(digest.matches) + len(digest.more)
    rules = [*digest.rules[:listed], *[()] * (listed - len(digest.rules))]
    firsts = [fired[0] if fired else "" for fired in rules]
    if len(set(firsts)) < 2:
        return UNGROUPED
    heads = [
        heading(rule) if n in (0, shown) or rule != firsts[n - 1] else ""
        for n, rule in enumerate(firsts)
    ]
    also = [f"Also matches {quoted_names(fired[1:])}" if fired[1:] else "" for fired in rules]
    return Groups(heads[:shown], also[:shown], heads[shown:], also[shown:])
