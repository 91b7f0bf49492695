"""The unsubscribe endpoint over real HTTP, recording into a real SQLite file."""

from __future__ import annotations

import contextlib
import html
import logging
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.message import Unsubscribe, unsubscribe_token
from bot.store import Store
from bot.web import UnsubscribeHandler, UnsubscribeServer, address_family


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


def test_links_signed_with_an_earlier_secret_still_unsubscribe(tmp_path: Path) -> None:
    """After PAPERBOT_SECRET_KEY changes, the links in the emails already sent keep working as
    long as the old key is among the previous ones; a key never used still signs nothing."""
    store = Store(f"sqlite:///{tmp_path / 'web.db'}")
    httpd = UnsubscribeServer(("127.0.0.1", 0), store, "new-secret", previous=["secret"])
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_port}/unsubscribe?token="
    try:
        old = unsubscribe_token("secret", "ada@example.org")
        assert "ada@example.org" in httpx.get(base + old).text
        one_click = httpx.post(base + old, content="List-Unsubscribe=One-Click")
        assert one_click.status_code == 200 and "ada@example.org" in store.suppressed()
        assert httpx.post(base + unsubscribe_token("new-secret", "bob@example.org")).is_success
        stranger = unsubscribe_token("other-secret", "cy@example.org")
        assert httpx.post(base + stranger).status_code == 400
        assert set(store.suppressed()) == {"ada@example.org", "bob@example.org"}
    finally:
        httpd.shutdown()
        httpd.server_close()
        store.close()


def test_serve_checks_links_of_the_previous_key_and_names_where_to_write_instead(
    env: dict[str, str],
) -> None:
    """`paperbot serve` as deployed: a link signed before PAPERBOT_SECRET_KEY changed still
    unsubscribes, and the page for a link that is not valid names the unsubscribe address."""
    environ = {
        **os.environ,
        **env,
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "PAPERBOT_SECRET_KEY": "a-new-secret",
        "PAPERBOT_SECRET_KEY_PREVIOUS": env["PAPERBOT_SECRET_KEY"],
    }
    command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"]
    with subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            started = re.search(r"(http://\S+/unsubscribe)", process.stdout.readline())
            assert started is not None
            old = unsubscribe_token(env["PAPERBOT_SECRET_KEY"], "ada@example.org")
            done = httpx.post(f"{started[1]}?token={old}", content="List-Unsubscribe=One-Click")
            assert done.status_code == 200 and "ada@example.org" in done.text
            forged = unsubscribe_token("other", "ada@example.org")
            page = httpx.get(f"{started[1]}?token={forged}")
            assert page.status_code == 400
            assert 'href="mailto:unsubscribe@paperbot.example.org?subject=unsubscribe"' in page.text
        finally:
            process.terminate()
    store = Store(env["PAPERBOT_DATABASE_URL"])
    assert store.suppressed()["ada@example.org"].reason == "unsubscribed"
    store.close()


def test_a_request_that_stops_halfway_is_dropped_and_changes_nothing(
    server: tuple[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that announces a body and never sends it is let go after the handler's timeout,
    and its address is not unsubscribed (the timeout is shortened here to keep the test quick)."""
    assert isinstance(UnsubscribeHandler.timeout, int | float) and UnsubscribeHandler.timeout <= 60
    monkeypatch.setattr(UnsubscribeHandler, "timeout", 0.3)
    base, store = server
    host, port = base.removeprefix("http://").split(":")
    token = unsubscribe_token("secret", "ada@example.org")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(
            f"POST /unsubscribe?token={token} HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 1000\r\n\r\nList-Unsubscribe".encode()
        )
        assert client.recv(100) == b"", "the server closes the connection without an answer"
    assert not store.suppressed()


def test_a_database_that_refuses_the_unsubscription_asks_to_try_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The subscriber (or the mail provider posting one-click) gets a page and a 503 with
    Retry-After, not a dropped connection, and the log says why in one line."""
    path = tmp_path / "web.db"
    store = Store(f"sqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE suppressions")
        db.commit()
    httpd = UnsubscribeServer(("127.0.0.1", 0), store, "secret")
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    token = unsubscribe_token("secret", "ada@example.org")
    try:
        with caplog.at_level(logging.INFO, logger="bot.web"):
            url = f"http://127.0.0.1:{httpd.server_port}/unsubscribe?token={token}"
            response = httpx.post(url, content="List-Unsubscribe=One-Click")
    finally:
        httpd.shutdown()
        httpd.server_close()
        store.close()
    assert response.status_code == 503 and response.headers["Retry-After"] == "300"
    assert "try the link again" in response.text
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "could not record the unsubscription of ada@example.org: no such table: suppressions"
    ]


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
