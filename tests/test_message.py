"""Message building: structure, headers, header safety, unsubscribe tokens."""

from __future__ import annotations

import binascii
import random
import re
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage

from email_validator import validate_email

from bot.message import (
    Envelope,
    Unsubscribe,
    build_message,
    html_part,
    list_id,
    new_message_id,
    recipient,
    unsubscribe_token,
    verify_token,
)
from bot.mime import _rewrapped, header, quoted_printable
from bot.smtp import data_payload

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


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert not [d for part in parsed.walk() for d in part.defects]
    return parsed


def lines_of(raw: bytes) -> list[bytes]:
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    return raw.split(b"\r\n")


def test_text_then_html_alternatives() -> None:
    msg = build_message(envelope(), "3 papers", "plain ü\n", "<p>html ü</p>")
    parsed = parse(msg.data)
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = list(parsed.iter_parts())
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content() == "plain ü\r\n" and html.get_content() == "<p>html ü</p>\r\n"
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["MIME-Version"] == "1.0"
    assert (msg.sender, msg.recipient) == ("digest@paperbot.example.org", "ada@example.org")
    assert html_part(msg.data) == "<p>html ü</p>\n" and msg.subject == "3 papers"


def test_headers_match_the_envelope() -> None:
    env = envelope()
    parsed = parse(build_message(env, "s", "t", "h").data)
    assert str(parsed["From"]) == "paperbot <digest@paperbot.example.org>"
    assert str(parsed["To"]) == "Ada <ada@example.org>"
    assert parsed["Message-ID"] == env.message_id
    assert parsed["Date"].datetime == env.date
    assert parsed["List-Id"] == "paperbot digests <digests.paperbot.example.org>"


def test_non_ascii_subject_and_names_use_encoded_words() -> None:
    subject = "Dürer — 3 papers for Tue 25 Nov: Temporally Coherent Video Diffusion with Latent…"
    name = 'Zoë "the" Ada, Lovelace-Byron ' + "ü" * 40
    msg = build_message(envelope(name=name), subject, "t", "h")
    raw = msg.data
    assert raw.isascii() and all(len(line) <= 998 for line in lines_of(raw))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in lines_of(head) if b"List-Unsubscribe" not in line)
    parsed = parse(raw)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].addr_spec == "ada@example.org"
    # RFC 2047 decoding (Python's address parser keeps the space between split encoded-words)
    to = raw.split(b"\r\nTo: ", 1)[1].split(b"\r\nDate:", 1)[0].decode().replace("\r\n", "")
    assert str(make_header(decode_header(to))) == f"{name} <ada@example.org>"
    short = parse(build_message(envelope(name="Zoë Æther"), "s", "t", "h").data)
    assert short["To"].addresses[0].display_name == "Zoë Æther"


def test_ascii_names_with_specials_are_quoted() -> None:
    for name in ["Lovelace, Ada", 'A. "Countess" Lovelace', "=?utf-8?q?x?= Ada", "Ada (math)"]:
        parsed = parse(build_message(envelope(name=name), "s", "t", "h").data)
        assert parsed["To"].addresses[0].display_name == name


def test_bodies_are_quoted_printable_and_decode_exactly() -> None:
    text = "first\n.\nFrom here\ntrailing space  \n= sign\n" + "long " * 40 + "\nñ\n"
    html = "<p>" + "x" * 300 + "</p>\n<p>é=3D</p>"
    parsed = parse(build_message(envelope(), "s", text, html).data)
    plain, rich = list(parsed.iter_parts())
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n") == html + "\n"


def test_plain_text_only_message() -> None:
    msg = build_message(envelope(), "[paperbot] alert", "What happened:\nü\n")
    parsed = parse(msg.data)
    assert parsed.get_content_type() == "text/plain" and html_part(msg.data) is None
    assert parsed.get_content() == "What happened:\r\nü\r\n"


def test_crlf_never_reaches_a_header() -> None:
    msg = build_message(
        envelope(name="Ada\r\nBcc: evil@example.net"), "Hi\r\nBcc: evil@example.net", "t", "h"
    )
    raw = msg.data
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw
    assert parse(raw)["Bcc"] is None


def test_message_ids_are_unique_and_in_sender_domain() -> None:
    made = {new_message_id(SENDER) for _ in range(1000)}
    assert len(made) == 1000
    assert all(m.endswith("@paperbot.example.org>") for m in made)


def test_ids_name_an_international_sender_domain_in_ascii() -> None:
    sender = Address("Zürich", addr_spec="digest@bücher.example")
    assert new_message_id(sender).endswith("@xn--bcher-kva.example>")
    assert list_id("digest", sender) == "paperbot digests <digests.xn--bcher-kva.example>"


def test_a_quiet_days_note_belongs_to_the_digests_list() -> None:
    digests = "paperbot digests <digests.paperbot.example.org>"
    assert list_id("digest", SENDER) == list_id("empty", SENDER) == digests
    assert list_id("alert", SENDER) == "paperbot alerts <alerts.paperbot.example.org>"


def test_unsubscribe_headers() -> None:
    links = Unsubscribe.for_recipient(
        "ada@example.org", base_url="https://p.example.org", secret="s", mailto="u@p.example.org"
    )
    msg = parse(build_message(envelope(unsubscribe=links), "s", "t", "h").data)
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
    msg = parse(build_message(envelope(unsubscribe=links), "s", "t", "h").data)
    assert msg["List-Unsubscribe"] and msg["List-Unsubscribe-Post"] is None


def test_no_unsubscribe_settings_no_header() -> None:
    msg = parse(build_message(envelope(), "s", "t", "h").data)
    assert msg["List-Unsubscribe"] is None


def test_tokens_verify_and_resist_forgery() -> None:
    token = unsubscribe_token("secret", "Ada@Example.org")
    assert verify_token("secret", token) == "ada@example.org"
    assert verify_token("other-secret", token) is None
    forged = unsubscribe_token("guess", "bob@example.org")
    assert verify_token("secret", forged) is None
    assert verify_token("secret", "garbage") is None
    assert verify_token("secret", "!!!.???") is None
    encoded, _, signature = token.partition(".")
    assert verify_token("secret", f"{encoded}.{signature[:-1]}") is None, "cut short"
    assert verify_token("secret", f"{encoded}.") is None
    bob = unsubscribe_token("secret", "bob@example.org").partition(".")[0]
    assert verify_token("secret", f"{bob}.{signature}") is None, "another address's signature"


def test_quoted_printable_line_by_line_equals_the_whole_body_at_once() -> None:
    """As the standard library encodes the whole body, except where a line would start with
    a dot or pass 76 columns: that line is wrapped again."""
    rng = random.Random(2611)
    pieces = [
        "a", " ", "\t", "=", ".", "\n", "\r", "\r\n", "é", "😀", "x" * 80, "x" * 73, "  ", "-",
        "\xa0",
    ]  # fmt: skip
    rewrapped = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        whole = text.replace("\r\n", "\n").replace("\r", "\n")
        whole += "" if whole.endswith("\n") else "\n"
        expected = binascii.b2a_qp(whole.replace("\n", "\r\n").encode(), istext=True)
        encoded = quoted_printable(text)
        lines = encoded.split(b"\r\n")
        assert lines.pop() == b"" and all(len(line) <= 76 for line in lines), repr(text)
        assert not any(line.startswith(b".") for line in lines), repr(text)
        if any(x.startswith(b".") or len(x) > 76 for x in expected.split(b"\r\n")):
            rewrapped += 1
            assert binascii.a2b_qp(encoded) == binascii.a2b_qp(expected), repr(text)
        else:
            assert encoded == expected, repr(text)
    assert rewrapped > 100


def test_encoded_lines_never_start_with_a_dot_nor_pass_76_columns() -> None:
    encoded = quoted_printable("x" * 75 + ".tail\n.head\n" + "y" * 74 + "=." + "z" * 80)
    assert encoded.split(b"\r\n") == [
        b"x" * 75 + b"=", b"=2Etail", b"=2Ehead", b"y" * 74 + b"=", b"=3D." + b"z" * 71 + b"=",
        b"z" * 9, b"",
    ]  # fmt: skip
    # b2a_qp writes a space in the last columns as =20, one column too many
    assert binascii.b2a_qp(b"x" * 74 + b" \r\n", istext=True) == b"x" * 74 + b"=20\r\n"
    assert quoted_printable("x" * 74 + " ") == b"x" * 74 + b"=\r\n=20\r\n"
    assert quoted_printable("x" * 74 + "\t\n") == b"x" * 74 + b"=\r\n=09\r\n"


def test_messages_go_through_smtp_data_as_they_are() -> None:
    """No bare CR or LF and no line starting with a dot, whatever the input: the mailer only
    adds the end mark, which must equal dot-stuffing and repairing the message in full."""
    rng = random.Random(1125)
    pieces = [".", "\r\n.", "\n.\n", "\r", "\n", "\r\n.\r\n", " ", "a" * 70, "é", "=", "x"]
    for _ in range(500):
        subject, name, text, html = (
            "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(4)
        )
        message = build_message(envelope(name=name), subject, text, html or None)
        data = message.data
        assert message.transparent and data.endswith(b"\r\n") and not data.startswith(b".")
        assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
        assert b"\n." not in data
        assert data_payload(data, transparent=True) == data_payload(data) == data + b".\r\n"
        parsed = parse(data)
        parts = list(parsed.iter_parts()) if html else [parsed]
        written = text.replace("\r\n", "\n").replace("\r", "\n")
        assert parts[0].get_content().replace("\r\n", "\n").rstrip("\n") == written.rstrip("\n")


def test_international_domains_are_written_as_idna_2008() -> None:
    for domain, written in [
        ("straße.de", "xn--strae-oqa.de"),
        ("bücher.example", "xn--bcher-kva.example"),
    ]:
        to = recipient(f"ada@{domain}", "Ada")
        message = build_message(replace(envelope(), recipient=to), "s", "t")
        assert message.recipient == f"ada@{written}" and f"<ada@{written}>".encode() in message.data
        assert validate_email(f"ada@{domain}", check_deliverability=False).ascii_domain == written


def test_plain_addresses_are_split_as_the_email_package_parses_them() -> None:
    for email in [
        "ada@example.org", "a.b+tag@sub.example.co.uk", "o'brien@example.ie", '"q x"@example.org',
        "x@localhost", "a@bücher.example", "plain!#$%&*/=?^_`{|}~-@example.org",
    ]:  # fmt: skip
        for name in ("Ada", None, 'Q "x" <y>'):
            assert recipient(email, name) == Address(display_name=name or "", addr_spec=email)


def rewrapped_unit_by_unit(encoded: bytes) -> bytes:
    """``bot.mime._rewrapped`` as first written: one encoded character at a time."""
    units = re.findall(rb"=[0-9A-F]{2}|[^=]", encoded[:-2].replace(b"=\r\n", b""))
    lines: list[bytes] = []
    line = b""
    for unit in units:
        if len(line) + len(unit) >= 76:
            lines.append(line + b"=")
            line = b""
        line += b"=2E" if unit == b"." and not line else unit
    lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"


def test_lines_are_wrapped_again_as_one_character_at_a_time() -> None:
    rng = random.Random(76)
    pieces = ["a", " ", "\t", "=", ".", "é", "😀", "x" * 70, "..", " .", "\xa0", "0.04em;"]
    for _ in range(5000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 120)))
        encoded = binascii.b2a_qp((line + "\r\n").encode(), istext=True)
        assert _rewrapped(encoded) == rewrapped_unit_by_unit(encoded), repr(line)


def test_a_field_that_fits_is_one_line_and_a_longer_one_is_folded() -> None:
    assert header("Subject", ["x" * 69]) == b"Subject: " + b"x" * 69 + b"\r\n"  # 78 columns
    assert header("Subject", ["a", "x" * 68]) == b"Subject: a\r\n " + b"x" * 68 + b"\r\n"
    assert header("Subject", []) == b"Subject:\r\n"
