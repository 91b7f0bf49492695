"""`paperbot unsubscribe`, `unsuppress` and `status` on a real database and SMTP server."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.models import Subscriber
from bot.store import ClaimRequest, Store
from tests.conftest import run_cli
from tests.smtp_faults import FaultServer

runner = CliRunner()
ADA = "ada@example.org"
GRACE = "grace@example.org"


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


def test_unsubscribing_an_address_that_is_no_subscriber_says_so(env: dict[str, str]) -> None:
    """A typo suppresses an address nobody uses while the subscriber meant still gets mail:
    the address is suppressed anyway, with a note naming the closest subscriber."""
    result = cli("unsubscribe", "ada@exmaple.org")
    assert result.exit_code == 0, result.output
    note = "Note: ada@exmaple.org is not a subscriber (suppressed anyway); did you mean " + ADA
    assert note in result.output
    assert "ada@exmaple.org" in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()
    listed = cli("unsubscribe", ADA)  # in the profiles file, though never sent to yet
    assert listed.exit_code == 0 and "Note:" not in listed.output


def test_unsuppressing_refused_addresses_sends_their_digests_with_the_next_run(
    env: dict[str, str], faults: FaultServer
) -> None:
    """After a server refused addresses by mistake, an admin clears them all at once, by the
    reply that suppressed them or by time, and the next send delivers the refused digests."""
    replies = {ADA: "550 5.1.1 no such user", GRACE: "550 5.1.2 no such domain"}
    for email, reply in replies.items():
        faults.handler.rcpt[email] = [reply, "250 OK"]
    assert send(faults).exit_code == 1
    assert set(Store(env["PAPERBOT_DATABASE_URL"]).suppressed()) == {ADA, GRACE}
    assert cli("unsubscribe", "alan@example.org").exit_code == 0  # on purpose: kept
    assert cli("unsuppress").exit_code == 2, "nothing named: nothing cleared"
    assert cli("unsuppress", ADA, "--since", "2020-01-01").exit_code == 2, "names or filters"
    assert "no suppressed address matches" in cli("unsuppress", "--since", "2099-01-01").output
    cleared = cli("unsuppress", "--since", "2020-01-01")
    assert cleared.exit_code == 0, cleared.output
    for email, reply in replies.items():
        assert (
            f"{email} may receive mail again (was: permanent failure: refused: {reply}); its "
            "digest for 2026-11-25 goes with the worker's next sweep, or now with "
            f"`paperbot send --to {email} --date 2026-11-25`."
        ) in " ".join(cleared.output.split())
    assert set(Store(env["PAPERBOT_DATABASE_URL"]).suppressed()) == {"alan@example.org"}
    again = send(faults)
    assert again.exit_code == 0, again.output
    assert len(faults.handler.to(ADA)) == len(faults.handler.to(GRACE)) == 1


def test_unsuppress_refuses_an_empty_address(env: dict[str, str]) -> None:
    """``unsuppress ""`` (a shell variable left unset) is a mistake in the command, not an
    address that was never suppressed; nothing is cleared, not even the addresses beside it."""
    assert cli("unsubscribe", ADA).exit_code == 0
    for given in ([""], [ADA, " "]):
        result = cli("unsuppress", *given)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: EMAIL is empty"), result.output
    assert ADA in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()


def test_unsuppressing_many_addresses_leaves_their_digests_to_the_next_sweep(
    env: dict[str, str], faults: FaultServer
) -> None:
    """A command per address would flood the screen: the worker's next sweep sends them."""
    profiles = Path(env["PAPERBOT_PROFILES"])
    more = "".join(
        f'  - email: {name}@example.org\n    interests:\n      keywords: ["mixture of experts"]\n'
        for name in ("carol", "dave")
    )
    profiles.write_text(profiles.read_text() + more)
    refused = [ADA, GRACE, "carol@example.org", "dave@example.org"]
    for email in refused:
        faults.handler.rcpt[email] = ["550 5.1.1 no such user", "250 OK"]
    assert send(faults).exit_code == 1
    cleared = cli("unsuppress", "--reason", "5.1.1")
    assert cleared.exit_code == 0, cleared.output
    lines = " ".join(cleared.output.split())
    for email in refused:
        assert (
            f"{email} may receive mail again (was: permanent failure: refused: 550 5.1.1 no "
            "such user); its digest for 2026-11-25 goes with the worker's next sweep."
        ) in lines
    assert "paperbot send" not in lines


def ada_link(faults: FaultServer) -> str:
    """The https unsubscribe link of Ada's digest, once the day is sent."""
    assert send(faults).exit_code == 0
    header = str(faults.handler.to(ADA)[0]["List-Unsubscribe"])
    link = re.search(r"<(https://[^>]+)>", header)
    assert link is not None
    return link.group(1)


def test_unsubscribe_with_the_token_from_the_message(
    env: dict[str, str], faults: FaultServer
) -> None:
    token = ada_link(faults).partition("token=")[2]
    assert cli("unsubscribe", token.replace("%3D", "=")).exit_code == 0
    assert ADA in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()
    forged = cli("unsubscribe", "YWRhQGV4YW1wbGUub3Jn.forged")
    assert forged.exit_code == 1 and "not an email address or a valid" in forged.output


def test_unsubscribe_with_the_whole_link_a_subscriber_forwards(
    env: dict[str, str], faults: FaultServer
) -> None:
    result = cli("unsubscribe", ada_link(faults))
    assert result.exit_code == 0 and f"{ADA} unsubscribed" in result.output
    assert ADA in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()


def test_unsubscribe_with_the_list_unsubscribe_header_as_pasted(
    env: dict[str, str], faults: FaultServer
) -> None:
    """The header's value, or its link with the ``<>`` around it, names the subscriber too."""
    ada_link(faults)
    header = str(faults.handler.to(ADA)[0]["List-Unsubscribe"])
    assert header.startswith("<https://") and ", <mailto:" in header
    store = Store(env["PAPERBOT_DATABASE_URL"])
    for pasted in (header, header.split(", ")[0]):
        result = cli("unsubscribe", pasted)
        assert result.exit_code == 0 and f"{ADA} unsubscribed" in result.output, result.output
        assert cli("unsuppress", ADA).exit_code == 0
    assert ADA not in store.suppressed()


def test_unsubscribe_with_a_mailto_alone_names_the_subscriber_or_says_what_to_give(
    env: dict[str, str], faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without https links the header holds a mailto alone, whose subject names the subscriber;
    the unsubscribe page's mailto names only the mailbox, which is no one to unsubscribe."""
    monkeypatch.delenv("PAPERBOT_BASE_URL")
    assert send(faults).exit_code == 0
    header = str(faults.handler.to(ADA)[0]["List-Unsubscribe"])
    assert header.startswith("<mailto:unsubscribe@paperbot.example.org?subject="), header
    for pasted in (header, header.strip("<>")):
        result = cli("unsubscribe", pasted)
        assert result.exit_code == 0 and f"{ADA} unsubscribed" in result.output, result.output
        assert cli("unsuppress", ADA).exit_code == 0
    refused = cli("unsubscribe", "<mailto:unsubscribe@paperbot.example.org?subject=unsubscribe>")
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: the mailto link names the mailbox to write to (unsubscribe@paperbot.example.org), "
        "not a subscriber: give the subscriber's EMAIL (the sender of an unsubscribe request), "
        "or the https unsubscribe link from their email or its token\n"
    )
    assert Store(env["PAPERBOT_DATABASE_URL"]).suppressed() == {}


@pytest.mark.parametrize(
    "query",
    [
        "subject=unsubscribe%20Eve%20%3Cgrace%40example.org%3E",
        "subject=unsubscribe%20ada%40example.org%20%3Cgrace%40example.org%3E",
        "subject=Hello&body=x&subject=unsubscribe%20grace%40example.org",
        "Subject=Hello&subject=unsubscribe%20grace%40example.org",
    ],
)
def test_a_mailto_whose_subject_is_not_an_unsubscribe_of_one_address_unsubscribes_nobody(
    env: dict[str, str], query: str
) -> None:
    """An email's unsubscribe mailto says ``unsubscribe`` and one bare address in its first
    subject: a subject written otherwise (an address in brackets after other words, a second
    subject after the first a mail client reads) names nobody, not another subscriber."""
    result = cli("unsubscribe", f"mailto:unsubscribe@paperbot.example.org?{query}")
    assert result.exit_code == 1, result.output
    assert Store(env["PAPERBOT_DATABASE_URL"]).suppressed() == {}


def test_another_lists_mailto_unsubscribes_nobody(env: dict[str, str]) -> None:
    """A mailto written to another mailbox than paperbot's own is another list's request: it
    is not taken as an unsubscribe from paperbot."""
    assert env["PAPERBOT_UNSUBSCRIBE_MAILTO"] == "unsubscribe@paperbot.example.org"
    result = cli("unsubscribe", f"<mailto:leave@list.example.net?subject=unsubscribe%20{ADA}>")
    assert result.exit_code == 1
    assert "writes to leave@list.example.net, not to paperbot's unsubscribe mailbox" in (
        result.output
    )
    assert Store(env["PAPERBOT_DATABASE_URL"]).suppressed() == {}


def test_a_token_signed_with_a_previous_secret_key_still_unsubscribes(
    env: dict[str, str], faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert send(faults).exit_code == 0
    header = str(faults.handler.to(ADA)[0]["List-Unsubscribe"])
    token = re.search(r"token=([^>]+)>", header)
    assert token is not None
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", "a-new-secret")
    refused = cli("unsubscribe", token.group(1))
    assert refused.exit_code == 1 and "PAPERBOT_SECRET_KEY_PREVIOUS" in refused.output
    monkeypatch.setenv(
        "PAPERBOT_SECRET_KEY_PREVIOUS", f"an-older-one, {env['PAPERBOT_SECRET_KEY']}"
    )
    result = cli("unsubscribe", token.group(1))
    assert result.exit_code == 0 and f"{ADA} unsubscribed" in result.output
    assert ADA in Store(env["PAPERBOT_DATABASE_URL"]).suppressed()


def test_status_shows_runs_states_retries_and_suppressions(
    env: dict[str, str], faults: FaultServer
) -> None:
    faults.handler.rcpt[ADA] = ["451 4.3.0 try later"]
    send(faults)
    cli("unsubscribe", "carol@example.org")
    data = json.loads(cli("status", "--format", "json").output)
    run = data["runs"][0]
    assert run["command"] == "send" and run["counts"]["failed"] == 1
    assert (run["sources"][0]["status"], run["sources"][0]["day"]) == ("ok", "2026-11-25")
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
    assert "Last runs (UTC)" in table.output
    assert re.search(r"│ file ok \d+ +│", table.output), "a source's kind, status and papers"
    assert cli("status", "--format", "xml").exit_code == 2


def test_a_long_stop_reason_is_cut_in_the_table_and_whole_in_json(env: dict[str, str]) -> None:
    store = Store(env["PAPERBOT_DATABASE_URL"])
    reason = "554 5.7.1 " + "refused because of a very long policy text " * 20
    with store.run("sweep") as run:
        run.summary = {"stopped": reason}
    assert json.loads(cli("status", "--format", "json").output)["runs"][0]["stopped"] == reason
    table = " ".join(cli("status").output.split())
    assert "554 5.7.1 refused" in table and reason.strip() not in table and "…" in table


def test_status_says_how_many_pending_deliveries_it_leaves_out(env: dict[str, str]) -> None:
    store = Store(env["PAPERBOT_DATABASE_URL"])
    subs = [Subscriber(email=f"reader{i}@example.org") for i in range(25)]
    ids = store.sync_subscribers(subs).ids
    now, day = datetime(2026, 11, 25, 8, tzinfo=UTC), date(2026, 11, 25)
    requests = [ClaimRequest(ids[s.email], day, ("p1",), f"<{n}@x>") for n, s in enumerate(subs)]
    claims = store.ledger.claim_many(requests, now, lease=timedelta(minutes=5))
    for claim in claims[:18]:
        assert claim is not None
        store.ledger.mark_failed(claim, now, error="451 later", code=451, retry_at=now)
    data = json.loads(cli("status", "--format", "json").output)
    assert len(data["upcoming"]) == 20 and data["upcoming_total"] == 25
    table = cli("status").output
    assert "20 of 25 shown, soonest first" in table
    assert "sending: in flight, or interrupted" in " ".join(table.split())


def test_status_counts_the_retries_of_a_removed_subscriber_instead_of_listing_them(
    env: dict[str, str], faults: FaultServer, profiles_file: Path
) -> None:
    grace = "grace@example.org"
    faults.handler.rcpt.update({ADA: ["451 4.3.0 try later"], grace: ["451 4.3.0 try later"]})
    send(faults)
    data = json.loads(cli("status", "--format", "json").output)
    assert sorted(u["email"] for u in data["upcoming"]) == [ADA, grace]
    assert (data["upcoming_total"], data["upcoming_removed"]) == (2, 0)
    text = profiles_file.read_text()
    start, end = text.index(f"  - email: {grace}"), text.index("  - email: alan@example.org")
    profiles_file.write_text(text[:start] + text[end:])
    faults.handler.rcpt.clear()
    assert send(faults).exit_code == 0 and len(faults.handler.to(ADA)) == 1
    data = json.loads(cli("status", "--format", "json").output)
    assert data["upcoming"] == []
    assert (data["upcoming_total"], data["upcoming_removed"]) == (0, 1)
    table = " ".join(cli("status").output.split())
    assert grace not in table
    assert "1 not retried: subscriber removed from profiles" in table


def test_a_worker_run_shows_in_status(env: dict[str, str]) -> None:
    store = Store(env["PAPERBOT_DATABASE_URL"])
    run = store.start_run("sweep", datetime(2026, 11, 25, 7, 30, tzinfo=UTC))
    store.finish_run(run, "ok", {"counts": {"sent": 3, "waiting": 0}, "sources": []})
    fetch = store.start_run("fetch")
    sources = [{"source": "hf", "status": "ok", "count": 12, "day": "2026-11-25"}]
    store.finish_run(fetch, "ok", {"days": ["2026-11-24", "2026-11-25"], "sources": sources})
    table = " ".join(cli("status").output.split())
    assert "sweep │ ok │ 2026-11-25 07:30 │ sent 3" in table
    assert "│ hf ok 12 │" in table


def test_a_fetch_run_shows_each_source_on_one_short_line_with_reasons_under_the_table(
    env: dict[str, str],
) -> None:
    """A worker's fetch asks every source for two days: the runs table says in a few words how
    each did (as wide as a source, on an 80-column terminal too), the reasons follow the
    table, and ``--format json`` keeps every outcome whole."""
    store = Store(env["PAPERBOT_DATABASE_URL"])
    reason = "no answer within 30 min (tried again at the next fetch)"
    sources = [
        {"source": "hf", "status": "ok", "count": 38, "day": "2026-11-24"},
        {"source": "arxiv:cs.LG+cs.CL", "status": "failed", "count": 0, "reason": reason,
         "day": "2026-11-24"},
        {"source": "file:/srv/lists/extra-papers.jsonl", "status": "empty", "count": 0,
         "day": "2026-11-24"},
        {"source": "hf", "status": "ok", "count": 40, "day": "2026-11-25"},
        {"source": "arxiv:cs.LG+cs.CL", "status": "failed", "count": 0, "reason": reason,
         "day": "2026-11-25"},
        {"source": "file:/srv/lists/extra-papers.jsonl", "status": "ok", "count": 12,
         "day": "2026-11-25"},
    ]  # fmt: skip
    fetch = store.start_run("fetch")
    store.finish_run(fetch, "failed", {"days": ["2026-11-24", "2026-11-25"], "sources": sources})
    for columns in ("80", "120"):
        code, output = run_cli(env | {"COLUMNS": columns}, "status")
        assert code == 0, output
        assert max(len(line) for line in output.splitlines()) <= int(columns)
        lines = output.splitlines()
        row = lines.index(next(line for line in lines if "│ fetch " in line))
        cells = [line.split("│")[6].strip() for line in lines[row : row + 3]]
        if columns == "120":
            assert cells == ["hf ok 38/40", "arxiv failed", "file empty/ok 12"]
        notes = " ".join(output[output.index("└") :].split())
        assert f"run {fetch} arxiv:cs.LG+cs.CL (2026-11-24, 2026-11-25): {reason}" in notes
    code, piped = run_cli(env, "status")
    assert "│ arxiv failed │" in " ".join(piped.split())
    data = json.loads(cli("status", "--format", "json").output)
    assert data["runs"][0]["sources"] == sources


def test_the_command_to_undo_an_unsubscribe_is_never_wrapped(env: dict[str, str]) -> None:
    email = "a.rather.long.address.for.a.narrow.terminal@research-lab.example.org"
    code, output = run_cli(env | {"COLUMNS": "40"}, "unsubscribe", email)
    assert code == 0, output
    assert f"  paperbot unsuppress {email}" in output.splitlines()


def test_piped_status_does_not_wrap_long_errors(env: dict[str, str], faults: FaultServer) -> None:
    error = (
        "451 4.7.1 greylisted: please try again in five minutes, see https://mail.example.org/help"
    )
    faults.handler.rcpt[ADA] = [error]
    send(faults)
    code, output = run_cli(env, "status")
    assert code == 0, output
    row = next(line for line in output.splitlines() if line.startswith(f"│ {ADA}"))
    assert "greylisted: please try again in five minutes" in row
    assert len(row) > 120, "wider than a terminal would be"


def test_status_of_a_database_that_does_not_exist_says_so_and_creates_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    mistyped = tmp_path / "paperbto.db"
    result = runner.invoke(
        app, ["status", "--format", "json"], env={"PAPERBOT_DATABASE_URL": f"sqlite:///{mistyped}"}
    )
    assert result.exit_code == 0, result.output
    assert f"No database at {mistyped} yet" in result.stderr
    assert json.loads(result.stdout)["runs"] == []
    assert not mistyped.exists()


def test_a_database_that_refuses_a_command_is_one_line(env: dict[str, str]) -> None:
    Store(env["PAPERBOT_DATABASE_URL"]).close()
    path = env["PAPERBOT_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:  # stands in for a PostgreSQL role without the right grant
        db.execute(
            "CREATE TRIGGER no_runs BEFORE INSERT ON runs "
            "BEGIN SELECT RAISE(ABORT, 'permission denied for table runs'); END"
        )
    result = cli("fetch")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: database error: permission denied for table runs"


def test_unsubscribe_refuses_text_that_is_not_one_address(env: dict[str, str]) -> None:
    """A list, or text around an address, would otherwise be recorded and block nobody."""
    for pasted in (
        "ada@example.org,",
        "Ada <ada@example.org>, Grace <grace@example.org>",
        "Ada <ada@example.org> (home)",
        "Ada <ada@exa mple.org>",
    ):
        result = cli("unsubscribe", pasted)
        assert result.exit_code == 1 and "not an email address" in result.output, result.output
    assert Store(env["PAPERBOT_DATABASE_URL"]).suppressed() == {}


def test_unsubscribe_takes_an_address_after_its_name(env: dict[str, str]) -> None:
    """``Ada Lovelace <ada@example.org>`` is how a mail client copies a sender: the address
    in it is unsubscribed."""
    for pasted in ("Ada Lovelace <Ada@Example.org>", '"Lovelace, Ada" <ada@example.org>'):
        result = cli("unsubscribe", pasted)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"{ADA} "), result.output
    assert list(Store(env["PAPERBOT_DATABASE_URL"]).suppressed()) == [ADA]


def test_an_international_domain_is_one_address_in_either_form(
    env: dict[str, str], faults: FaultServer
) -> None:
    profiles = Path(env["PAPERBOT_PROFILES"])
    profiles.write_text(
        profiles.read_text().replace("email: ada@example.org", "email: ada@bücher.example")
    )
    preview = cli("preview", "ADA@xn--bcher-kva.example")
    assert preview.exit_code == 0, preview.output
    assert re.search(r"^(1 paper|[2-9]\d* papers)$", preview.output, re.M)
    result = cli("unsubscribe", "ada@xn--bcher-kva.example")
    assert result.exit_code == 0 and "ada@bücher.example unsubscribed" in result.output
    assert "address is suppressed" in send(faults).output
    assert faults.handler.to("ada@xn--bcher-kva.example") == []
    assert cli("unsuppress", "ada@XN--BCHER-KVA.example").exit_code == 0
