"""The unsubscribe endpoint over real HTTP, recording into a real SQLite file."""

from __future__ import annotations

import html
import logging
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.message import Unsubscribe, unsubscribe_token
from bot.store import Store
from bot.web import UnsubscribeServer, address_family


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


def test_links_under_a_base_url_with_a_path_work(tmp_path: Path) -> None:
    """The link in the email, then the confirmation form's post, under a path prefix (and
    without it, as a proxy that strips the prefix forwards it)."""
    store = Store(f"sqlite:///{tmp_path / 'web.db'}")
    public = "https://example.org/paperbot"
    httpd = UnsubscribeServer(("127.0.0.1", 0), store, "secret", public)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        for email, path in [("ada@example.org", "/paperbot"), ("bob@example.org", "")]:
            links = Unsubscribe.for_recipient(email, base_url=public, secret="secret", mailto=None)
            assert links.url is not None and links.url.startswith(f"{public}/unsubscribe?")
            link = httpx.URL(links.url.replace(public, f"{base}{path}"))
            page = httpx.get(link)
            assert page.status_code == 200, page.text
            action = re.search(r'<form method="post" action="([^"]+)"', page.text)
            assert action is not None
            assert httpx.post(link.join(html.unescape(action[1]))).status_code == 200
            assert email in store.suppressed()
        token = unsubscribe_token("secret", "cy@example.org")
        assert httpx.get(f"{base}/paperbot/other?token={token}").status_code == 404
        assert httpx.get(f"{base}/elsewhere/unsubscribe?token={token}").status_code == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
        store.close()


def test_health_and_unknown_paths(server: tuple[str, Store]) -> None:
    base, store = server
    health = httpx.get(f"{base}/healthz")
    assert (health.status_code, health.text) == (200, "ok\n")
    token = unsubscribe_token("secret", "ada@example.org")
    for path in ("/", "/other", f"/other?token={token}", "/unsubscribe/extra"):
        assert httpx.get(f"{base}{path}").status_code == 404, path
        assert httpx.post(f"{base}{path}").status_code == 404, path
    assert "Not found" in httpx.get(f"{base}/").text
    head = httpx.head(f"{base}/healthz")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "3", b"")
    assert httpx.head(f"{base}/unsubscribe?token={token}").status_code == 200
    assert httpx.head(f"{base}/other").status_code == 404
    assert not store.suppressed(), "HEAD, like GET, changes nothing"


def test_tokens_are_redacted_in_the_access_log(
    server: tuple[str, Store], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = server
    token = unsubscribe_token("secret", "ada@example.org")
    with caplog.at_level(logging.INFO, logger="bot.web"):
        assert httpx.get(f"{base}/unsubscribe?token={token}&x=1").status_code == 200
        assert httpx.get(f"{base}/unsubscribe?token=garbage").status_code == 400
    requests = [r.getMessage() for r in caplog.records if "GET /unsubscribe" in r.getMessage()]
    assert len(requests) == 2
    assert all("token=[redacted]" in line for line in requests), requests
    assert token not in caplog.text and "garbage" not in caplog.text
    assert "&x=1" in requests[0], "only the token is hidden"


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
    assert 'action="?token=' in page.text, "relative: back to the path the page came from"


def test_serve_on_a_busy_port_is_one_clear_line(env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_serve_on_a_bad_host_is_one_clear_line(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "999.1.1.1", "--port", "0"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot listen on 999.1.1.1:0: ")
    assert "Traceback" not in result.output


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize(("host", "via"), [("::1", "[::1]"), ("::", "[::1]"), ("::", "127.0.0.1")])
def test_serves_on_ipv6_and_dual_stack(tmp_path: Path, host: str, via: str) -> None:
    store = Store(f"sqlite:///{tmp_path / 'web.db'}")
    httpd = UnsubscribeServer((host, 0), store, "secret")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        assert httpx.get(f"http://{via}:{httpd.server_port}/healthz").text.strip() == "ok"
    finally:
        httpd.shutdown()
        httpd.server_close()
        store.close()


@pytest.mark.parametrize(
    ("host", "family"),
    [("", socket.AF_INET), ("localhost", socket.AF_INET), ("0.0.0.0", socket.AF_INET),
     ("::", socket.AF_INET6), ("::1", socket.AF_INET6)],
)  # fmt: skip
def test_only_an_ipv6_address_listens_on_ipv6(host: str, family: socket.AddressFamily) -> None:
    assert address_family(host) == family


def test_serve_refuses_a_port_out_of_range(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "65535" in result.output
