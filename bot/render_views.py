"""What the templates see: papers and matches turned into small, already-safe view objects.

Pure functions behind the renderer: URL filtering (only http and https reach an ``href``), author
lists shortened, reasons split into chips, snippets with matched terms marked, LaTeX in titles and
snippets shown as Unicode (``bot.render_math``), dates spelled out, and the 78-column wrapping of
the plain-text part.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from bot.models import DAYS, Digest, Match, Paper
from bot.render_math import readable, readable_marked
from bot.text import distinct_phrases, fold
from bot.urls import safe_http_url

TEXT_WIDTH = 78
TITLE_IN_SUBJECT = 60
SNIPPET_MAX = 480
FALLBACK_SENTENCES = 2
MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
REASON_LABELS = {
    "keyword": "Topic",
    "author": "Author",
    "like": "Similar to",
    "category": "Category",
    "description": "Your description",
    "alert": "Alert",
}
_QUOTED = {REASON_LABELS["keyword"], REASON_LABELS["alert"]}
"""Chips whose detail is a phrase of the profile, quoted in the plain text."""
_SAID = {*REASON_LABELS.values(), "Categories"}
"""Chips the plain text names in lower case before their detail; others stay as they are."""
_WHERE_NOTES = (
    *(" (title)", " (both words)", " (all its words)"),
    *(" (one of its words)", " (some of its words)"),
)
"""The notes after a phrase saying where it was found (see ``bot.matching.reasons``)."""
_WHITESPACE = re.compile(r"\s+")
_LIST_ITEM = re.compile(r"\s*(?:[-*•]\s+|\d+\.\s+)?")
"""The indent and bullet that wrapped lines of a list item hang under."""
_WIDE_CHARS = (
    "\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
    "\U0001f300-\U0001f64f\U0001f900-\U0001f9ff\U00020000-\U0003fffd"
)
"""Characters a terminal shows two columns wide: East Asian scripts, full-width forms, emoji."""
_WIDE = re.compile(f"[{_WIDE_CHARS}]")
_CLOSING = (
    "\u3001\u3002\u3009\u300b\u300d\u300f\u3011\u3015\u3017\u3019\u301f\uff01\uff09\uff0c"
    "\uff0e\uff1a\uff1b\uff1f\uff3d\uff5d\uff60\u201d\u2019\u2025\u2026\u30fc"
    "\u3041\u3043\u3045\u3047\u3049\u3063\u3083\u3085\u3087\u308e"
    "\u30a1\u30a3\u30a5\u30a7\u30a9\u30c3\u30e3\u30e5\u30e7\u30ee\u30f5\u30f6"
)
"""What no line may start with: closing brackets and quotes, commas, full stops and other
closing punctuation (ideographic and full-width; ASCII too after a wide character), ellipses,
the long vowel mark and small kana."""
_UNIT = re.compile(
    rf"[A-Za-z][A-Za-z0-9+.-]*://[^\s{_CLOSING}{_WIDE_CHARS}]+[{_CLOSING}]*| "
    rf"|[{_WIDE_CHARS}][{_CLOSING})\]}}.,;:!?]*|[^ {_WIDE_CHARS}]+[{_CLOSING}]*"
)
"""A piece a line may be broken before: a link (up to a space or a wide character), a space, a
wide character, or a run of other characters, with the closing punctuation that follows it."""
_LAST_LINK = re.compile(r"(?<!\S)[A-Za-z][A-Za-z0-9+.-]*://\S+\Z")
"""A link that is a word of its own and ends its line, as the templates write links: it is
kept whole up to the line's end, wide characters of an IRI (``https://例子.中国/项目``)
included, so that a reader's mail program still finds all of it."""
_NOT_SINGLE_SPACED = re.compile(r"[^\S ]|\S  ")
"""Whitespace other than spaces (tabs, no-break spaces), or two spaces in a row after a word."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


@dataclass(frozen=True)
class Chip:
    """One reason a paper was picked: a short label (``Topic``) and the detail."""

    label: str
    value: str

    def __str__(self) -> str:
        return f"{self.label}: {self.value}" if self.label else self.value

    @property
    def said(self) -> str:
        """The reason as the plain text says it in a sentence, named as the chip names it:
        ``topic “sparse experts” (both words)``, ``author Noam Shazeer``, ``categories cs.CL,
        cs.LG``, ``your description (routing, load)``."""
        if self.label in _QUOTED:
            where = next((note for note in _WHERE_NOTES if self.value.endswith(note)), "")
            return f"{self.label.lower()} “{self.value.removesuffix(where)}”{where}"
        if self.label == REASON_LABELS["description"]:
            return f"{self.label.lower()} ({self.value})"
        if self.label in _SAID:
            return f"{self.label.lower()} {self.value}"
        return str(self)


@dataclass(frozen=True)
class Link:
    """A labelled, checked http(s) link."""

    label: str
    url: str


@dataclass(frozen=True)
class PaperView:
    """One paper as the templates show it."""

    id: str
    title: str
    url: str | None
    authors: str
    chips: tuple[Chip, ...]
    snippet: tuple[tuple[str, bool], ...]
    """The snippet as pieces of text, each marked (a matched term) or not; none empty."""
    snippet_text: str
    links: tuple[Link, ...]
    upvotes: int | None

    @property
    def why(self) -> str:
        """Why it was picked, as the plain text says it: its reasons in a row."""
        return "; ".join(chip.said for chip in self.chips)

    @property
    def votes(self) -> str:
        """``12 upvotes``, ``1 upvote``; empty without upvotes."""
        count = self.upvotes
        return f"{count} upvote{'' if count == 1 else 's'}" if count else ""


@dataclass(frozen=True)
class MoreView:
    """A paper listed only by title under "more matches"."""

    title: str
    url: str | None
    why: str = ""
    """Why it was picked, for a pick listed by title only; what else it matches, in an alert."""


@dataclass(frozen=True)
class MoreGroup:
    """Further matches listed by title together, under a heading unless it is empty."""

    heading: str
    items: list[MoreView]


def one_line(text: str) -> str:
    """Collapse runs of whitespace (newlines included) to single spaces."""
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text  # the only whitespace a printable text may hold is single spaces inside
    return _WHITESPACE.sub(" ", text).strip()


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL without spaces or quotes, else ``None``."""
    if not url:
        return None
    url = url.strip()
    return safe_http_url(url)


def short_authors(authors: tuple[str, ...]) -> str:
    """Authors joined; lists of six or more become ``first, second, third … last (40
    authors)`` (five are all named: leaving out one would save no room)."""
    names = [one_line(a) for a in authors if a.strip()]
    if len(names) <= 5:
        return ", ".join(names)
    return f"{', '.join(names[:3])} … {names[-1]} ({len(names)} authors)"


def short_title(title: str, limit: int = TITLE_IN_SUBJECT) -> str:
    """The title on one line, cut at a word boundary with an ellipsis when longer than ``limit``."""
    title = one_line(title)
    if len(title) <= limit:
        return title
    head = title[:limit]
    cut = head.rsplit(" ", 1)[0] if " " in head else head[: limit - 1]
    return cut.rstrip(" ,;:-") + "…"


def chip(reason: str) -> Chip:
    """``"keyword: sparse experts (title)"`` -> ``Chip("Topic", "sparse experts (title)")``."""
    kind, sep, rest = one_line(reason).partition(": ")
    if not sep or " " in kind:
        return Chip("", one_line(reason))
    if kind.lower() == "like":
        rest = readable(re.sub(r"^similar to\s+", "", rest, flags=re.IGNORECASE))
    return Chip(REASON_LABELS.get(kind.lower(), kind.capitalize()), rest)


def chips(reasons: Sequence[str]) -> tuple[Chip, ...]:
    """The chips of a pick's reasons; its categories in one (``Categories: cs.CL, cs.LG``)."""
    made = [chip(r) for r in reasons if r.strip()]
    categories = [c.value for c in made if c.label == REASON_LABELS["category"]]
    if len(categories) < 2:
        return tuple(made)
    first = next(i for i, c in enumerate(made) if c.label == REASON_LABELS["category"])
    rest = [c for c in made if c.label != REASON_LABELS["category"]]
    return (*rest[:first], Chip("Categories", ", ".join(categories)), *rest[first:])


def fallback_snippet(abstract: str) -> str:
    """The first two sentences of the abstract, kept short (its LaTeX not converted yet)."""
    sentences = _SENTENCE_END.split(one_line(abstract))
    return " ".join(sentences[:FALLBACK_SENTENCES])


def _clip(text: str, marks: tuple[tuple[int, int], ...]) -> tuple[str, list[tuple[int, int]]]:
    """Keep ``text`` under SNIPPET_MAX characters; drop marks outside it, merge overlapping ones."""
    shown = len(text)  # characters of the text itself (a mark never takes in the "…")
    if len(text) > SNIPPET_MAX:
        cut = text[:SNIPPET_MAX].rsplit(" ", 1)[0].rstrip(" ,;:")
        text, shown = cut + "…", len(cut)
    kept: list[tuple[int, int]] = []
    for start, end in sorted(marks):
        start, end = max(start, 0), min(end, shown)
        if start >= end:
            continue
        if kept and start <= kept[-1][1]:
            kept[-1] = (kept[-1][0], max(end, kept[-1][1]))
        else:
            kept.append((start, end))
    return text, kept


def highlight(match: Match) -> tuple[tuple[tuple[str, bool], ...], str]:
    """The snippet as pieces, matched terms marked (shown in ``<strong>``), and as text with
    ``*terms*``; its LaTeX shown as Unicode, the marks moved with their words."""
    if match.snippet.strip():
        text, marks = _clip(*readable_marked(match.snippet, match.marks))
    else:
        text, marks = _clip(readable(fallback_snippet(match.paper.abstract)), ())
    pieces: list[tuple[str, bool]] = []
    plain: list[str] = []
    pos = 0
    for start, end in marks:
        pieces += [(text[pos:start], False), (text[start:end], True)]
        plain += [text[pos:start], f"*{text[start:end]}*"]
        pos = end
    pieces.append((text[pos:], False))
    plain.append(text[pos:])
    return tuple(piece for piece in pieces if piece[0]), one_line("".join(plain))


def links(paper: Paper) -> tuple[Link, ...]:
    """The paper's checked links, each URL at most once."""
    candidates = [
        ("Abstract", paper.url),
        ("PDF", paper.pdf_url),
        ("Hugging Face", paper.hf_url),
        ("Code", paper.code_url),
        ("Project page", paper.project_url),
    ]
    seen: set[str] = set()
    found: list[Link] = []
    for label, url in candidates:
        checked = safe_url(url)
        if checked and checked not in seen:
            seen.add(checked)
            found.append(Link(label, checked))
    return tuple(found)


def paper_view(match: Match) -> PaperView:
    """Everything the templates need about one picked paper."""
    paper = match.paper
    snippet, snippet_text = highlight(match)
    paper_links = links(paper)
    return PaperView(
        id=paper.id,
        title=readable(one_line(paper.title)) or paper.id,
        url=paper_links[0].url if paper_links else None,
        authors=short_authors(paper.authors),
        chips=chips(match.reasons),
        snippet=snippet,
        snippet_text=snippet_text,
        links=paper_links,
        upvotes=paper.upvotes if paper.upvotes and paper.upvotes > 0 else None,
    )


def more_view(paper: Paper) -> MoreView:
    """A paper that matched but did not fit: its title and first checked link."""
    paper_links = links(paper)
    return MoreView(readable(one_line(paper.title)), paper_links[0].url if paper_links else None)


_TITLES = {"dr", "prof", "professor", "mr", "mrs", "ms", "mx", "miss", "sir", "dame"}
_SUFFIXES = {
    *("jr", "sr", "ii", "iii", "iv", "esq"),
    *("phd", "dphil", "md", "dsc", "msc", "bsc", "mba", "mphil", "llb", "llm", "dds", "rn"),
}
_NOT_GIVEN = {
    *("university", "college", "institute", "school", "lab", "laboratory", "department"),
    *("group", "team", "inc", "ltd", "llc", "gmbh", "corp", "company", "foundation"),
    *("captain", "director", "professor", "lecturer", "student", "engineer", "editor"),
    *("senior", "research", "researcher", "scientist", "fellow", "postdoc", "manager"),
}
"""Words of a part after a comma that name a role or a place of work, not a given name."""
_PARTICLES = {
    *("van", "von", "der", "den", "de", "del", "della", "di", "da", "das", "dos", "do", "du"),
    *("la", "le", "les", "ter", "ten", "st", "saint", "bin", "ibn", "al", "el"),
}
"""Words of a family name that come before its name proper (``Le Guin``, ``De la Cruz``)."""
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb()"
_INITIALS = re.compile(r"(?:\w\.?-?)+", re.UNICODE)


def first_name(name: str | None, email: str = "") -> str:
    """The name to greet: the first word that is not a title (``Dr. Jane Q. Public`` → Jane),
    after the comma of ``Lovelace, Ada`` or ``van der Berg, Anna`` (not of ``Ada Lovelace, PhD``,
    ``Alan Turing, OBE`` or ``Jane Smith, University of Oxford``), without quotes; the whole
    name when it starts with initials (``J. R. R. Tolkien``). Two names before the comma and
    one after it (``García Márquez, Gabriel``, ``Jane Smith, Oxford``) are read by the
    candidate the address ``email`` spells (``gabriel.garcia@…``, ``jane@…``); when it spells
    neither, nobody is greeted by name: a wrong guess greets a family name or a place."""
    family, *rest = [part.strip() for part in one_line(name or "").split(",")]
    given = [part for part in rest if part and not _is_suffix(part, family)]
    reversed_ = _family_first(family, given[0], email) if given else False
    if reversed_ is None:
        reversed_ = _spelled_by(email, given[0], family)
        if reversed_ is None:
            return ""
    text = f"{given[0]} {family}" if reversed_ else family  # given names first
    words = [w for w in (w.strip(_QUOTES) for w in text.split()) if w]
    named = list(itertools.dropwhile(lambda w: w.rstrip(".").lower() in _TITLES, words))
    if not named:
        return " ".join(words)
    return " ".join(named) if _is_initials(named[0]) else named[0]


def _family_first(family: str, given: str, email: str) -> bool | None:
    """Whether a name written with a comma puts the family name first (``Lovelace, Ada``,
    ``Le Guin, Ursula``): the part after the comma reads as given names (one or two words in
    capitals, none naming a role or a place of work), and the part before it as a family name
    (one word besides titles and particles). After ``Jane Smith`` a comma brings ``University
    of Oxford`` or ``Captain``, not a given name. After a family name alone come given names,
    however many (``Lovelace, Ada Augusta King``), unless more than two follow a word that the
    address spells and not the first of them: ``Jane, Chief Technology Officer`` from
    ``jane@…`` is a given name and a role. None when the part before the comma has two or three
    such words and one or two follow it: ``García Márquez, Gabriel`` reads like ``Jane Smith,
    Oxford``. Given names written otherwise (``Lovelace, ada``, ``Lovelace, Ada
    (Countess)``), or more than two after two family names, come first when the address
    ``email`` spells them (``ada@…``)."""
    names = [w for w in family.split() if w.rstrip(".").lower() not in _TITLES]
    named = [w for w in names if not w.islower()]
    words = given.split()
    if not (0 < len(named) <= 3 and words) or any(
        w.strip(_QUOTES).rstrip(".").lower() in _NOT_GIVEN for w in words
    ):
        return False
    capitals = all(w[0].isupper() for w in words)
    surnames = [w for w in named if w.rstrip(".").lower() not in _PARTICLES]
    if capitals and len(surnames) <= 1:
        return len(words) <= 2 or _spelled_by(email, given, family) is not False
    return None if capitals and len(words) <= 2 else _spelled_by(email, given, family) is True


def _spelled_by(email: str, given: str, family: str) -> bool | None:
    """Whether the local part of ``email`` spells the first word after the comma, or its
    initial beside a word before it (``g.garcia@``, ``mlopez@``: True), else the first word
    before it (False), accents aside; None for neither. The initial comes first: a family name
    is what addresses spell most, so ``garcia`` beside ``g`` says ``García`` is not greeted."""
    local = fold(email.rpartition("@")[0] if "@" in email else email)
    pieces = set(re.split(r"[^a-z0-9]+", local))
    joined = re.sub(r"[^a-z0-9]+", "", local)
    first = (_plain_words(given) or [""])[0]
    before = _plain_words(family)

    def spelled(word: str) -> bool:
        return bool(word) and (word in pieces or (len(word) >= 3 and joined.startswith(word)))

    def initialled(word: str) -> bool:
        forms = {first[:1] + word, word + first[:1]}
        return {first[:1], word} <= pieces or not forms.isdisjoint(pieces | {joined})

    if spelled(first) or (first and any(initialled(w) for w in before if len(w) > 1)):
        return True  # a place or a role after the comma is seldom part of an address
    return False if before and spelled(before[0]) else None


def _plain_words(text: str) -> list[str]:
    """The words of ``text`` but titles, folded to letters and digits (``García`` → ``garcia``)."""
    words = [fold(w) for w in text.split() if w.rstrip(".").lower() not in _TITLES]
    return [plain for w in words if (plain := re.sub(r"[^a-z0-9]+", "", w))]


def _is_suffix(text: str, family: str) -> bool:
    """Whether a part of a name between commas is a suffix, degrees or honours (``Jr.``,
    ``PhD MD``, ``OBE``, ``O.C.``): known ones, or letters in capitals after a name that is
    not itself written in capitals."""
    capitals = not family.isupper()
    return all(
        (bare := w.replace(".", "")).lower() in _SUFFIXES
        or (capitals and bare.isupper() and bare.isalpha() and 2 <= len(bare) <= 5)
        for w in text.split()
    )


def _is_initials(word: str) -> bool:
    """Whether ``word`` is initials (``J.``, ``J.R.R.``, ``J.-P.``), not a name to greet."""
    return (
        "." in word
        and len(word.replace(".", "").replace("-", "")) <= 3
        and bool(_INITIALS.fullmatch(word))
    )


def long_date(day: date, short: bool = False) -> str:
    """``Tuesday 26 November 2024``, or ``Tue 26 Nov`` when ``short`` (English, locale-free)."""
    if short:
        return f"{DAYS[day.weekday()][:3]} {day.day} {MONTHS[day.month - 1][:3]}"
    return f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def topics_of(digest: Digest) -> list[str]:
    """The subscriber's topics: those the digest names, else keywords, authors and categories."""
    if digest.topics and digest.kind != "alert":
        return [one_line(t) for t in digest.topics if t.strip()]
    interests = digest.subscriber.interests
    keywords = distinct_phrases(interests.keywords)
    return [one_line(t) for t in (*keywords, *interests.authors, *interests.categories)]


def _wrap_line(line: str) -> list[str]:
    wide = _wide(line)
    if not wide and (len(line) <= TEXT_WIDTH or " " not in line.strip()):
        return [line]
    lead = _LIST_ITEM.match(line)
    indent = " " * len(lead.group(0)) if lead else ""
    if wide:
        return _wrap_wide(line, indent)
    wrapped = None if _NOT_SINGLE_SPACED.search(line) else _wrap_words(line, indent)
    if wrapped is not None:
        return wrapped
    return textwrap.wrap(
        line,
        width=TEXT_WIDTH,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _wrap_words(line: str, indent: str) -> list[str] | None:
    """What ``_wrap_line``'s ``textwrap.wrap`` gives for words between single spaces after the
    line's own indent (most lines), cutting at the last space that fits instead of adding up
    words one by one; None for the odd case of a first word too long to follow the indent."""
    out: list[str] = []
    rest = line
    start = len(line) - len(line.lstrip(" "))  # the first line keeps its indent: no cut in it
    while True:
        prefix = indent if out else ""
        room = TEXT_WIDTH - len(prefix)
        if len(rest) <= room:
            out.append(prefix + rest)
            return out
        cut = rest.rfind(" ", start, room + 1)
        if cut < 0:  # a word longer than the line goes on a line of its own, whole
            if start:
                return None
            cut = rest.find(" ")
            if cut < 0:
                out.append(prefix + rest)
                return out
        out.append(prefix + rest[:cut])
        rest, start = rest[cut + 1 :], 0


def _columns(text: str) -> int:
    """How many columns ``text`` takes in a terminal: wide (East Asian) characters take two."""
    return len(text) + len(_WIDE.findall(text))


def _wide(line: str) -> bool:
    """Whether ``line`` holds a wide character."""
    return not line.isascii() and _WIDE.search(line) is not None


def _wrap_wide(line: str, indent: str) -> list[str]:
    """A line with wide characters wrapped at 78 columns, counting two for each of them."""
    lines: list[str] = []
    current = line[: len(line) - len(line.lstrip(" "))]  # the first line keeps its indent
    width = len(current)
    last = _LAST_LINK.search(line, len(current))
    end = last.start() if last else len(line)
    for unit in [*_UNIT.findall(line[len(current) : end]), *([last.group()] if last else [])]:
        if unit == " ":
            if current.strip():
                current, width = current + " ", width + 1
            continue
        columns = _columns(unit)
        if width + columns > TEXT_WIDTH and current.strip():
            lines.append(current.rstrip())
            current, width = indent, len(indent)
        current, width = current + unit, width + columns
    lines.append(current.rstrip())
    return lines


def wrap_lines(text: str) -> str:
    """Wrap every line at 78 columns, keeping blank lines.

    Wrapping the result again changes nothing: a block of text can be wrapped once and then
    reused inside many messages.
    """
    out: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if len(line) <= TEXT_WIDTH and not (_wide(line) and _columns(line) > TEXT_WIDTH):
            out.append(line)  # most lines: nothing to do
        else:
            out.extend(_wrap_line(line))
    return "\n".join(out) + "\n" if out else ""


def wrap_text(text: str) -> str:
    """Wrap every line at 78 columns, hanging list items; a lone long word (a URL) stays whole."""
    return finish_text(wrap_lines(text))


def finish_text(wrapped: str) -> str:
    """Wrapped text with runs of blank lines made one, and no blank lines at either end."""
    while "\n\n\n" in wrapped:  # str.replace is many times quicker than a regex here
        wrapped = wrapped.replace("\n\n\n", "\n\n")
    return wrapped.strip("\n") + "\n"
