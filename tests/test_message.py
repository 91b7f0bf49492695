"""Message building: structure, headers, header safety, unsubscribe tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address

from bot.message import (
    Envelope,
    Unsubscribe,
    build_message,
    new_message_id,
    recipient,
    unsubscribe_token,
    verify_token,
)

SENDER = Address("paperbot", addr_spec="digest@paperbot.example.org")


def envelope(name: str = "Ada", unsubscribe: Unsubscribe | None = None) -> Envelope:
    return Envelope(
        sender=SENDER,
        recipient=recipient("ada@example.org", name),
        message_id=new_message_id(SENDER),
        date=datetime(2026, 11, 25, 8, tzinfo=UTC),
        list_id="paperbot digests <digests.paperbot.example.org>",
        unsubscribe=unsubscribe or Unsubscribe(),
    )


def test_text_then_html_alternatives() -> None:
    msg = build_message(envelope(), "3 papers", "plain ü", "<p>html ü</p>")
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = list(parsed.iter_parts())  # type: ignore[attr-defined]
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content().strip() == "plain ü" and "html ü" in html.get_content()
    assert parsed["Auto-Submitted"] == "auto-generated"


def test_crlf_never_reaches_a_header() -> None:
    msg = build_message(
        envelope(name="Ada\r\nBcc: evil@example.net"), "Hi\r\nBcc: evil@example.net", "t", "h"
    )
    raw = msg.as_bytes()
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw


def test_message_ids_are_unique_and_in_sender_domain() -> None:
    made = {new_message_id(SENDER) for _ in range(1000)}
    assert len(made) == 1000
    assert all(m.endswith("@paperbot.example.org>") for m in made)


def test_unsubscribe_headers() -> None:
    links = Unsubscribe.for_recipient(
        "ada@example.org", base_url="https://p.example.org", secret="s", mailto="u@p.example.org"
    )
    msg = build_message(envelope(unsubscribe=links), "s", "t", "h")
    assert msg["List-Unsubscribe"].startswith("<https://p.example.org/unsubscribe?token=")
    assert (
        "<mailto:u@p.example.org?subject=unsubscribe%20ada%40example.org>"
        in msg["List-Unsubscribe"]
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_mailto_only_has_no_one_click_header() -> None:
    links = Unsubscribe.for_recipient(
        "ada@example.org", base_url=None, secret=None, mailto="u@p.example.org"
    )
    msg = build_message(envelope(unsubscribe=links), "s", "t", "h")
    assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] is None


def test_no_unsubscribe_settings_no_header() -> None:
    msg = build_message(envelope(), "s", "t", "h")
    assert msg["List-Unsubscribe"] is None


def test_tokens_verify_and_resist_forgery() -> None:
    token = unsubscribe_token("secret", "Ada@Example.org")
    assert verify_token("secret", token) == "ada@example.org"
    assert verify_token("other-secret", token) is None
    forged = unsubscribe_token("guess", "bob@example.org")
    assert verify_token("secret", forged) is None
    assert verify_token("secret", "garbage") is None
    assert verify_token("secret", "!!!.???") is None
