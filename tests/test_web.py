"""The unsubscribe endpoint over real HTTP, recording into a real SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.message import unsubscribe_token
from bot.store import Store
from bot.web import UnsubscribeServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'web.db'}")
    httpd = UnsubscribeServer(("127.0.0.1", 0), store, "secret")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", store
    httpd.shutdown()
    httpd.server_close()
    store.close()


def test_get_only_asks_and_post_unsubscribes(server: tuple[str, Store]) -> None:
    base, store = server
    url = f"{base}/unsubscribe?token={unsubscribe_token('secret', 'ada@example.org')}"
    page = httpx.get(url)
    assert page.status_code == 200 and "ada@example.org" in page.text and "<form" in page.text
    assert not store.suppressed(), "a GET (link scanners) must not unsubscribe"
    done = httpx.post(url)
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert store.suppressed()["ada@example.org"].reason == "unsubscribed"


def test_one_click_post(server: tuple[str, Store]) -> None:
    base, store = server
    url = f"{base}/unsubscribe?token={unsubscribe_token('secret', 'bob@example.org')}"
    response = httpx.post(
        url,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "bob@example.org" in store.suppressed()


@pytest.mark.parametrize(
    "token", ["", "garbage", unsubscribe_token("other-secret", "ada@example.org")]
)
def test_bad_tokens_change_nothing(server: tuple[str, Store], token: str) -> None:
    base, store = server
    assert httpx.get(f"{base}/unsubscribe?token={token}").status_code == 400
    assert httpx.post(f"{base}/unsubscribe?token={token}").status_code == 400
    assert not store.suppressed()


def test_health_and_unknown_paths(server: tuple[str, Store]) -> None:
    base, _ = server
    assert httpx.get(f"{base}/healthz").text == "ok\n"
    assert httpx.get(f"{base}/other").status_code == 400


def test_html_in_the_address_is_escaped(server: tuple[str, Store]) -> None:
    base, _ = server
    token = unsubscribe_token("secret", '"<script>alert(1)</script>"@example.org')
    page = httpx.get(f"{base}/unsubscribe?token={token}").text
    assert "<script>" not in page


def test_the_form_always_posts_back_here(server: tuple[str, Store]) -> None:
    base, _ = server
    token = unsubscribe_token("secret", "ada@example.org")
    page = httpx.get(f"{base}//evil.example/unsubscribe?token={token}")
    assert "evil.example" not in page.text
    page = httpx.get(f"{base}/unsubscribe?token={token}")
    assert 'action="/unsubscribe?token=' in page.text
