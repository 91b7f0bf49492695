"""What ``paperbot status`` shows: last runs, deliveries by state, pending retries, suppressions.

``collect`` reads the store into plain data (also the ``--format json`` output); ``tables`` turns
that data into rich tables. Messages still to be sent to a subscriber removed from the profiles
are not pending (nothing sends them): they are only counted, as ``upcoming_removed``. Neither are
the due digests an email delivery pause holds back before they are claimed (they have no ledger
row): the worker's ``paused`` sweep counts them, and so does ``upcoming_held`` while it lasts.
That count is an upper bound: whether a digest has anything to send is known once it is matched,
when the pause ends.

Each run names the process that ran it (``host:pid``): which worker made a sweep, or where a
manual command ran.

In the runs table, a run's ``released`` (claimed, then given back unsent) and ``unclaimed``
(never claimed) messages are one figure, ``not sent``: both are still due, and the next run sends
them (``--format json`` keeps them apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from rich.table import Table
from rich.text import Text

from bot.store import Store
from bot.store.runs import process_exists, this_machine
from bot.store.tables import PAUSED, RUNNING, STATES, RunRow

SHOWN = {"released": "not sent", "unclaimed": "not sent", "held": "held up to"}
"""How the runs table names a run's counts, where not by their key: the messages a run gave back
and those it never claimed are one figure (both still due: the next run sends them, see
``SendReport.not_sent``); a paused sweep's held digests are an upper bound."""
RUNS = 10
DAYS = 14
UPCOMING = 20


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _run(run: RunRow, now: datetime, store: Store) -> dict[str, Any]:
    """A run as shown; a ``running`` one whose process is gone is ``interrupted``, saying why.
    A run still ``running`` (or interrupted) has recorded no counts: the messages its process
    recorded sent since it started are counted from the ledger."""
    lost = run.lost(now, this_machine(), process_exists)
    counts = run.summary.get("counts", {})
    process = run.summary.get("process")
    if run.status == RUNNING and not counts and process:
        counts = {"sent": store.ledger.sent_by(process, run.started_at)}
    return {
        "id": run.id, "command": run.command, "status": "interrupted" if lost else run.status,
        "process": run.process, "started": _iso(run.started_at), "finished": _iso(run.finished_at),
        "counts": counts, "sources": run.summary.get("sources", []),
        "stopped": lost or run.summary.get("stopped"),
    }  # fmt: skip


def collect(store: Store, now: datetime) -> dict[str, Any]:
    """Everything the status command shows, as JSON-ready data."""
    today = now.date()
    recent = store.recent_runs(RUNS)
    runs = [_run(r, now, store) for r in recent]
    held = sum(r.held(now) for r in store.recent_runs(1, status=PAUSED))
    deliveries: dict[tuple[str, str], dict[str, int]] = {}
    for day, kind, state, n in store.ledger.tally(since=today - timedelta(days=DAYS)):
        deliveries.setdefault((day.isoformat(), kind), {})[state] = n
    pending, total, removed = store.upcoming(UPCOMING)  # a removed subscriber's: counted apart
    here = this_machine()
    upcoming = [
        {"email": email, "kind": row.kind, "date": row.digest_date.isoformat(), "ref": row.ref,
         "status": row.status, "attempts": row.attempts, "last_code": row.last_code,
         "last_error": row.last_error,
         "next_attempt": _iso(now if row.orphaned(here, process_exists) else row.next_try)}
        for row, email in pending
    ]  # fmt: skip
    suppressed = [
        {"email": s.email, "reason": s.reason, "since": _iso(s.created_at)}
        for s in sorted(store.suppressed().values(), key=lambda s: s.created_at, reverse=True)
    ]
    return {
        "runs": runs,
        "deliveries": [
            {"date": day, "kind": kind, **{state: counts.get(state, 0) for state in STATES}}
            for (day, kind), counts in deliveries.items()
        ],
        "upcoming": upcoming,
        "upcoming_total": total,
        "upcoming_removed": removed,
        "upcoming_held": held,
        "suppressed": suppressed,
    }


def _counts(counts: dict[str, int]) -> str:
    """A run's counts as the runs table shows them (see ``SHOWN``), those that are 0 left out."""
    shown: dict[str, int] = {}
    for key, n in counts.items():
        name = SHOWN.get(key, key)
        shown[name] = shown.get(name, 0) + n
    return " ".join(f"{name} {n}" for name, n in shown.items() if n)


def _sources(run: dict[str, Any]) -> list[str]:
    """A run's sources as the runs table shows them, one a line, compact: each by its kind (its
    whole name when two share one), with how it did on each day it was asked for (``hf ok
    38/40``, ``arxiv failed``). The reasons are under the table (see ``_source_notes``)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for source in run["sources"]:
        by_source.setdefault(str(source.get("source")), []).append(source)
    kinds = [name.split(":", 1)[0] for name in by_source]
    parts = []
    for name, outcomes in by_source.items():
        kind = name.split(":", 1)[0]
        short = kind if kinds.count(kind) == 1 else _short_name(name)
        parts.append(f"{short} {_how(outcomes)}")
    return parts


def _short_name(name: str) -> str:
    """A source's name without the folders of a ``file:`` path."""
    kind, _, rest = name.partition(":")
    return f"{kind}:{rest.rsplit('/', 1)[-1]}" if kind == "file" else name


def _how(outcomes: Sequence[dict[str, Any]]) -> str:
    """How one source did on the days of a run: ``ok 38/40`` (papers each day, once when the
    same), ``failed``, or each day's status when they differ (``empty/ok 12``)."""
    statuses = [str(o.get("status")) for o in outcomes]
    counts = list(dict.fromkeys(str(o.get("count") or 0) for o in outcomes))
    if len(set(statuses)) == 1:
        return f"ok {'/'.join(counts)}" if statuses[0] == "ok" else statuses[0]
    return "/".join(
        f"ok {o.get('count') or 0}" if s == "ok" else s
        for o, s in zip(outcomes, statuses, strict=True)
    )


def _source_notes(runs: Sequence[dict[str, Any]]) -> Text | None:
    """What the runs' sources said (why one failed, what one did instead, which items they left
    out), one line each under the runs table: by run, source and the days it said it for."""
    lines = []
    for run in runs:
        said: dict[tuple[str, str], list[str]] = {}
        for source in run["sources"]:
            for note in _notes(source):
                key = (str(source.get("source")), note)
                said.setdefault(key, []).append(str(source.get("day") or ""))
        for (name, reason), days in said.items():
            when = ", ".join(day for day in days if day)
            lines.append(
                f"run {run['id']} {name}{f' ({when})' if when else ''}: {_shortened(reason)}"
            )
    return Text("\n".join(lines)) if lines else None


def _notes(source: dict[str, Any]) -> list[str]:
    """What one source's outcome says: its reason, and the items it left out (``3 skipped:
    item 5: 2401.05000: missing title; …``)."""
    notes = [str(source["reason"])] if source.get("reason") else []
    if source.get("skipped"):
        items = "; ".join(str(item) for item in source.get("skipped_items", []))
        notes.append(f"{source['skipped']} skipped" + (f": {items}" if items else ""))
    return notes


def _shortened(text: str, most: int = 160) -> str:
    """A long reason cut for the table (``--format json`` has it whole)."""
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def _when(value: str | None) -> str:
    """An ISO timestamp as "YYYY-MM-DD HH:MM" for the tables."""
    return (value or "")[:16].replace("T", " ")


def _table(
    title: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    caption: str | Text | None = None,
) -> Table:
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in {"started", "since", "next"})
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # server replies may hold "[...]"
    if not rows:
        table.add_row("(none)", *[""] * (len(columns) - 1))
    return table


def _pending_note(states: Sequence[str], total: int, removed: int, held: int) -> str | None:
    """What the pending table leaves out, and what "sending" means there."""
    notes = []
    if total > len(states):
        notes.append(f"{len(states)} of {total} shown, soonest first")
    if removed:
        notes.append(f"{removed} not retried: subscriber removed from profiles")
    if held:
        digests = "due digest" if held == 1 else "due digests"
        notes.append(
            f"up to {held} {digests} not listed: held back until the email delivery pause ends "
            "(one with nothing to send is skipped then)"
        )
    if "sending" in states:
        notes.append(
            'sending: in flight, or interrupted and sent again from "next" on (same Message-ID)'
        )
    return "; ".join(notes) or None


def tables(data: dict[str, Any]) -> list[Table]:
    """The status data as four rich tables."""
    sources = [_sources(r) for r in data["runs"]]
    runs = [
        (str(r["id"]), r["command"], r["status"], _when(r["started"]), _counts(r["counts"]),
         "\n".join(parts), _shortened(r["stopped"] or ""), r["process"] or "")
        for r, parts in zip(data["runs"], sources, strict=True)
    ]  # fmt: skip
    deliveries = [
        (d["date"], d["kind"], *(str(d[state]) for state in STATES)) for d in data["deliveries"]
    ]
    upcoming = [
        (u["email"], u["kind"], u["date"], u["status"], str(u["attempts"]),
         _when(u["next_attempt"]), _shortened(u["last_error"] or "", 100))
        for u in data["upcoming"]
    ]  # fmt: skip
    suppressed = [(s["email"], s["reason"], _when(s["since"])) for s in data["suppressed"]]
    return [
        _table(
            "Last runs (UTC)",
            ("run", "command", "status", "started", "counts", "sources", "stopped", "process"),
            runs,
            _source_notes(data["runs"]),
        ),
        _table("Deliveries by state", ("date", "kind", *STATES), deliveries),
        _table(
            "Pending retries (UTC)",
            ("email", "kind", "date", "state", "attempts", "next", "last error"),
            upcoming,
            _pending_note(
                [u["status"] for u in data["upcoming"]],
                data["upcoming_total"],
                data["upcoming_removed"],
                data["upcoming_held"],
            ),
        ),
        _table("Suppressed addresses (UTC)", ("email", "reason", "since"), suppressed),
    ]
