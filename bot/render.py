"""Digest -> subject, HTML and plain text, through the Jinja2 templates in ``templates/``.

Pure: no network, no database, no clock. The HTML is a table layout whose CSS (``email.css``) is
inlined by css-inline at render time; only ``@media`` rules (narrow screens, dark mode) stay in a
``<style>`` block. The plain-text twin carries the same content, wrapped at 78 columns.

Titles and snippets show their LaTeX math as Unicode (``bot.render_math``): the views are cached,
and so is what each title or snippet converts to, so a subject's title is not parsed again.

Many subscribers get the same paper with the same reasons, so each paper card is made once and
kept in a bounded LRU cache, as is its plain-text block. No selector in ``email.css`` looks past a
card's own elements, so a card inlined alone (css-inline's fragment mode) gets the same styles.
The shell around the cards is inlined once per layout (see ``bot.render_layouts``), and so is a
card: cards differing only in their strings (a snippet is passed as pieces of text, marked or
not, the rank and the upvotes as text) share a layout. The plain-text shell is filled into a
layout of its own the same way, with nothing to inline or escape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup

from bot.alerts import rules_named
from bot.mime import quoted_printable
from bot.models import Digest, Match, Paper, weekly_day
from bot.render_alerts import UNGROUPED, Groups, alert_subject, quoted_names, rule_groups
from bot.render_layouts import Layouts
from bot.render_math import readable
from bot.render_views import (
    MoreView,
    PaperView,
    finish_text,
    first_name,
    long_date,
    more_view,
    one_line,
    paper_view,
    safe_url,
    short_title,
    topics_of,
    wrap_lines,
    wrap_text,
)
from bot.text import plural
from bot.urls import unsafe_in_link

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HTML_BUDGET = 100_000
"""Largest HTML part in bytes as sent (quoted-printable): Gmail clips a message whose HTML
passes 102 KB, and the footer with the unsubscribe link goes first."""
CHARSET = '<meta charset="utf-8">'
TOPICS_SHOWN = 5
"""Most of the subscriber's topics named under a digest's heading; the rest are counted."""
MORE_LISTED = 25
"""Most further matches listed by title under "N more matches"; the rest are only counted."""
CACHE_SIZE = 16_384
"""Papers (and paper cards, text blocks) each renderer keeps ready for the next message. A day
of 1,000 papers makes tens of thousands of different cards (one paper, picked for different
reasons); the caches of a renderer (each compose worker has one) then hold about 60 MB."""
LAYOUTS = 512
"""Inlined shell layouts each renderer keeps (one per kind of message and shape of its lists)."""
CARDS_SLOT = "<!--paperbot:cards-->"
"""Where the inlined paper cards go in the inlined shell of an HTML message."""
BLOCKS_SLOT = "<!--paperbot:blocks-->\n"
"""Where the wrapped paper blocks go in the plain text, on a line of its own."""
_WRAPPER = re.compile(r"\A<table[^>]*><tbody>(.*)</tbody></table>\Z", re.DOTALL)


@dataclass(frozen=True)
class EmailContext:
    """Per-message facts from the settings, shown in the footer."""

    sender_name: str
    contact: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    postal_address: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A rendered message: one-line subject, HTML part and plain-text part."""

    subject: str
    html: str
    text: str


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html.j2", ".html"))


def make_environment(templates_dir: Path) -> Environment:
    """The Jinja2 environment: HTML templates autoescaped, undefined names an error."""
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["plural"] = plural
    return env


def cadence(frequency: str) -> str:
    """How often digests come, as the footer says it: ``a daily digest``, ``a weekday digest``,
    ``a weekly digest (Mondays)``."""
    if frequency == "weekdays":
        return "a weekday digest"
    day = weekly_day(frequency)
    return f"a weekly digest ({day}s)" if day else f"a {frequency} digest"


def subject_for(digest: Digest) -> str:
    """The subject line: how many papers and the best one; for alerts, the rules that fired
    and the papers (counted with those listed by title) as ``alert_subject`` says them."""
    day = long_date(digest.date, short=True)
    if digest.kind == "empty" or not digest.matches:
        span = "in the week to" if weekly_day(digest.subscriber.frequency) else "on"
        return f"Nothing {'new ' if digest.earlier else ''}matched your interests {span} {day}"
    count = len(digest.matches)
    if digest.kind == "alert":
        first = digest.matches[0].paper
        title = readable(one_line(first.title)) or first.id
        named = [name for name in digest.topics if name.strip()]
        others = rules_named(digest.subscriber, named) - rules_named(digest.subscriber, named[:1])
        return alert_subject(digest.topics, count + digest.more_count, title, others)
    best = short_title(readable(one_line(digest.matches[0].paper.title)))
    span = "the week to " if weekly_day(digest.subscriber.frequency) else ""
    return f"{plural(count, 'paper')} for {span}{day}: {best}"


def _mailto(address: str | None) -> str | None:
    address = (address or "").strip().removeprefix("mailto:")
    if not EMAIL_ADDRESS.fullmatch(address.split("?", 1)[0]):
        return None
    return safe_mailto(address)


def safe_mailto(address: str) -> str | None:
    """``mailto:`` link for an address (optionally with ``?subject=...``), or ``None``."""
    if unsafe_in_link(address):
        return None
    return f"mailto:{address}"


def unsubscribe_link(ctx: EmailContext) -> str | None:
    """The https unsubscribe link when there is one, else the mailto one."""
    return safe_url(ctx.unsubscribe_url) or _mailto(ctx.unsubscribe_mailto)


def contact_link(contact: str | None) -> str | None:
    """A link for the contact: mailto for an address, the URL itself for an http(s) URL."""
    return _mailto(contact) or safe_url(contact)


def compact_css(css: str) -> str:
    """CSS without comments and needless whitespace (the @media rules are sent as they are)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    css = re.sub(r"\s+", " ", css)
    return re.sub(r"\s*([{};:,>])\s*", r"\1", css).strip()


class Renderer:
    """Renders digests; build once and reuse (templates, the CSS inliner and caches are shared)."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        """Load templates from ``templates_dir`` (default: the repository's ``templates/``)."""
        self.templates_dir = templates_dir or TEMPLATES_DIR
        self.env = make_environment(self.templates_dir)
        self._css = compact_css((self.templates_dir / "email.css").read_text(encoding="utf-8"))
        self._inliner = css_inline.CSSInliner(
            load_remote_stylesheets=False, minify_css=True, keep_at_rules=True, extra_css=self._css
        )
        self._fragments = css_inline.CSSInliner(
            load_remote_stylesheets=False, minify_css=True, keep_at_rules=False
        )
        self._view: Callable[[Paper, tuple[str, ...], str, tuple[tuple[int, int], ...]], PaperView]
        self._view = lru_cache(CACHE_SIZE)(_view)
        self._more: Callable[[Paper], MoreView] = lru_cache(CACHE_SIZE)(more_view)
        self._card: Callable[[PaperView, int, bool, str], str]
        self._card = lru_cache(CACHE_SIZE)(self._make_card)
        self._block: Callable[[PaperView, int, str], str] = lru_cache(CACHE_SIZE)(self._make_block)
        self._heading: Callable[[str, str], str] = lru_cache(LAYOUTS)(self._make_heading)
        self._layouts = Layouts(self._inline_page, self._css, LAYOUTS)
        self._card_layouts = Layouts(self._inline_card, self._css, LAYOUTS)
        self._text_layouts = Layouts(None, "", LAYOUTS)

    def render(self, digest: Digest, ctx: EmailContext) -> Rendered:
        """Render one message for ``digest``; the HTML is kept under ``HTML_BUDGET`` bytes."""
        digest = listed_only(digest)
        kind = template_kind(digest)
        values = self._context(digest, ctx, kind)
        papers = [self._view(m.paper, m.reasons, m.snippet, m.marks) for m in digest.matches]
        groups = rule_groups(digest)
        more = [self._more(paper) for paper in digest.more]
        if groups.more_also:
            more = [
                replace(m, why=why) if why else m
                for m, why in zip(more, groups.more_also, strict=True)
            ]
        html = self._html(kind, values, papers, more, digest.unlisted, groups)
        ranked = len(papers) > 1  # a lone pick is not numbered (nor is its card)
        blocks = "".join(
            self._heading("txt", head) + self._block(p, rank if ranked else 0, why)
            for rank, p, head, why in groups.picks(papers)
        )
        listing = _listing(papers, [], more, digest.unlisted, groups) | {"blocks": BLOCKS_SLOT}
        text = self._text_layouts.inline(self._template(kind, "txt").render, values | listing)
        return Rendered(subject=str(values["subject"]), html=html, text=_text(text, blocks))

    def _html(
        self,
        kind: str,
        values: dict[str, object],
        papers: list[PaperView],
        more: list[MoreView],
        unlisted: int,
        groups: Groups,
    ) -> str:
        """The shell inlined, the cached cards (and their rules' headings) put in its slot; the
        lowest picks move to the compact list while the HTML is over budget."""
        shown = len(papers)
        while True:
            listing = _listing(papers[:shown], papers[shown:], more, unlisted, groups)
            context = values | listing | {"cards": Markup(CARDS_SLOT)}
            shell = self._layouts.inline(self._template(kind, "html").render, context)
            cards = (
                self._heading("html", head) + self._card(p, rank, shown > 1, why)
                for rank, p, head, why in groups.picks(papers[:shown])
            )
            html = shell.replace(CARDS_SLOT, "".join(cards), 1)
            size = sent_size(html)
            if size <= HTML_BUDGET or shown <= 1:
                return html
            # Move the lowest picks into the compact list, in proportion to the excess.
            shown = max(1, min(shown - 1, int(shown * HTML_BUDGET * 0.95 / size)))

    def _inline_page(self, html: str) -> str:
        """A whole message with its CSS inlined, its charset declared first in ``<head>``: the
        inliner puts the ``<style>`` it keeps there, and a browser opening the file looks for
        the charset in its first 1024 bytes only."""
        inlined = self._inliner.inline(html)
        head = inlined.find("<head>")
        if head < 0 or CHARSET not in inlined:
            return inlined
        start = head + len("<head>")
        rest = inlined[start:].replace(CHARSET, "", 1)
        return inlined[:start] + CHARSET + rest

    def _make_card(self, paper: PaperView, rank: int, show_rank: bool, also: str = "") -> str:
        """One paper card with its CSS inlined, filled into its kept layout when there is one
        (the rank is a string there, so that cards differing only in it share a layout);
        ``also`` says which other alert rules the paper matches."""
        context = {"p": paper, "rank": str(rank), "show_rank": show_rank, "also": also}
        return self._card_layouts.inline(self._render_card, context)

    def _render_card(self, context: Mapping[str, object]) -> str:
        card = self._macro("html", "paper_card")
        return str(card(context["p"], context["rank"], context["show_rank"], context["also"]))

    def _inline_card(self, card: str) -> str:
        """A card with its CSS inlined (in a table, as in the message, then unwrapped)."""
        inlined = self._fragments.inline_fragment(f"<table>{card}</table>", self._css)
        found = _WRAPPER.match(inlined)
        if found is None:
            raise ValueError("css-inline returned an unexpected paper card fragment")
        return found.group(1)

    def _make_block(self, paper: PaperView, rank: int, also: str = "") -> str:
        """One paper's plain-text block, already wrapped; numbered unless ``rank`` is 0."""
        return wrap_lines(str(self._macro("txt", "paper_block")(paper, rank, also)))

    def _make_heading(self, part: str, heading: str) -> str:
        """The heading of an alert rule's papers, before the first of them: a row of the HTML
        with its CSS inlined (``part`` "html"), or wrapped lines of the plain text; nothing
        for no heading."""
        if not heading:
            return ""
        made = str(self._macro(part, "rule_heading")(heading))
        return self._inline_card(made) if part == "html" else wrap_lines(made)

    def _macro(self, part: str, name: str) -> Callable[..., str]:
        macro: Callable[..., str] = getattr(self.env.get_template(f"macros.{part}.j2").module, name)
        return macro

    def _template(self, kind: str, part: str) -> Template:
        return self.env.get_template(f"{kind}.{part}.j2")

    def _context(self, digest: Digest, ctx: EmailContext, kind: str) -> dict[str, object]:
        """What every template of one message sees, besides the papers."""
        sub = digest.subscriber
        trigger = one_line(", ".join(digest.topics)) if digest.kind == "alert" else ""
        topics = topics_of(digest)
        return {
            "kind": kind,
            "ctx": ctx,
            "subject": one_line(subject_for(digest)),
            "subscriber": sub,
            "cadence": cadence(sub.frequency),
            "weekly": weekly_day(sub.frequency) is not None,
            "first_name": first_name(sub.name, sub.email),
            "date_long": long_date(digest.date),
            "earlier": digest.earlier,
            "topics": topics[:TOPICS_SHOWN],
            "topics_more": str(len(topics) - TOPICS_SHOWN) if len(topics) > TOPICS_SHOWN else "",
            "trigger": trigger,
            "rules": quoted_names(digest.topics) if digest.kind == "alert" else "",
            "several": digest.kind == "alert" and len(digest.topics) > 1,
            "unsubscribe": unsubscribe_link(ctx),
            "contact_href": contact_link(ctx.contact),
            "contact_text": one_line(ctx.contact or ""),
        }


def _view(
    paper: Paper, reasons: tuple[str, ...], snippet: str, marks: tuple[tuple[int, int], ...]
) -> PaperView:
    """The view of a pick from what it shows (its score does not matter, so views are shared)."""
    return paper_view(Match(paper, 0.0, reasons, snippet, marks))


def _text(text: str, blocks: str) -> str:
    """The plain text wrapped, with the paper blocks in their slot.

    The blocks are wrapped already (and wrapping is line by line and leaves wrapped lines as they
    are), so only the rest is wrapped here when the slot is a line of its own.
    """
    if text.startswith(BLOCKS_SLOT) or f"\n{BLOCKS_SLOT}" in text:
        return finish_text(wrap_lines(text).replace(BLOCKS_SLOT, blocks, 1))
    return wrap_text(text.replace(BLOCKS_SLOT, blocks, 1))


def template_kind(digest: Digest) -> str:
    """Which templates render ``digest``: a digest or alert without papers is a "nothing" note."""
    return digest.kind if digest.matches else "empty"


def sent_size(html: str) -> int:
    """The HTML part's size as sent, in quoted-printable, where it can matter for the budget.

    Encoding costs more than the rest of a check, so a part of fewer than ``HTML_BUDGET / 5``
    characters is taken as it is: to pass the budget once encoded (markup grows by about 10%,
    a character outside ASCII to up to 12 bytes) more than half of it would have to be Chinese
    or Japanese text.
    """
    if 5 * len(html) <= HTML_BUDGET:
        return len(html)
    data = len(html.encode("utf-8"))
    return len(quoted_printable(html)) if 3.2 * data > HTML_BUDGET else data


def _listing(
    papers: Sequence[PaperView],
    overflow: Sequence[PaperView],
    more: Sequence[MoreView],
    unlisted: int,
    groups: Groups | None = None,
) -> dict[str, object]:
    """The picks shown in full, the picks that did not fit (listed by title with why they were
    picked), and the further matches: ``more`` listed (under the headings of ``groups``, in an
    alert), ``unlisted`` only counted."""
    return {
        "papers": papers,
        "picked": len(papers) + len(overflow),
        "overflow": [MoreView(p.title, p.url, "; ".join(map(str, p.chips))) for p in overflow],
        "more": list(more),
        "more_groups": (groups or UNGROUPED).more(more),
        "more_count": len(more) + unlisted,
        "more_unlisted": unlisted,
    }


def listed_only(digest: Digest) -> Digest:
    """``digest`` with only the further matches a message lists (``MORE_LISTED``), the others
    counted in ``unlisted``."""
    if len(digest.more) <= MORE_LISTED:
        return digest
    unlisted = digest.unlisted + len(digest.more) - MORE_LISTED
    return replace(digest, more=digest.more[:MORE_LISTED], unlisted=unlisted)
