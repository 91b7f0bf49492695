"""Rendering digests, alerts and "nothing today" notes through the real templates."""

from __future__ import annotations

import itertools
import random
import re
import shutil
import textwrap
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import css_inline
import pytest
from jinja2 import Environment, UndefinedError
from render_samples import ADA, CTX, DAY, TITLES, digest, grouped_alert, match, paper

from bot import matching
from bot.jobs import build_digest, draft
from bot.mime import quoted_printable
from bot.models import Digest, Match
from bot.render import (
    HTML_BUDGET,
    MORE_LISTED,
    EmailContext,
    Renderer,
    _listing,
    listed_only,
    subject_for,
    template_kind,
)
from bot.render_alerts import rule_groups
from bot.render_layouts import REPLAY_STEPS_PER_LAYOUT, Layouts
from bot.render_views import (
    SNIPPET_MAX,
    PaperView,
    highlight,
    one_line,
    paper_view,
    short_authors,
    wrap_lines,
    wrap_text,
)
from bot.settings import load_settings

BUDGET_102_KB = 102 * 1024


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for _, a in self.tags if "href" in a]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def test_digest_shows_each_pick_with_reasons_snippet_and_links(renderer: Renderer) -> None:
    out = renderer.render(digest(n=3, more=0), CTX)
    html = out.html
    assert out.subject == (
        "3 papers for Tue 4 Mar: Routing Without Regret: Load-Balanced Mixture of Experts at…"
    )
    assert '<a class="title" href="https://arxiv.org/abs/2503.00000"' in html
    assert "Grace Hopper, Alan Turing, Noam Shazeer" in html
    assert re.search(r'<span class="chip-k"[^>]*>Topic:</span> mixture of experts \(title\)', html)
    assert re.search(r'<span class="chip-k"[^>]*>Similar to:</span> 2401\.00001', html)
    assert re.search(r"<strong[^>]*>mixture of experts</strong>", html)
    assert re.search(r"<strong[^>]*>sparse experts</strong>", html)
    for label, url in [("PDF", "arxiv.org/pdf/2503.00000"), ("Code", "github.com/example/paper-0")]:
        assert re.search(rf'href="https://{re.escape(url)}"[^>]*>{label}</a>', html)
    assert "▲ 7 upvotes" in html
    assert "3 papers picked for you, Ada" in html
    assert "Tuesday 4 March 2025" in html


def test_footer_says_why_how_to_change_and_how_to_leave(renderer: Renderer) -> None:
    out = renderer.render(digest(n=1, more=0), CTX)
    for part in (out.html, out.text):
        assert "ada@example.org is subscribed to a daily digest" in part
        assert "digests@example.org" in part
        assert "https://papers.example.org/unsubscribe?token=abc.def" in part
        assert "Example Lab, 1 Sample Street" in part
    assert 'href="mailto:digests@example.org"' in out.html
    assert "or to stop these emails" not in out.text


def test_footer_without_unsubscribe_settings_has_no_dead_link(renderer: Renderer) -> None:
    """No link leads nowhere: the contact address is where to ask to stop."""
    ctx = replace(CTX, unsubscribe_url=None, unsubscribe_mailto=None)
    out = renderer.render(digest(n=1, more=0), ctx)
    for part in (out.html, out.text):
        assert "Unsubscribe" not in part and "unsubscribe" not in part
        assert "To change your interests or alerts, or to stop these emails, write to" in " ".join(
            part.split()
        )
    assert 'href="mailto:digests@example.org"' in out.html


@pytest.mark.parametrize(
    ("frequency", "wording"),
    [
        ("daily", "a daily digest"),
        ("weekdays", "a weekday digest"),
        ("weekly:mon", "a weekly digest (Mondays)"),
        ("weekly:sun", "a weekly digest (Sundays)"),
    ],
)
def test_footer_names_each_frequency_in_words(
    renderer: Renderer, frequency: str, wording: str
) -> None:
    subscriber = ADA.model_copy(update={"frequency": frequency})
    out = renderer.render(replace(digest(n=1, more=0), subscriber=subscriber), CTX)
    for part in (out.html, " ".join(out.text.split())):
        assert f"ada@example.org is subscribed to {wording} of research papers" in part
        assert "weekdays digest" not in part and "weekly:" not in part


def test_footer_falls_back_to_mailto_and_reply(renderer: Renderer) -> None:
    ctx = EmailContext("paperbot", None, "javascript:alert(1)", "leave@example.org", None)
    out = renderer.render(digest(n=1, more=0), ctx)
    assert 'href="mailto:leave@example.org"' in out.html
    assert "javascript" not in out.html + out.text
    assert "reply to this email" in out.text


def test_long_author_lists_keep_first_three_and_last(renderer: Renderer) -> None:
    out = renderer.render(digest(n=6, more=0), CTX)
    assert "Grace Hopper, Alan Turing, Noam Shazeer … Barbara Liskov" in out.html
    assert "Edsger Dijkstra, Barbara Liskov" not in out.html


def test_empty_snippet_falls_back_to_first_two_sentences(renderer: Renderer) -> None:
    pick = replace(match(paper(1)), snippet="", marks=())
    out = renderer.render(Digest(ADA, DAY, (pick,)), CTX)
    assert "accelerator can hold. Our method balances load" in out.html
    assert "across six benchmarks" not in out.html.lower()


def test_marks_are_bold_and_the_text_around_them_escaped(renderer: Renderer) -> None:
    snippet = "Sparse <b>experts</b> & mixture of experts."
    marks = ((0, 6), (24, 42), (30, 35), (90, 99))
    pick = replace(match(paper(1)), snippet=snippet, marks=marks)
    out = renderer.render(Digest(ADA, DAY, (pick,)), CTX)
    assert re.search(r"<strong[^>]*>Sparse</strong> &lt;b&gt;experts&lt;/b&gt; &amp; ", out.html)
    assert re.search(r"<strong[^>]*>mixture of experts</strong>\.", out.html)
    assert "*Sparse* <b>experts</b> & *mixture of experts*." in out.text


def test_more_matches_are_listed_compactly(renderer: Renderer) -> None:
    out = renderer.render(digest(n=2, more=3), CTX)
    assert "3 more matches" in out.html
    assert "3 more matches:" in out.text
    assert 'href="https://arxiv.org/abs/2503.00102"' in out.html


def test_alert_names_its_trigger_and_shares_the_look(renderer: Renderer) -> None:
    out = renderer.render(digest(n=2, more=0, kind="alert"), CTX)
    assert out.subject == "Alert for “Shazeer”: 2 new papers"
    assert "Your alert “Shazeer” fired" in out.html
    assert "asked to hear at once about new papers matching Shazeer" in " ".join(out.text.split())
    assert 'class="card"' in out.html and 'class="footer"' in out.html


def test_an_alert_counts_the_papers_it_lists_by_title(renderer: Renderer) -> None:
    out = renderer.render(digest(n=2, more=3, kind="alert"), CTX)
    assert out.subject == "Alert for “Shazeer”: 5 new papers"
    assert "5 new papers match your alert." in out.text and "3 more matches:" in out.text
    assert "5 new papers match your alert</h1>" in out.html
    assert "3 more matches</h2>" in out.html


@pytest.mark.parametrize(
    ("n", "more", "text", "html"),
    [
        (1, 0, "A new paper matches your alert. It is sent at once, and your next digest will "
         "not repeat it.", "2025. This paper is sent at once, and your next digest will not "
         "repeat it.</p>"),
        (2, 3, "5 new papers match your alert. They are sent at once, and your next digest "
         "will not repeat them.", "2025. These papers are sent at once, and your next digest "
         "will not repeat them.</p>"),
    ],
)  # fmt: skip
def test_an_alert_says_its_papers_stay_out_of_the_next_digest(
    renderer: Renderer, n: int, more: int, text: str, html: str
) -> None:
    """Not "5 new papers match your alert. It arrives on its own": what is left out of the next
    digest is the papers, one or many."""
    out = renderer.render(digest(n=n, more=more, kind="alert"), CTX)
    assert text in " ".join(out.text.split())
    assert html in out.html


PIONEERS = ("Geoffrey Hinton", "Yoshua Bengio", "Yann LeCun", "graph neural network")
LONG_RULE = "Papers on retrieval-augmented generation for low-resource machine translation"


@pytest.mark.parametrize(
    ("topics", "n", "more", "expected"),
    [
        (
            ("Shazeer",), 1, 0,
            "Alert for “Shazeer”: Routing Without Regret: Load-Balanced Mixture of Experts…",
        ),
        (("Shazeer",), 2, 3, "Alert for “Shazeer”: 5 new papers"),
        (("Lee", "RL", "SSMs"), 3, 0, "Alert for “Lee”, “RL” and “SSMs”: 3 new papers"),
        (PIONEERS, 1, 0, "Alert for “Geoffrey Hinton” and 3 more rules: Routing Without Regret…"),
        (PIONEERS, 2, 3, "Alert for “Geoffrey Hinton” and 3 more rules: 5 new papers"),
        ((LONG_RULE,), 1, 0, "Alert for “Papers on retrieval-augmented generation for…”: 1 new paper"),
        (
            (LONG_RULE, "Lee", "SSMs"), 10, 2,
            "Alert for “Papers on retrieval-augmented…” and 2 more rules: 12 new papers",
        ),
        ((), 1, 0, "Alert: Routing Without Regret: Load-Balanced Mixture of Experts at…"),
        ((), 3, 0, "Alert: 3 new papers"),
    ],
)  # fmt: skip
def test_an_alert_subject_names_the_first_rule_and_the_paper_or_counts(
    renderer: Renderer, topics: tuple[str, ...], n: int, more: int, expected: str
) -> None:
    """One paper: its title; several: how many. The rules by name while they all fit, else the
    first and how many others."""
    out = renderer.render(digest(n=n, more=more, kind="alert", topics=topics), CTX)
    assert out.subject == expected


def test_an_alert_subject_fits_a_line_with_one_ellipsis_at_most() -> None:
    names = ["Lee", "Geoffrey Hinton", "state space model", LONG_RULE, "x" * 80, "word " * 16]
    titles = ["Tiny", "Sparse Experts Learn Faster", TITLES[0], "y" * 200]
    for count in range(4):
        for rules in itertools.permutations(names, count):
            for title in titles:
                for n, more in [(1, 0), (2, 0), (10, 30)]:
                    d = digest(n=n, more=more, kind="alert", topics=rules)
                    first = replace(d.matches[0], paper=replace(d.matches[0].paper, title=title))
                    subject = subject_for(replace(d, matches=(first, *d.matches[1:])))
                    assert len(subject) <= 78 and subject.count("…") <= 1, subject
                    assert subject.startswith("Alert for “" if rules else "Alert: "), subject
    short = replace(digest(n=1, kind="alert", topics=(LONG_RULE,)).matches[0].paper, title="Tiny")
    d = digest(n=1, more=0, kind="alert", topics=(LONG_RULE,))
    assert subject_for(replace(d, matches=(replace(d.matches[0], paper=short),))) == (
        "Alert for “Papers on retrieval-augmented generation for low-resource…”: Tiny"
    )


def test_an_alert_of_several_rules_names_them_all_in_its_lede(renderer: Renderer) -> None:
    out = renderer.render(digest(n=1, more=0, kind="alert", topics=PIONEERS), CTX)
    fired = "“Geoffrey Hinton”, “Yoshua Bengio”, “Yann LeCun” and “graph neural network”"
    assert f"Your alerts {fired} fired" in out.html
    assert "A new paper matches your alerts" in out.html
    one = renderer.render(digest(n=1, more=0, kind="alert", topics=("Shazeer",)), CTX)
    assert "Your alert “Shazeer” fired" in one.html
    assert "\nRouting Without Regret" in out.text and " 1. " not in out.text, "as in the HTML"
    assert ">#1<" not in out.html


def in_order(text: str, *parts: str) -> bool:
    """Whether ``parts`` occur in ``text`` in this order, each after the one before."""
    at = 0
    for part in parts:
        at = text.find(part, at) + 1
        if not at:
            return False
    return True


def test_an_alert_groups_its_papers_under_the_rule_each_fires_first(renderer: Renderer) -> None:
    """Groups in the order of their first paper; a paper firing two rules once, under the
    first, saying what else it matches; the HTML and the text alike."""
    out = renderer.render(grouped_alert(), CTX)
    assert out.subject == "Alert for “SSMs”, “Okafor” and “MoE”: 5 new papers"
    text = " ".join(out.text.split())
    html = " ".join(Tags(out.html).text)
    for part in (html, text):
        assert in_order(
            part, "Alert “SSMs”", "Birdsong", "Long Contracts", "Alert “Okafor”",
            "Routing Tokens", "Also matches “MoE”", "Counting Sheep", "Alert “MoE”", "Weather Maps",
        ), part  # fmt: skip
    assert "Alert “SSMs” ------------ 1. Selective State Space Models for Birdsong" in text
    assert re.search(r'<td class="group"[^>]*><h2 class="group-h"[^>]*>Alert “SSMs”</h2>', out.html)
    assert re.search(r'<p class="also"[^>]*>Also matches “MoE”</p>', out.html)
    titles = [t for tag, a in Tags(out.html).tags for t in [a.get("class")] if t == "title"]
    assert len(titles) == 5 and len(re.findall(r"^ \d\. ", out.text, re.MULTILINE)) == 5
    assert text.count("Alert “") == html.count("Alert “") == 3


def test_an_alert_groups_the_papers_it_lists_by_title_too(renderer: Renderer) -> None:
    """The first ``max_papers`` of the grouped papers in full, the others by title, under the
    heading of their rule again."""
    out = renderer.render(grouped_alert(max_papers=3), CTX)
    full, listed = out.text.split("2 more matches:")
    assert in_order(full, "Alert “SSMs”", "Birdsong", "Long Contracts", "Alert “Okafor”")
    assert in_order(full, "Routing Tokens", "Also matches “MoE”")
    assert "Counting Sheep" not in full and "Weather Maps" not in full
    assert in_order(listed, "Alert “Okafor”:", "Counting Sheep", "Alert “MoE”:", "Weather Maps")
    html = " ".join(Tags(out.html).text)
    assert in_order(html, "2 more matches", "Alert “Okafor”", "Counting Sheep", "Alert “MoE”")
    assert out.html.count('class="more-item"') == 2


def test_an_alert_of_one_rule_has_no_headings(renderer: Renderer) -> None:
    """Papers that all fire the same rule first: no heading, nor what else they match."""
    one = replace(grouped_alert(), rules=((("Okafor",),) * 4) + (("Okafor", "MoE"),))
    for out in (renderer.render(one, CTX), renderer.render(digest(n=3, kind="alert"), CTX)):
        for part in (out.html, out.text):
            assert "Alert “" not in part and "Also matches" not in part
        assert 'class="group' not in out.html and 'class="more-group' not in out.html


def test_nothing_today_note(renderer: Renderer) -> None:
    out = renderer.render(digest(n=0, more=0, kind="empty"), CTX)
    assert out.subject == "Nothing matched your interests on Tue 4 Mar"
    assert "No new papers matched, Ada" in out.html
    assert "None of the papers for Tuesday 4 March 2025 matched" in out.text
    assert 'class="footer"' in out.html and "Unsubscribe" in out.text


def test_a_weekly_note_speaks_of_the_week(renderer: Renderer) -> None:
    weekly = ADA.model_copy(update={"frequency": "weekly:tue"})
    out = renderer.render(replace(digest(n=0, more=0, kind="empty"), subscriber=weekly), CTX)
    assert out.subject == "Nothing matched your interests in the week to Tue 4 Mar"
    said = "None of the papers of the week to Tuesday 4 March 2025 matched"
    assert said in " ".join(out.text.split()) and said in " ".join(out.html.split())
    assert "a note on quiet weeks" in " ".join(out.text.split())
    assert "Nothing this week" in out.html and "quiet days" not in out.html


def test_a_weekly_digest_speaks_of_the_week(renderer: Renderer) -> None:
    weekly = ADA.model_copy(update={"frequency": "weekly:tue"})
    out = renderer.render(replace(digest(n=2, more=0), subscriber=weekly), CTX)
    assert out.subject.startswith("2 papers for the week to Tue 4 Mar: ")
    said = "The 2 best matches among the new papers of the week to Tuesday 4 March 2025,"
    assert said in " ".join(out.text.split()) and said in " ".join(out.html.split())
    assert "Weekly digest</p>" in out.html and "Research digest" not in out.html
    daily = renderer.render(digest(n=2, more=0), CTX)
    assert daily.subject.startswith("2 papers for Tue 4 Mar: ")
    assert "week" not in daily.subject and "Research digest</p>" in daily.html


def test_a_nothing_today_note_after_alerts_says_the_matches_came_earlier(
    renderer: Renderer,
) -> None:
    out = renderer.render(replace(digest(n=0, more=0, kind="empty"), earlier=2), CTX)
    assert out.subject == "Nothing new matched your interests on Tue 4 Mar"
    said = "2 papers for Tuesday 4 March 2025 reached you earlier; none of the others matched"
    assert said in " ".join(out.text.split()) and said in " ".join(out.html.split())
    assert "None of the papers" not in out.text + out.html


def preheader(html: str) -> str:
    """The preheader's text: what an inbox shows after the subject, without its filler."""
    found = re.search(r'<div class="preheader"[^>]*>(.*?)</div>', html, re.DOTALL)
    assert found is not None
    return found.group(1).replace("&#8199;&#847;", "").replace("\u2007\u034f", "").strip()


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (digest(n=3, more=0), f"Also: {TITLES[1]} · {TITLES[2]}"),
        (digest(n=5, more=0), f"Also: {TITLES[1]} · {TITLES[2]} and more"),
        (
            digest(n=1, more=0),
            "Why: topic “mixture of experts” (title); author Noam Shazeer; similar to 2401.00001",
        ),
        (
            digest(n=1, more=0, kind="alert"),
            "Why: topic “mixture of experts” (title); author Noam Shazeer; similar to 2401.00001",
        ),
        (digest(n=2, more=0, kind="alert"), f"{TITLES[0]} · {TITLES[1]}"),
        (digest(n=2, more=3, kind="alert"), f"{TITLES[0]} · {TITLES[1]} and more"),
        (
            digest(n=0, more=0, kind="empty"),
            "Your topics: mixture of experts, Noam Shazeer, cs.LG. Your next digest comes as usual.",
        ),
    ],
)
def test_the_preheader_says_what_the_subject_does_not(
    renderer: Renderer, sample: Digest, expected: str
) -> None:
    """An inbox shows the preheader right after the subject: the subject names the best pick,
    so the preheader goes on with the next ones (or, for a lone pick, says why it was picked),
    an alert's names its papers rather than its rules again, and a quiet day's note the topics
    looked for rather than that nothing matched."""
    out = renderer.render(sample, CTX)
    said = preheader(out.html)
    assert said == expected
    assert said[:40] not in out.subject and "matched your interests" not in said


@pytest.mark.parametrize(
    ("n", "title", "expected"),
    [
        (1, "Short", "1 paper for Tue 4 Mar: Short"),
        (2, "Line\r\nbreaks\tand  tabs", "2 papers for Tue 4 Mar: Line breaks and tabs"),
        (1, "word " * 40, "1 paper for Tue 4 Mar: " + "word " * 11 + "word…"),
        (1, "a, " * 40, "1 paper for Tue 4 Mar: " + "a, " * 19 + "a…"),
        (1, "x" * 200, "1 paper for Tue 4 Mar: " + "x" * 59 + "…"),
    ],
)
def test_subject_counts_and_names_the_best(n: int, title: str, expected: str) -> None:
    d = digest(n=n, more=0)
    first = replace(d.matches[0], paper=replace(d.matches[0].paper, title=title))
    assert subject_for(replace(d, matches=(first, *d.matches[1:]))) == expected


def test_subject_is_one_line_even_for_a_hostile_trigger(renderer: Renderer) -> None:
    out = renderer.render(digest(n=1, kind="alert", topics=("a\r\nBcc: x@example.org",)), CTX)
    assert "\n" not in out.subject and "\r" not in out.subject


def test_html_is_self_contained_with_inlined_css(renderer: Renderer) -> None:
    html = renderer.render(digest(), CTX).html
    assert html.startswith("<!DOCTYPE html>")
    tags = Tags(html)
    assert ("html", {"lang": "en", "dir": "ltr"}) in tags.tags
    assert ("meta", {"name": "color-scheme", "content": "light dark"}) in tags.tags
    assert not [t for t, a in tags.tags if t in ("link", "script", "img", "iframe") or "src" in a]
    assert "url(" not in html and "@import" not in html
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert len(styles) == 1 and set(re.findall(r"@[a-z-]+", styles[0])) == {"@media"}
    assert "prefers-color-scheme:dark" in styles[0].replace(" ", "")
    assert re.search(r'<td class="card" style="[^"]*border-radius', html)
    assert 'class="preheader"' in html


def test_link_text_makes_sense_alone(renderer: Renderer) -> None:
    tags = Tags(renderer.render(digest(n=2, more=0), CTX).html)
    labels = [a.get("aria-label") for t, a in tags.tags if t == "a" and a.get("class") == "link"]
    assert "PDF: Sparse Experts Learn Faster When They Forget Slowly" in labels


HOSTILE_TITLE = '<script>alert("t")</script><img src=x onerror=window.__pwned=1> Attention'
HOSTILE_ABSTRACT = 'Nice. <svg onload=alert(2)></svg> "quoted" javascript:alert(3) & more.'


def hostile_digest() -> Digest:
    bad = paper(
        1,
        title=HOSTILE_TITLE,
        abstract=HOSTILE_ABSTRACT,
        authors=("<b onmouseover=alert(4)>Eve</b>",),
        url="javascript:alert(5)",
        pdf_url=" JaVaScRiPt:alert(6)",
        hf_url="data:text/html,<script>alert(7)</script>",
        code_url='https://example.org/" onclick="alert(8)',
        project_url="https://example.org/ok",
    )
    pick = replace(match(bad), snippet="", reasons=("keyword: <script>x</script>",))
    more = paper(2, title="<iframe src=//evil>", url="vbscript:x")
    return Digest(ADA, DAY, (pick,), (more,), topics=("<script>topic</script>",))


def test_hostile_papers_are_escaped_or_dropped(renderer: Renderer) -> None:
    out = renderer.render(hostile_digest(), CTX)
    tags = Tags(out.html)
    assert [t for t, _ in tags.tags if t in ("script", "img", "svg", "iframe", "b")] == []
    assert not [k for _, a in tags.tags for k in a if k.startswith("on")]
    assert all(h.startswith(("https://", "http://", "mailto:")) for h in tags.hrefs())
    assert "https://example.org/ok" in tags.hrefs()
    assert (
        '&lt;script&gt;alert("t")&lt;/script&gt;&lt;img src=x onerror=window.__pwned=1&gt;'
        in out.html
    )
    text = "".join(tags.text)
    assert "<img src=x onerror=window.__pwned=1> Attention" in text
    for part in (out.html, out.text, out.subject):
        assert not re.search(r"(javascript|vbscript|data):(?!alert\(3\))", part, re.IGNORECASE)
        assert 'example.org/"' not in part
    assert "Project page:  https://example.org/ok" in out.text


@pytest.mark.parametrize("papers", [10, 100])
def test_size_budget_with_long_abstracts(renderer: Renderer, papers: int) -> None:
    long_abstract = ("A long sentence about sparse experts and routing. " * 60).strip()
    d = digest(n=papers, more=40)
    long = tuple(
        replace(m, snippet=long_abstract, paper=replace(m.paper, title=m.paper.title * 3))
        for m in d.matches
    )
    out = renderer.render(replace(d, matches=long), CTX)
    size = len(quoted_printable(out.html))  # as sent, which is what clients clip at
    assert size <= HTML_BUDGET < BUDGET_102_KB
    tags = Tags(out.html)
    shown = sum(a.get("class") == "snippet" for _, a in tags.tags)
    assert f"{papers} papers picked for you, Ada" in out.html, "as the subject and text say"
    assert f"{papers} papers picked for you, Ada" in out.text
    assert "40 more matches" in out.html
    if shown < papers:  # the rest by title, still saying why each was picked
        assert f"{papers - shown} more picks, by title to keep this email small" in out.html
        why = [t for t in tags.text if t.startswith("Why: ")]
        assert len(why) == papers - shown and "Topic: mixture of experts (title)" in why[0]


def test_a_long_author_list_says_how_many_wrote_the_paper() -> None:
    names = tuple(f"Author{i} Surname{i}" for i in range(40))
    assert short_authors(names) == (
        "Author0 Surname0, Author1 Surname1, Author2 Surname2 … Author39 Surname39 (40 authors)"
    )
    assert short_authors(names[:6]) == (
        "Author0 Surname0, Author1 Surname1, Author2 Surname2 … Author5 Surname5 (6 authors)"
    )


def test_five_authors_are_all_named() -> None:
    """Leaving one of five out would save no room: "… Author4 (5 authors)" is as long."""
    names = tuple(f"Author{i} Surname{i}" for i in range(5))
    assert short_authors(names) == ", ".join(names)


def test_a_mark_cut_with_the_snippet_does_not_take_in_the_ellipsis() -> None:
    text = "word " * (SNIPPET_MAX // 5 - 1) + "sparse experts beyond the end of the snippet"
    start = text.index("sparse")
    mark = (start - len("word "), start + len("sparse experts"))  # across the cut
    pieces, plain = highlight(Match(paper(1), 1.0, (), text, (mark,)))
    assert plain.endswith(" *word*…")
    assert [piece for piece, marked in pieces if marked] == ["word"]


def test_the_charset_comes_first_in_the_head(renderer: Renderer) -> None:
    """A browser opening the HTML (an outbox preview) looks for it in the first 1024 bytes."""
    html = renderer.render(digest(n=2, more=0), CTX).html
    assert html.index('<head><meta charset="utf-8">') < 100
    assert html.count("<meta charset") == 1 and "</style>" in html


def test_ten_papers_fit_comfortably(renderer: Renderer) -> None:
    assert len(renderer.render(digest(n=10, more=10), CTX).html.encode()) < 60_000


def long_text_digest() -> Digest:
    url = "https://example.org/" + "very-long-path-segment/" * 8 + "paper.pdf"
    d = digest(n=3, more=2)
    title = "Supercalifragilistic " * 12 + "Unbreakable" * 12
    p = replace(d.matches[0].paper, title=title, pdf_url=url)
    authors = tuple(f"Author Number{i} Surname{i}" for i in range(30))
    snippet = "word " * 200 + "https://example.org/" + "x" * 120
    first = replace(d.matches[0], paper=replace(p, authors=authors), snippet=snippet, marks=())
    topic = "self-supervised contrastive representation learning for multimodal medical imaging"
    return replace(d, matches=(first, *d.matches[1:]), topics=(topic, *d.topics))


def test_text_part_wraps_at_78_columns_and_never_cuts_a_word(renderer: Renderer) -> None:
    """A word longer than a line (a URL, a link written without https://, an identifier) gets a
    line of its own, whole: a space inside it would break it."""
    text = renderer.render(long_text_digest(), CTX).text
    long_lines = [line.strip() for line in text.splitlines() if len(line) > 78]
    assert "Unbreakable" * 12 in long_lines
    assert all(re.fullmatch(r"\S+", line) for line in long_lines), long_lines
    assert "\r" not in text and "\t" not in text


def test_text_part_lists_links_after_each_paper(renderer: Renderer) -> None:
    text = renderer.render(digest(n=2, more=0), CTX).text
    first, second = text.index(" 1. Routing"), text.index(" 2. Sparse")
    abstract = text.index("Abstract:      https://arxiv.org/abs/2503.00000")
    assert (
        first < abstract < text.index("Code:          https://github.com/example/paper-0") < second
    )
    assert second < text.index("PDF:           https://arxiv.org/pdf/2503.00001")


def test_environment_escapes_html_only_and_rejects_unknown_names(renderer: Renderer) -> None:
    env = renderer.env
    assert env.from_string("{{ x }}").render(x="<b>") == "<b>"
    assert env.get_template("macros.html.j2").module is not None
    html_template = env.get_template("empty.html.j2")
    assert html_template.environment.autoescape("empty.html.j2") is True  # type: ignore[operator]
    assert env.autoescape("digest.txt.j2") is False  # type: ignore[operator]
    with pytest.raises(UndefinedError):
        html_template.render({})


def test_the_text_part_says_why_in_words_naming_reasons_as_the_chips_do(
    renderer: Renderer,
) -> None:
    """Each reason as the chip names it, in a sentence, not the chips in brackets."""
    d = digest(n=2, more=0)
    reasons = (
        "author: Noam Shazeer",
        "keyword: sparse experts (both words)",
        "keyword: expert routing",
        "keyword: token routing networks (some of its words)",
        "like: similar to 2401.00001 (Switch Transformers)",
        "description: mixture-of-experts, load",
        "category: cs.LG",
    )
    out = renderer.render(replace(d, matches=(replace(d.matches[0], reasons=reasons),)), CTX)
    said = (
        "Why: author Noam Shazeer; topic “sparse experts” (both words); topic “expert routing”;"
        " topic “token routing networks” (some of its words); similar to 2401.00001 (Switch Transformers); your description (mixture-of-experts,"
        " load); category cs.LG"
    )
    assert said in " ".join(out.text.split())
    assert "[" not in out.text and all(len(line) <= 78 for line in out.text.splitlines())
    for label in ("Author:", "Topic:", "Similar to:", "Your description:", "Category:"):
        assert re.search(rf'<span class="chip-k"[^>]*>{label}</span>', out.html), label
    alert = renderer.render(grouped_alert(), CTX).text
    assert "    Why: alert “state space model” (title)\n" in alert
    assert "    Why: author Lina Okafor; alert “mixture of experts” (title)\n" in alert


def test_a_subscriber_without_a_name_is_not_greeted_by_name(renderer: Renderer) -> None:
    d = digest(n=2, more=0)
    out = renderer.render(replace(d, subscriber=ADA.model_copy(update={"name": None})), CTX)
    assert "2 papers picked for you</h1>" in out.html
    assert "2 papers picked for you\n" in out.text


def test_a_picks_categories_share_one_chip(renderer: Renderer) -> None:
    """``[Category: cs.CL] [Category: cs.LG]`` on every card is noise: one chip names them."""
    d = digest(n=2, more=0)
    pick = d.matches[0]
    reasons = ("keyword: mixture of experts (title)", "category: cs.CL", "category: cs.LG")
    out = renderer.render(replace(d, matches=(replace(pick, reasons=reasons), *d.matches[1:])), CTX)
    assert "Why: topic “mixture of experts” (title); categories cs.CL, cs.LG" in out.text
    assert re.search(r'<span class="chip-k"[^>]*>Categories:</span> cs\.CL, cs\.LG', out.html)
    assert "Category:" not in out.text


@pytest.mark.parametrize(
    ("name", "greeted"),
    [
        *[("Dr. Jane Q. Public", "Jane"), ("Prof Grace Hopper", "Grace"), ("Ada Lovelace", "Ada")],
        *[
            ("Lovelace, Ada", "Ada"),
            ("Grace Hopper, PhD", "Grace"),
            ("Alan Turing, Jr., MD", "Alan"),
        ],
        *[('Dr. "Quote" O\'Brien', "Quote"), ("Lovelace,", "Lovelace")],
        *[("Lovelace, Ada, PhD", "Ada"), ("Smith, Jr., John", "John")],
        *[("Alan Turing, OBE", "Alan"), ("Yoshua Bengio, O.C.", "Yoshua")],
        *[("Marie Curie, PhD, DSc", "Marie"), ("LOVELACE, ADA", "ADA")],
        *[("J. R. R. Tolkien", "J. R. R. Tolkien"), ("Lovelace, A.", "A. Lovelace")],
        *[("Jane Smith, University of Oxford", "Jane"), ("Jean-Luc Picard, Captain", "Jean-Luc")],
        *[("van der Berg, Anna", "Anna"), ("Dr. Lovelace, Ada", "Ada")],
        *[("Le Guin, Ursula", "Ursula"), ("Ramírez, Sofía", "Sofía")],
        *[("De la Cruz, Maria", "Maria"), ("NLP group, Oxford Lab", "NLP")],
        *[('Dr. Zoë "Zed" O\'Brien-Łukasiewicz, Jr. 山田', "Zoë")],
    ],
)
def test_the_greeting_uses_the_given_name_not_a_title(
    renderer: Renderer, name: str, greeted: str
) -> None:
    d = digest(n=2, more=0)
    out = renderer.render(replace(d, subscriber=ADA.model_copy(update={"name": name})), CTX)
    assert f"2 papers picked for you, {greeted}\n" in out.text


@pytest.mark.parametrize(
    ("name", "email", "greeting"),
    [
        ("Jane Smith, Oxford", "jane@example.org", "2 papers picked for you, Jane"),
        ("Jane Smith, Oxford", "j.smith@example.org", "2 papers picked for you"),
        ("García Márquez, Gabriel", "gabriel.garcia@example.org", "2 papers picked for you, Gabriel"),
        ("García Márquez, Gabriel", "ggm@example.org", "2 papers picked for you"),
        ("García Márquez, Gabriel", "g.garcia@example.org", "2 papers picked for you, Gabriel"),
        ("Silva Santos, Ana", "asilva@example.org", "2 papers picked for you, Ana"),
        ("López García, María", "lopezm@example.org", "2 papers picked for you, María"),
        ("Wei Chen, Tsinghua", "wei.chen@example.org", "2 papers picked for you, Wei"),
    ],
)  # fmt: skip
def test_two_names_and_a_comma_greet_the_name_the_address_spells_or_nobody(
    renderer: Renderer, name: str, email: str, greeting: str
) -> None:
    """``Jane Smith, Oxford`` is a name and a place, ``García Márquez, Gabriel`` a family name
    and a given name: the same shape. The address tells them apart (``g.garcia@`` is the
    given name's initial beside the family name, not "García"); when it cannot, the email
    greets nobody rather than "Oxford"."""
    sub = ADA.model_copy(update={"name": name, "email": email})
    out = renderer.render(replace(digest(n=2, more=0), subscriber=sub), CTX)
    assert f"{greeting}\n" in out.text.splitlines(keepends=True)
    assert re.search(rf">{re.escape(greeting)}</h1>", out.html), out.html
    empty = renderer.render(replace(digest(n=0, more=0), subscriber=sub), CTX)
    said = greeting.replace("2 papers picked for you", "No new papers matched")
    assert f"{said}\n" in empty.text.splitlines(keepends=True)


@pytest.mark.parametrize(
    ("name", "email", "greeted"),
    [
        ("Lovelace, Ada Augusta King", "countess@example.org", "Ada"),
        ("Dr. Lovelace, Ada Augusta King", "countess@example.org", "Ada"),
        ("King, Martin Luther", "mlk@example.org", "Martin"),
        ("van Rossum, Guido", "bdfl@example.org", "Guido"),
        ("de la Cruz, María José Ángeles", "mjac@example.org", "María"),
        ("Lovelace, Ada Augusta King", "ada@example.org", "Ada"),
        ("Jane, Chief Technology Officer", "jane@example.org", "Jane"),
        ("Alice, Google DeepMind London", "alice.w@example.org", "Alice"),
    ],
)  # fmt: skip
def test_after_a_family_name_alone_and_a_comma_come_given_names_however_many(
    renderer: Renderer, name: str, email: str, greeted: str
) -> None:
    """One family name (besides particles and titles) before the comma: the words after it in
    capitals are given names, however many, unless the address spells the word before the
    comma and not them: then that word is the given name, and a role or a place follows."""
    sub = ADA.model_copy(update={"name": name, "email": email})
    out = renderer.render(replace(digest(n=2, more=0), subscriber=sub), CTX)
    assert f"2 papers picked for you, {greeted}\n" in out.text.splitlines(keepends=True)


@pytest.mark.parametrize(
    ("name", "email", "greeted"),
    [
        ("Lovelace, Ada (Countess)", "ada.lovelace@example.org", "Ada"),
        ("Lovelace, ada", "ada@example.org", "ada"),
        ("García Márquez, Gabriel José", "gabriel@example.org", "Gabriel"),
        ("Jane Smith, University of Oxford", "university@example.org", "Jane"),
        ("Jane, Senior Research Scientist", "senior@example.org", "Jane"),
    ],
)  # fmt: skip
def test_given_names_after_a_comma_in_another_form_are_greeted_when_the_address_spells_them(
    renderer: Renderer, name: str, email: str, greeted: str
) -> None:
    """A given name in lower case, a note in brackets, or three words after two family names
    do not read as given names by their form alone; an address that spells the first of them
    says they are (a role or a place of work never is)."""
    sub = ADA.model_copy(update={"name": name, "email": email})
    out = renderer.render(replace(digest(n=2, more=0), subscriber=sub), CTX)
    assert f"2 papers picked for you, {greeted}\n" in out.text.splitlines(keepends=True)


def test_paper_text_takes_its_direction_from_its_own_script(renderer: Renderer) -> None:
    """An Arabic title or snippet reads right to left inside the left-to-right email."""
    tags = Tags(renderer.render(digest(n=2, more=2), CTX).html).tags
    own = [(tag, a.get("class")) for tag, a in tags if a.get("dir") == "auto"]
    assert own.count(("h2", None)) == 2
    assert own.count(("p", "authors")) == own.count(("p", "snippet")) == 2
    assert own.count(("li", "more-item")) == 2


def test_chinese_and_japanese_wrap_at_78_columns_between_characters() -> None:
    """A wide character takes two columns; text without spaces breaks between characters."""
    line = "    " + "本文研究门控专家网络。" * 9 + " gated experts and more words to wrap here"
    wrapped = wrap_lines(line)
    lines = wrapped.splitlines()
    columns = [len(x) + sum(unicodedata.east_asian_width(c) in "WF" for c in x) for x in lines]
    assert max(columns) <= 78 and len(lines) == 4, lines
    assert all(x.startswith("    ") for x in lines), "the indent hangs"
    assert "".join(x.strip() for x in lines).replace(" ", "") == line.replace(" ", "")
    assert wrap_lines(wrapped) == wrapped
    assert wrap_lines("    " + "门控" * 30) != "    " + "门控" * 30 + "\n", (
        "60 characters, 120 columns"
    )
    link = "https://example.org/wiki/" + "a1b2" * 20
    assert link in wrap_lines(f"See {link} 门控专家 and more"), "a link is never broken"
    glued = wrap_lines("见https://example.org/paper以及" + "门控专家网络" * 12).splitlines()
    assert len(glued) == 3 and "https://example.org/paper" in glued[0], glued
    for closing in ("\uff09\u3002", "\u201d", "\u2026\u2026", "\u3015", "\uff3d", ")", "\u30fc"):
        lines = wrap_lines("门" * 38 + f"家{closing}" + "门" * 10).splitlines()  # at column 79
        assert len(lines) == 2 and lines[1].startswith(f"家{closing}"), lines
    around = wrap_lines("门控专家网络" * 10 + "详见https://example.org/paper。" + "后面" * 30)
    assert max(map(len, around.splitlines())) <= 39 + len("https://example.org/paper")
    assert "https://example.org/paper" in around, "the link itself stays whole"


def test_a_link_with_chinese_in_it_stays_whole_in_the_plain_text(renderer: Renderer) -> None:
    """A project page or repository named in Chinese is an IRI: the plain text keeps it on one
    line, as the templates write every link, so that a mail program finds all of it."""
    project = "https://示例.中国/项目/稀疏路由的负载均衡方法与实验结果展示页面"
    code = "https://git.example.org/示例/门控专家网络"
    pick = match(paper(0, title="门控专家网络的稀疏路由", project_url=project, code_url=code))
    more = paper(
        1, title="负载均衡", url="https://example.org/论文/" + "负载均衡方法与实验结果" * 4
    )
    out = renderer.render(replace(digest(n=0, more=0), matches=(pick,), more=(more,)), CTX)
    lines = out.text.splitlines()
    assert f"    {project}" in lines and "    Project page:" in lines, out.text
    assert f"    Code:          {code}" in lines
    assert f"    {more.url}" in lines
    assert wrap_lines(out.text) == out.text, "wrapping again changes nothing"
    longer = project + "/实验" * 8
    assert wrap_lines(f"Unsubscribe: {longer}") == f"Unsubscribe:\n{longer}\n"


@pytest.mark.parametrize("picked", [2, 0])
def test_the_topics_under_the_heading_name_the_authors_and_count_the_rest(
    renderer: Renderer, picked: int
) -> None:
    """A subscriber who follows eight phrases and an author is not told five of them were all:
    the first five are named and the others counted, in a digest and in a quiet day's note."""
    keywords = ["mixture of experts", "sparse experts", "state space model", "token routing"]
    sub = ADA.model_copy(
        update={"interests": ADA.interests.model_copy(update={"keywords": keywords})}
    )
    picks = digest(n=picked, more=0).matches
    out = renderer.render(build_digest(sub, DAY, matching.Selection(picks)), CTX)
    said = "Your topics: mixture of experts, sparse experts, state space model, token routing,"
    flat = " ".join(out.text.split())
    assert f"{said} Noam Shazeer " in flat and "more" not in flat, "the author is a topic too"
    many = [*keywords, "router collapse", "expert choice", "load balance", "capacity factor"]
    sub = sub.model_copy(update={"interests": sub.interests.model_copy(update={"keywords": many})})
    out = renderer.render(build_digest(sub, DAY, matching.Selection(picks)), CTX)
    assert "token routing, router collapse and 4 more " in " ".join(out.text.split())
    assert re.search(r">router collapse</span> and 4 more</p>", out.html), out.html
    topics = out.text.split("\n\n", 4)[3]  # a paragraph of its own, under the lede
    assert topics.startswith("Your topics: ") and "expert choice" not in topics


def test_the_topics_name_each_keyword_once_however_often_it_is_written(
    renderer: Renderer,
) -> None:
    """Keywords written in two forms count once in matching, and are named once: as first
    written."""
    keywords = ["vision-language", "diffusion model", "vision language", "diffusion models"]
    sub = ADA.model_copy(
        update={"interests": ADA.interests.model_copy(update={"keywords": keywords})}
    )
    out = renderer.render(build_digest(sub, DAY, matching.Selection(digest(n=1).matches)), CTX)
    flat = " ".join(out.text.split())
    assert "Your topics: vision-language, diffusion model, Noam Shazeer " in flat, flat


def test_default_templates_are_the_repository_ones_read_through_the_package() -> None:
    root = Path(__file__).resolve().parent.parent
    assert Renderer().templates_dir == root / "bot" / "templates"  # so that a wheel has them
    assert Renderer().templates_dir.resolve() == root / "templates"


def test_a_digest_without_picks_renders_as_the_nothing_note(renderer: Renderer) -> None:
    out = renderer.render(digest(n=0, more=0), CTX)
    assert "No new papers matched, Ada" in out.html
    assert out.subject.startswith("Nothing matched")


def test_a_very_long_more_list_is_counted_not_listed(renderer: Renderer) -> None:
    out = renderer.render(digest(n=2, more=60), CTX)
    assert "60 more matches" in out.html
    assert "…and 35 more not listed here." in out.html
    assert "...and 35 more not listed here." in out.text


@pytest.mark.parametrize(
    ("n", "more", "lede"),
    [
        (2, 60, "The 2 best matches among the new papers, each with why it was chosen. "
         "60 more matched (25 listed below)."),
        (1, 4, "The best match among the new papers, with why it was chosen. "
         "4 more matched, listed below."),
        (3, 0, "The 3 best matches among the new papers, each with why it was chosen. Your"),
    ],
)  # fmt: skip
def test_the_lede_counts_only_the_further_matches_it_lists(
    renderer: Renderer, n: int, more: int, lede: str
) -> None:
    out = renderer.render(digest(n=n, more=more), CTX)
    assert lede in " ".join(out.text.split())
    assert lede in " ".join("".join(Tags(out.html).text).split())


def test_a_draft_carries_only_the_further_matches_a_message_lists(renderer: Renderer) -> None:
    full = digest(n=2, more=60)
    short = listed_only(full)
    assert (len(short.more), short.unlisted, short.more_count) == (MORE_LISTED, 35, 60)
    assert renderer.render(short, CTX) == renderer.render(full, CTX)
    assert listed_only(digest(n=2, more=MORE_LISTED)).unlisted == 0
    now = datetime(2026, 11, 26, 8, tzinfo=UTC)
    assert draft(load_settings(None), full, "<m@example.org>", now).digest == short


def test_subscribers_sharing_a_pick_share_its_rendered_card() -> None:
    fresh = Renderer()
    d = digest(n=3, more=2)
    first = fresh.render(d, CTX)
    other = replace(d, subscriber=ADA.model_copy(update={"email": "grace@example.org"}))
    second = fresh.render(other, CTX)
    cards = fresh._card.cache_info()  # type: ignore[attr-defined]
    assert (cards.misses, cards.hits) == (3, 3), "each card rendered and inlined once"
    assert cards.maxsize is not None, "the cache is bounded"
    assert second.html.replace("grace@example.org", "ada@example.org") == first.html
    assert fresh.render(d, CTX) == first


def test_cards_are_inlined_like_the_rest_of_the_message(renderer: Renderer) -> None:
    html = renderer.render(digest(n=2, more=0), CTX).html
    assert "paperbot:cards" not in html and "<table><tbody>" not in html
    assert re.search(r'<td class="card" style="[^"]*padding:20px 24px 18px 24px', html)
    assert re.search(r'<strong style="[^"]*background-color:#fef3c7', html)


def test_wrapped_text_wraps_to_itself(renderer: Renderer) -> None:
    text = renderer.render(digest(n=4, more=30), CTX).text
    assert wrap_lines(text) == text and wrap_text(text) == text
    long = "    " + "word " * 40 + "https://example.org/" + "x" * 90 + " end\n\n\n"
    assert wrap_lines(wrap_lines(long)) == wrap_lines(long)


def shells_inlined_each_time(tmp_path: Path) -> Renderer:
    """A renderer that cannot share layouts: its stylesheet reads attribute values (in a rule
    that matches nothing, so its messages must equal a normal renderer's)."""
    templates = tmp_path / "templates"
    shutil.copytree(Renderer().templates_dir, templates)
    with (templates / "email.css").open("a") as css:
        css.write("\n[data-never] { color: red; }\n")
    return Renderer(templates)


def varied_digests() -> list[tuple[Digest, EmailContext]]:
    """Digests of several shapes, with strings that HTML escapes or the serialiser rewrites."""
    names = ["Ada", 'Tom "T" <Tomcat> & Co', "Zoë\u00a0O'Brien", "", "李 小龙 🐉"]
    out = []
    for n, name in enumerate(names):
        sub = ADA.model_copy(update={"name": name or None, "email": f"reader{n}@example.org"})
        topics = (f'{name} & "topics"', "a < b > c") if name else ()
        rules = ((name or "x",), (name or "x", "a < b"), ("a < b",), ("a < b",), ())
        title = f'Quotes "{name}" & <tags>\u00a0here'
        picks = (replace(match(paper(n)), paper=replace(paper(n), title=title)),)
        ctx = replace(CTX, unsubscribe_url=f'https://u.example.org/x?a=1&b={n}&q="{n}"')
        shapes = [
            (digest(n=1 + n % 3, more=n * 9, topics=topics), ctx),
            (replace(digest(n=2, more=0), matches=picks), ctx),
            (digest(n=1, kind="alert", topics=(name or "x",)), ctx),
            (replace(grouped_alert(max_papers=1 + n % 3), rules=rules), ctx),
            (digest(n=0, more=0, kind="empty"), replace(ctx, contact=None)),
        ]
        out += [(replace(d, subscriber=sub), c) for d, c in shapes]
    return out


def test_shared_layouts_give_exactly_the_messages_inlined_one_by_one(tmp_path: Path) -> None:
    shared, each = Renderer(), shells_inlined_each_time(tmp_path)
    cases = varied_digests()
    for d, ctx in cases + cases:  # the second round fills kept layouts
        assert shared.render(d, ctx) == each.render(d, ctx), d.subscriber.name
    assert shared._layouts._kept and each._layouts._kept is None  # type: ignore[attr-defined]


def test_a_layout_serves_every_subscriber_of_the_same_shape() -> None:
    fresh = Renderer()
    for n in range(20):
        sub = ADA.model_copy(update={"name": f"Reader {n}", "email": f"r{n}@example.org"})
        fresh.render(
            replace(digest(n=3, more=2), subscriber=sub), replace(CTX, contact=f"c{n}@x.org")
        )
    assert len(fresh._layouts._kept) == 1  # type: ignore[attr-defined]


def test_strings_the_html_parser_would_change_are_inlined_directly(tmp_path: Path) -> None:
    shared, each = Renderer(), shells_inlined_each_time(tmp_path)
    d = digest(n=2, more=1, topics=("carriage\rreturn", "nul\x00byte"))
    for _ in range(2):
        assert shared.render(d, CTX) == each.render(d, CTX)


def test_lines_wrap_as_textwrap_wraps_them() -> None:
    rng = random.Random(78)
    words = [
        "a",
        "an",
        "word",
        "routing",
        "x" * 39,
        "é",
        "•",
        "-",
        "1.",
        "http://e.org/" + "u" * 70,
    ]
    for _ in range(5000):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        line = rng.choice(["", "", "  ", "- ", "    ", "12. ", "  * "]) + line
        line = line.replace(" ", rng.choice([" ", " ", "  ", "\t", "\xa0"]), rng.randint(0, 2))
        indent = " " * len(re.match(r"\s*(?:[-*•]\s+|\d+\.\s+)?", line)[0])  # type: ignore[index]
        expected = textwrap.wrap(
            line, width=78, subsequent_indent=indent, break_long_words=False,
            break_on_hyphens=False,
        ) if len(line) > 78 and " " in line.strip() else [line]  # fmt: skip
        assert wrap_lines(line) == "".join(f"{x}\n" for x in expected), repr(line)


def test_text_with_wrapped_blocks_in_their_slot_is_the_whole_text_wrapped(
    renderer: Renderer,
) -> None:
    for d in [digest(n=4, more=30), digest(n=1, kind="alert"), digest(n=0, more=0)]:
        assert renderer.render(d, CTX).text == wrap_text(whole_text(renderer, d, CTX))
    for d in [grouped_alert(), grouped_alert(max_papers=2)]:
        assert renderer.render(d, CTX).text == wrap_text(whole_text(renderer, d, CTX))


def whole_text(r: Renderer, d: Digest, ctx: EmailContext) -> str:
    """The plain-text template rendered with the paper blocks in it, before wrapping."""
    d = listed_only(d)
    kind = template_kind(d)
    papers = [r._view(m.paper, m.reasons, m.snippet, m.marks) for m in d.matches]  # type: ignore[attr-defined]
    groups = rule_groups(d)
    more = [r._more(p) for p in d.more]  # type: ignore[attr-defined]
    if groups.more_also:
        more = [replace(m, why=why) for m, why in zip(more, groups.more_also, strict=True)]
    lone = len(papers) == 1  # a lone pick: no number
    blocks = "".join(
        r._heading("txt", head) + r._block(p, 0 if lone else n, why)  # type: ignore[attr-defined]
        for n, p, head, why in groups.picks(papers)
    )
    listing = _listing(papers, [], more, d.unlisted, groups)
    values = r._context(d, ctx, kind) | listing | {"blocks": blocks}  # type: ignore[attr-defined]
    return str(r._template(kind, "txt").render(values))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Who:
    name: str
    note: str


LAYOUT_CSS = "p { margin: 0; } .a { color: red; } .b { color: blue; } span { padding: 1px; }"
LAYOUT = (
    '<html><body><p class="{{ cls }}">{% if name == "Ada" %}Hi Ada{% else %}Hello {{ name }}'
    '{% endif %}</p>{% for t in topics %}<span title="{{ t }}">{{ t }}</span>{% endfor %}'
    "<p>{{ count }} · {{ who.name }}{% if who.note %} ({{ who.note }}){% endif %}</p>"
    "</body></html>"
)


def test_a_replayed_layout_is_exactly_the_message_rendered_and_inlined() -> None:
    """Filling a layout without rendering (a replay) gives what rendering and inlining gives;
    a context that would render another layout never gets this one."""
    template = Environment(autoescape=True).from_string(LAYOUT)
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, extra_css=LAYOUT_CSS)
    layouts = Layouts(inliner.inline, LAYOUT_CSS, 16)
    renders: list[object] = []

    def render(context: Mapping[str, object]) -> str:
        renders.append(context)
        return template.render(context)

    ada = {"cls": "a", "name": "Ada", "topics": ["x & y", 'q "z"'], "count": 2}
    ada |= {"who": Who("Grace <G>", "")}
    contexts = [
        ada,
        ada | {"topics": ["other", "topics\u00a0here"], "who": Who("Alan", "")},  # same layout
        ada | {"name": "Bob"},  # another branch: must not get Ada's layout
        ada | {"cls": "b"},  # another class: other styles
        ada | {"topics": ["one", "two", "three"]},  # another length
        ada | {"count": 3},  # another number
        ada | {"count": 2.0},  # a float shows as 2.0
        ada | {"who": Who("Grace", "a note")},  # a string no longer empty
        ada | {"count": datetime(2025, 3, 4, 5, 6, tzinfo=UTC)},  # not replayed: rendered
    ]
    expected = [inliner.inline(template.render(c)) for c in contexts]
    assert len(set(expected)) == len(expected)
    for round in range(2):
        for n, (context, html) in enumerate(zip(contexts, expected, strict=True)):
            renders.clear()
            assert layouts.inline(render, context) == html, (round, n)
            if round == 1 or n == 1:  # replayed: the layout filled without rendering
                assert (renders == []) == (n < len(contexts) - 1), (round, n)


def test_layouts_are_not_shared_across_render_functions() -> None:
    first = Environment(autoescape=True).from_string("<p>A {{ name }}</p>")
    second = Environment(autoescape=True).from_string("<p>B {{ name }}</p>")
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, extra_css=LAYOUT_CSS)
    layouts = Layouts(inliner.inline, LAYOUT_CSS, 16)
    for _ in range(2):
        for template in (first, second):
            for name in ("Ada", "Bob & Co"):
                got = layouts.inline(template.render, {"name": name})
                assert got == inliner.inline(template.render(name=name))


def test_plain_text_layouts_give_exactly_the_text_rendered() -> None:
    template = Environment().from_string(
        "{{ name }} & {{ other }}: {% if name == 'Ada' %}hi{% endif %}{{ items|join(', ') }}\n"
    )
    layouts = Layouts(None, "", 16)
    contexts: list[dict[str, object]] = [
        {"name": "Ada", "other": "<x>", "items": ["a", "b"]},
        {"name": "Bob", "other": '"q"', "items": ["c", "d"]},
        {"name": "Ada", "other": "\u00a0", "items": []},
        {"name": "Cy", "other": "carriage\rreturn", "items": ["e", "f"]},
    ]
    for _ in range(2):
        for context in contexts:
            assert layouts.inline(template.render, context) == template.render(context)


def test_text_parts_filled_into_layouts_are_the_templates_rendered() -> None:
    fresh = Renderer()
    for d, ctx in varied_digests() + varied_digests():
        assert fresh.render(d, ctx).text == wrap_text(whole_text(fresh, d, ctx))
    assert fresh._text_layouts._kept  # type: ignore[attr-defined]


def varied_cards() -> list[tuple[PaperView, int, bool]]:
    """Cards of many shapes, with strings that HTML escapes or the serialiser rewrites."""
    titles = ['Quotes "q" & <tags>\u00a0here', "Plain", "Zoë O'Brien 李 🐉"]
    snippets = [("", ()), ("<b>bold</b> & marked", ((0, 3), (12, 18))), ("x" * 600, ((590, 599),))]
    reasons = [(), ("keyword: a & b",), ("plain reason", "author: X <y>")]
    cards = []
    for n in range(27):
        p = paper(n, title=titles[n % 3], upvotes=[None, 1, 42][n // 3 % 3])
        if n % 4 == 0:
            p = replace(p, authors=(), url=None, pdf_url=None, hf_url=None, code_url=None)
        text, marks = snippets[n // 9 % 3]
        view = paper_view(Match(p, 0.5, reasons[n % 3], text, marks))
        cards += [(view, 1 + n % 3, True), (view, 1 + n % 3, False)]
    return cards


def test_cards_filled_into_layouts_are_the_cards_rendered_and_inlined() -> None:
    fresh = Renderer()
    card = fresh._macro("html", "paper_card")  # type: ignore[attr-defined]
    for view, rank, show_rank in varied_cards() + varied_cards():
        expected = fresh._inline_card(str(card(view, rank, show_rank)))  # type: ignore[attr-defined]
        assert fresh._make_card(view, rank, show_rank) == expected  # type: ignore[attr-defined]
    kept = fresh._card_layouts._kept  # type: ignore[attr-defined]
    before = len(kept)
    for n in range(10):  # the same shape: one layout more, whatever the strings and the rank
        p = paper(6, title=f"Title {n} & more", authors=(f"Author {n}",), upvotes=n + 2)
        view = paper_view(Match(p, 0.5, (f"keyword: {n}",), f"Snippet {n} <marked>", ((0, 7),)))
        expected = fresh._inline_card(str(card(view, n + 1, True)))  # type: ignore[attr-defined]
        assert fresh._make_card(view, n + 1, True) == expected  # type: ignore[attr-defined]
    assert len(kept) == before + 1


def test_one_line_collapses_every_kind_of_whitespace() -> None:
    spaces = [c for c in map(chr, range(0x3100)) if c.isspace()] + ["\u3000", "\u200b", "\ufeff"]
    rng = random.Random(1)
    for _ in range(20000):
        text = "".join(rng.choice([*spaces, "a", "é", " ", "  ", "x y"]) for _ in range(6))
        assert one_line(text) == re.sub(r"\s+", " ", text).strip(), repr(text)


@dataclass(frozen=True)
class Rule:
    name: str
    authors: tuple[str, ...] = ()

    def label(self) -> str:
        return self.name or ", ".join(self.authors)


class Shelf:
    """An object that is false when empty, as a template may test it."""

    def __init__(self, *items: str) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)


class Html(str):
    """A string that is HTML already (it has ``__html__``), though not ``Markup``."""

    def __html__(self) -> str:
        return str(self)


LOOKS_AT_STRINGS: list[tuple[str, list[dict[str, object]]]] = [
    ("{% for r in rules %}{{ r.label() }} {% endfor %}", [{"rules": [Rule("", ("Ada", "Bo"))]}]),
    ("{{ name|upper }}", [{"name": "ADA"}, {"name": "ada"}]),
    ("{{ name|trim }}.", [{"name": "ada"}, {"name": " ada "}]),
    ('{% if name < "m" %}early{% endif %}', [{"name": "zed"}, {"name": "ada"}]),
    ('{% if "x" in name %}x{% endif %}', [{"name": "ab"}, {"name": "xy"}]),
    ("{{ names|sort|join(',') }}", [{"names": ["a", "b"]}, {"names": ["b", "a"]}]),
    ("{{ names|unique|join(',') }}", [{"names": ["a", "b"]}, {"names": ["a", "a"]}]),
    ("{{ name|length }}", [{"name": "abc"}, {"name": "ab"}]),
    ("{% if shelf %}some{% else %}none{% endif %}", [{"shelf": Shelf("a")}, {"shelf": Shelf()}]),
    (
        "{% if a == b %}same{% endif %}",
        [{"a": Rule("x"), "b": Rule("y")}, {"a": Rule("x"), "b": Rule("x")}],
    ),
    ("{{ name }}", [{"name": Html("plain")}, {"name": Html("<b>bold</b>")}]),
    ("&{{ name }}", [{"name": "x"}, {"name": "amp;"}]),
]


@pytest.mark.parametrize(("source", "contexts"), LOOKS_AT_STRINGS)
def test_a_template_that_looks_at_strings_or_objects_is_rendered_as_they_are(
    source: str, contexts: list[dict[str, object]]
) -> None:
    """What a layout cannot stand for (a string's case, order or length, an object's truth or
    equality, a method called) is rendered as it is, never filled with the wrong strings."""
    html = f"<html><body><p>{source}</p></body></html>"
    template = Environment(autoescape=True).from_string(html)
    inliner = css_inline.CSSInliner(load_remote_stylesheets=False, extra_css=LAYOUT_CSS)
    for text in (False, True):
        layouts = Layouts(None if text else inliner.inline, LAYOUT_CSS, 16)
        for context in contexts + contexts[::-1] + contexts:
            expected = template.render(context)
            expected = expected if text else inliner.inline(expected)
            assert layouts.inline(template.render, context) == expected, (source, context)


def test_the_observations_kept_are_bounded_however_large_the_contexts() -> None:
    template = Environment().from_string("{{ n }}{% for t in topics %} {{ t }}{% endfor %}")
    layouts = Layouts(None, "", 4)
    for n in range(200):  # each a layout of its own, observed before its 500 topics
        context = {"n": n, "topics": [f"topic {k}" for k in range(500)]}
        assert layouts.inline(template.render, context) == template.render(context)
    nodes, todo = 0, list(layouts._replays.values())
    while todo:
        nodes += 1
        todo += todo.pop().next.values()
    assert nodes <= REPLAY_STEPS_PER_LAYOUT * 4 + 510
