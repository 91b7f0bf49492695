"""`paperbot unsubscribe`, `unsuppress` and `status` on a real database and SMTP server."""

from __future__ import annotations

import json
import re
from typing import Any

from typer.testing import CliRunner

from bot.cli import app
from bot.store import Store
from tests.smtp_faults import FaultServer

runner = CliRunner()
ADA = "ada@example.org"


def cli(*args: str, server: FaultServer | None = None) -> Any:
    return runner.invoke(app, list(args), env=server.env() if server else None)


def send(server: FaultServer) -> Any:
    return cli("send", "--date", "2026-11-25", server=server)


def test_unsubscribe_by_email_holds_until_an_admin_clears_it(
    env: dict[str, str], faults: FaultServer
) -> None:
    result = cli("unsubscribe", "Ada@Example.org")
    assert result.exit_code == 0 and "ada@example.org unsubscribed" in result.output
    assert Store(env["PAPERBOT_DATABASE_URL"]).suppressed()[ADA].reason == "unsubscribed"
    assert "address is suppressed" in send(faults).output
    assert faults.handler.to(ADA) == []
    assert cli("unsubscribe", ADA).output.startswith(f"{ADA} is already suppressed")
    cleared = cli("unsuppress", ADA)
    assert cleared.exit_code == 0 and "was: unsubscribed" in cleared.output
    assert send(faults).exit_code == 0 and len(faults.handler.to(ADA)) == 1
    assert cli("unsuppress", ADA).exit_code == 1


def test_unsubscribe_with_the_token_from_the_message(
    env: dict[str, str], faults: FaultServer
) -> None:
    assert send(faults).exit_code == 0
    header = str(faults.handler.to(ADA)[0]["List-Unsubscribe"])
    token = re.search(r"token=([^>]+)>", header)
    assert token is not None
    assert cli("unsubscribe", token.group(1).replace("%3D", "=")).exit_code == 0
    assert ADA in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()
    forged = cli("unsubscribe", "YWRhQGV4YW1wbGUub3Jn.forged")
    assert forged.exit_code == 1 and "not an email address or a valid" in forged.output


def test_status_shows_runs_states_retries_and_suppressions(
    env: dict[str, str], faults: FaultServer
) -> None:
    faults.handler.rcpt[ADA] = ["451 4.3.0 try later"]
    send(faults)
    cli("unsubscribe", "carol@example.org")
    data = json.loads(cli("status", "--format", "json").output)
    run = data["runs"][0]
    assert run["command"] == "send" and run["counts"]["failed"] == 1
    assert run["sources"][0]["status"] == "ok"
    digest = next(d for d in data["deliveries"] if d["kind"] == "digest")
    assert (digest["date"], digest["sent"], digest["temp_failed"], digest["skipped"]) == (
        "2026-11-25", 1, 1, 1,
    )  # fmt: skip
    assert [(u["email"], u["last_code"]) for u in data["upcoming"]] == [(ADA, 451)]
    assert [(s["email"], s["reason"]) for s in data["suppressed"]] == [
        ("carol@example.org", "unsubscribed")
    ]
    table = cli("status")
    assert table.exit_code == 0
    for heading in ("Last runs", "Deliveries by state", "Pending retries", "Suppressed"):
        assert heading in table.output
    assert cli("status", "--format", "xml").exit_code == 2
