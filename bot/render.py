"""Digest -> subject, HTML and plain text, through the Jinja2 templates in ``templates/``.

Pure: no network, no database, no clock. The HTML is a table layout whose CSS (``email.css``) is
inlined by css-inline at render time; only ``@media`` rules (narrow screens, dark mode) stay in a
``<style>`` block. The plain-text twin carries the same content, wrapped at 78 columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from bot.models import Digest
from bot.render_views import (
    MoreView,
    PaperView,
    long_date,
    more_view,
    paper_view,
    safe_url,
    short_title,
    topics_of,
    wrap_text,
)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HTML_BUDGET = 100_000
"""Largest HTML part in bytes: Gmail clips a message whose HTML passes 102 KB."""
MORE_LISTED = 25
"""Most further matches listed by title under "N more matches"; the rest are only counted."""


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


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``3 papers``, ``1 paper``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def subject_for(digest: Digest, trigger: str) -> str:
    """The subject line: how many papers and the best one; the trigger for alerts."""
    day = long_date(digest.date, short=True)
    if digest.kind == "empty" or not digest.matches:
        return f"Nothing matched your interests on {day}"
    best = short_title(digest.matches[0].paper.title)
    count = len(digest.matches)
    if digest.kind == "alert":
        tail = f" (+{count - 1} more)" if count > 1 else ""
        return f"Alert for {trigger}: {best}{tail}" if trigger else f"Alert: {best}{tail}"
    return f"{plural(count, 'paper')} for {day}: {best}"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _mailto(address: str | None) -> str | None:
    address = (address or "").strip().removeprefix("mailto:")
    if not EMAIL_ADDRESS.fullmatch(address.split("?", 1)[0]):
        return None
    return safe_mailto(address)


def safe_mailto(address: str) -> str | None:
    """``mailto:`` link for an address (optionally with ``?subject=...``), or ``None``."""
    if re.search(r"[\x00-\x20\x7f\"'<>\\`]", address):
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
    """Renders digests; build once and reuse (the environment and CSS inliner are shared)."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        """Load templates from ``templates_dir`` (default: the repository's ``templates/``)."""
        self.templates_dir = templates_dir or TEMPLATES_DIR
        self.env = make_environment(self.templates_dir)
        css = compact_css((self.templates_dir / "email.css").read_text(encoding="utf-8"))
        self._inliner = css_inline.CSSInliner(
            load_remote_stylesheets=False,
            keep_at_rules=True,
            minify_css=True,
            extra_css=css,
        )

    def render(self, digest: Digest, ctx: EmailContext) -> Rendered:
        """Render one message for ``digest``; the HTML is kept under ``HTML_BUDGET`` bytes."""
        kind = template_kind(digest)
        values = self._context(digest, ctx, kind)
        papers = [paper_view(m) for m in digest.matches]
        more = [more_view(m) for m in digest.more]
        shown = len(papers)
        while True:
            listing = _listing(papers[:shown], papers[shown:], more)
            html = self._inliner.inline(self._template(kind, "html").render(values | listing))
            size = len(html.encode("utf-8"))
            if size <= HTML_BUDGET or shown <= 1:
                break
            # Move the lowest picks into the compact list, in proportion to the excess.
            shown = max(1, min(shown - 1, int(shown * HTML_BUDGET * 0.95 / size)))
        listing = _listing(papers, [], more)
        text = wrap_text(self._template(kind, "txt").render(values | listing))
        return Rendered(subject=str(values["subject"]), html=str(html), text=text)

    def _template(self, kind: str, part: str) -> Template:
        return self.env.get_template(f"{kind}.{part}.j2")

    def _context(self, digest: Digest, ctx: EmailContext, kind: str) -> dict[str, object]:
        """What every template of one message sees, besides the papers."""
        sub = digest.subscriber
        trigger = _one_line(", ".join(digest.topics)) if digest.kind == "alert" else ""
        return {
            "kind": kind,
            "ctx": ctx,
            "subject": _one_line(subject_for(digest, trigger)),
            "subscriber": sub,
            "first_name": _one_line(sub.name or "").split(" ")[0],
            "date_long": long_date(digest.date),
            "topics": topics_of(digest),
            "trigger": trigger,
            "unsubscribe": unsubscribe_link(ctx),
            "contact_href": contact_link(ctx.contact),
            "contact_text": _one_line(ctx.contact or ""),
        }


def template_kind(digest: Digest) -> str:
    """Which templates render ``digest``: a digest or alert without papers is a "nothing" note."""
    return digest.kind if digest.matches else "empty"


def _listing(
    papers: list[PaperView], overflow: list[PaperView], more: list[MoreView]
) -> dict[str, object]:
    """The picks shown in full, then the compact list: every pick that did not fit, first."""
    listed = [MoreView(p.title, p.url) for p in overflow] + more[:MORE_LISTED]
    return {
        "papers": papers,
        "more": listed,
        "more_count": len(overflow) + len(more),
        "more_unlisted": max(0, len(more) - MORE_LISTED),
    }
