"""The rendered emails in headless Chromium: phone and desktop widths, light and dark.

Screenshots go to ``$PAPERBOT_SCREENSHOTS`` when set (to look at them), else to a temporary folder.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import Browser, ensure_chromium
from render_samples import CTX, digest, grouped_alert
from test_render import hostile_digest, long_text_digest

from bot.models import Digest
from bot.outbox import write_index
from bot.render import Renderer
from bot.web import page

pytestmark = pytest.mark.browser

SAMPLES: dict[str, Digest] = {
    "digest": digest(),
    "alert": digest(n=1, more=0, kind="alert"),
    "grouped": grouped_alert(max_papers=3),
    "empty": digest(n=0, more=0, kind="empty"),
    "long": long_text_digest(),
}
WIDTHS = (375, 800)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path, reason = ensure_chromium()
    if path is None:
        pytest.skip(reason)
    with Browser(path) as running:
        yield running


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = Path(os.environ.get("PAPERBOT_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    renderer = Renderer()
    written = {}
    for name, dig in {**SAMPLES, "hostile": hostile_digest()}.items():
        written[name] = folder / f"{name}.html"
        written[name].write_text(renderer.render(dig, CTX).html, encoding="utf-8")
    return written


def png_size(png: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    return width, height


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(SAMPLES))
def test_fits_the_screen_and_reads_well(
    browser: Browser, pages: dict[str, Path], name: str, width: int, dark: bool
) -> None:
    session = browser.open(pages[name], width, dark)
    report = browser.measure(session)
    assert report["viewport"] == width
    assert report["scrollWidth"] <= width, "the page scrolls sideways"
    assert report["outside"] == [], "text outside the viewport"
    assert report["minContrast"] >= 4.5, report["lowContrast"]
    assert report["dark"] is dark
    assert report["lang"] == "en"
    headings = [int(h[1]) for h in report["headings"]]
    assert headings[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(headings))
    png = pages[name].with_name(f"{name}-{width}{'-dark' if dark else ''}.png")
    browser.screenshot(session, png)
    shot_width, shot_height = png_size(png)
    assert shot_width == width and shot_height > 300


def test_dark_mode_darkens_the_page(browser: Browser, pages: dict[str, Path]) -> None:
    light = browser.measure(browser.open(pages["digest"], 800))
    dark = browser.measure(browser.open(pages["digest"], 800, dark=True))
    assert light["bodyBackground"] == "rgb(243, 244, 246)"
    assert dark["bodyBackground"] == "rgb(13, 17, 23)"


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_unsubscribe_page_follows_the_readers_colour_scheme(
    browser: Browser, tmp_path: Path, dark: bool
) -> None:
    html = tmp_path / "unsubscribe.html"
    html.write_bytes(page("Unsubscribe", "<p>Stop emails?</p><form><button>Yes</button></form>"))
    report = browser.measure(browser.open(html, 375, dark))
    assert report["dark"] is dark and report["minContrast"] >= 4.5, report["lowContrast"]
    assert report["bodyBackground"] == ("rgb(17, 24, 39)" if dark else "rgb(255, 255, 255)")


def test_the_outbox_index_fits_a_phone(browser: Browser, tmp_path: Path) -> None:
    """``outbox/index.html`` lists long addresses and subjects: on a phone each message is its
    lines one under another (four columns leave each a few letters), long ones wrapped, and
    nothing runs off the screen."""
    name = "Ada Augusta King, Countess of Lovelace"
    for n in range(3):
        head = (
            f"Date: Sat, 28 Nov 2026 07:30:0{n} +0000\r\n"
            f"To: {name} <ada.augusta.king.countess.of.lovelace{n}@analytical-engine.example.org>\r\n"
            f"Subject: 10 papers for Sat 28 Nov: {'Mixture-of-Experts ' * 8}\r\n\r\nbody\r\n"
        )
        (tmp_path / f"ada_{n}.eml").write_bytes(head.encode())
    index = write_index(tmp_path)
    for width in (375, 390):
        session = browser.open(index, width)
        report = browser.measure(session)
        assert report["viewport"] == width
        assert report["scrollWidth"] <= width, "the page scrolls sideways"
        assert report["outside"] == [], "text outside the viewport"
        lefts = browser.evaluate(
            session,
            "Array.from(document.querySelectorAll('tr:nth-child(2) td'))"
            ".map(td => td.getBoundingClientRect().left)",
        )
        assert len(lefts) == 4 and len(set(lefts)) == 1, lefts
    assert "<p>3 messages</p>" in index.read_text()


def test_the_outbox_index_follows_a_dark_system(browser: Browser, tmp_path: Path) -> None:
    """Read at night on a dark system, the index is light text on dark, not a white page."""
    head = "Date: Sat, 28 Nov 2026 07:30:00 +0000\r\nTo: ada@example.org\r\nSubject: Hi\r\n\r\n"
    (tmp_path / "ada_0.eml").write_bytes(head.encode())
    index = write_index(tmp_path)
    assert "<p>1 message</p>" in index.read_text()
    text = "getComputedStyle(document.body).color"
    assert browser.evaluate(browser.open(index, 800), text) == "rgb(0, 0, 0)"
    assert browser.evaluate(browser.open(index, 800, dark=True), text) == "rgb(255, 255, 255)"


def test_phone_layout_uses_the_full_width(browser: Browser, pages: dict[str, Path]) -> None:
    session = browser.open(pages["digest"], 375)
    card = browser.evaluate(
        session, "document.querySelector('.card').getBoundingClientRect().width"
    )
    assert 330 <= card <= 375


def boxes(browser: Browser, session: str, selector: str, within: str = "body") -> Any:
    """The left, right and height of each element ``selector`` finds in the first ``within``."""
    return browser.evaluate(
        session,
        f"Array.from(document.querySelector({within!r}).querySelectorAll({selector!r}))"
        ".map(a => { const r = a.getBoundingClientRect(); return [r.left, r.right, r.height]; })",
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_paper_links_are_big_enough_to_tap(
    browser: Browser, pages: dict[str, Path], width: int
) -> None:
    """A finger needs 44 px: each paper link's box, on a phone and on a tablet too (a touch
    screen wider than the phone layout), and on a phone the space between two."""
    session = browser.open(pages["digest"], width)
    first = boxes(browser, session, "a", within=".links")
    every = boxes(browser, session, ".links a")
    assert len(first) >= 3 and all(height >= 44 for _, _, height in every), every
    if width < 480:
        assert all(b[0] - a[1] >= 20 for a, b in itertools.pairwise(first)), first


@pytest.mark.parametrize("name", ["digest", "grouped"])
def test_the_listed_matches_and_the_unsubscribe_link_are_big_enough_to_tap_on_a_phone(
    browser: Browser, pages: dict[str, Path], name: str
) -> None:
    """The further matches, listed by title, and the unsubscribe link are links of their own
    (not words in a sentence): 44 px high on a phone, a short title too."""
    session = browser.open(pages[name], 375)
    listed = boxes(browser, session, ".more-list a")
    leave = boxes(browser, session, ".footer a[href*=unsubscribe]")
    assert listed and len(leave) == 1
    assert all(height >= 44 for _, _, height in listed + leave), (listed, leave)


def test_an_alert_names_its_rules_as_they_are_written(
    browser: Browser, pages: dict[str, Path]
) -> None:
    """The line above an alert's heading is in capitals, but not the names of the rules
    ("MoE" is not "MOE"), which the subscriber wrote."""
    session = browser.open(pages["grouped"], 375)
    kicker = browser.evaluate(session, "document.querySelector('.kicker').innerText")
    assert kicker == "ALERT · SSMs, Okafor, MoE", kicker


def test_hostile_content_runs_nothing(browser: Browser, pages: dict[str, Path]) -> None:
    session = browser.open(pages["hostile"], 800)
    assert browser.evaluate(session, "document.scripts.length") == 0
    assert browser.evaluate(session, "document.images.length") == 0
    assert browser.evaluate(session, "typeof window.__pwned") == "undefined"
    hrefs = browser.evaluate(session, "[...document.links].map(a => a.protocol)")
    assert set(hrefs) <= {"https:", "http:", "mailto:"}


def test_a_listed_match_without_a_link_keeps_why_on_a_line_of_its_own_on_a_phone(
    browser: Browser, tmp_path: Path
) -> None:
    """On a phone a listed title is a link of its own line, and why it matched goes below it:
    below a title that has no link too, not run on after its last word."""
    html = tmp_path / "linkless.html"
    sample = grouped_alert(max_papers=2, linkless=(1,))  # 1 fires two rules: it says why
    html.write_text(Renderer().render(sample, CTX).html, encoding="utf-8")
    for width in WIDTHS:
        session = browser.open(html, width)
        listed = browser.evaluate(
            session, "Array.from(document.querySelectorAll('.more-item')).map(li => li.innerText)"
        )
        assert "Routing Tokens in a Sparse Mixture of Experts\nAlso matches “MoE”" in listed, (
            width, listed,
        )  # fmt: skip
