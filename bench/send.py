"""Delivery speed: a day's digests to 2,000 and 10,000 subscribers through Postfix's smtp-sink.

    python bench/send.py [--sizes 2000,10000] [--papers FILE] [--connections 4] [--sink PATH]

Prints, per size, three timings against the same sink (which accepts and discards at C speed):

- naive: smtplib, a new connection per message, one after another, messages rendered beforehand
- floor: aiosmtplib, 8 connections each reused, messages already serialised to bytes
- paperbot: ``send_digests`` end to end (profile sync, matching, rendering, ledger on a fresh
  SQLite file, SMTP), with ``--connections`` connections

Needs ``smtp-sink`` (Debian: ``apt-get install postfix``). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.jobs import build_digest, compose
from bot.mailer import SmtpMailer
from bot.models import Interests, Paper, Subscriber
from bot.pipeline import Deps, SendOptions, send_digests
from bot.render import Renderer
from bot.settings import Settings, load_settings
from bot.sources import FetchReport
from bot.sources.jsonl import read_papers_file
from bot.store import Store

DAY = date(2026, 11, 25)
SENDER = "digest@paperbot.example.org"
ROOT = Path(__file__).resolve().parents[1]


def subscribers(papers: list[Paper], n: int, rng: random.Random) -> list[Subscriber]:
    """``n`` subscribers whose keywords come from the day's titles, so most get a digest."""
    words = [w for p in papers for w in p.title.split() if w.isalpha() and len(w) > 4]
    return [
        Subscriber(
            email=f"reader{i}@bench.example.org",
            name=f"Reader {i}",
            interests=Interests(keywords=[" ".join(rng.sample(words, 2)), rng.choice(words)]),
            send_empty=True,
        )
        for i in range(n)
    ]


def start_sink(path: str, port: int) -> subprocess.Popen[bytes]:
    """smtp-sink on a loopback port, ready to accept."""
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([path, *user, "-m", "512", f"127.0.0.1:{port}", "1024"])
    for _ in range(100):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=1) as probe:
                probe.noop()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{path} did not start on port {port}")


def samples(settings: Settings, papers: list[Paper], subs: list[Subscriber]) -> list[bytes]:
    """Real digests, rendered and serialised beforehand (the baselines do not render)."""
    from bot import matching

    renderer, chosen = Renderer(), matching.select(subs, papers, corpus=papers)
    out = []
    for sub in subs:
        digest = build_digest(sub, DAY, chosen[sub.email])
        message = compose(settings, renderer, digest, f"<{sub.email}>", datetime.now(UTC))
        out.append(message.data)
    return out


def naive(port: int, messages: list[bytes], n: int) -> float:
    """smtplib, a new connection per message, sequential."""
    start = time.perf_counter()
    for i in range(n):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail(SENDER, [f"reader{i}@bench.example.org"], messages[i % len(messages)])
    return time.perf_counter() - start


async def _floor(port: int, messages: list[bytes], n: int, connections: int) -> None:
    todo = iter(range(n))

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        for i in todo:
            await smtp.sendmail(
                SENDER, [f"reader{i}@bench.example.org"], messages[i % len(messages)]
            )
        await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))


def floor(port: int, messages: list[bytes], n: int) -> float:
    """aiosmtplib, 8 reused connections, pre-serialised bytes."""
    start = time.perf_counter()
    asyncio.run(_floor(port, messages, n, 8))
    return time.perf_counter() - start


def paperbot(port: int, papers: list[Paper], subs: list[Subscriber], connections: int) -> float:
    """``send_digests`` end to end on a fresh database."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, database_url=f"sqlite:///{tmp}/bench.db", smtp_host="127.0.0.1",
            smtp_port=port, smtp_security="none", smtp_connections=connections,
            PAPERBOT_FROM=f"paperbot <{SENDER}>", base_url="https://paperbot.example.org",
            secret_key="bench",
        )  # fmt: skip

        async def fetch(day: date) -> FetchReport:
            return FetchReport(papers)

        mailer = SmtpMailer("127.0.0.1", port, security="none", connections=connections)
        store = Store(settings.database_url)
        deps = Deps(settings, store, Renderer(), fetch, lambda: datetime.now(UTC), mailer)

        async def run() -> int:
            async with mailer:
                report = await send_digests(deps, subs, SendOptions(day=DAY))
            return report.count("sent")

        start = time.perf_counter()
        sent = asyncio.run(run())
        elapsed = time.perf_counter() - start
    if sent != len(subs):
        raise SystemExit(f"paperbot sent {sent} of {len(subs)}")
    return elapsed


def main() -> None:
    """Run the three deliveries for each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--papers", type=Path, default=ROOT / "bot/data/sample-papers.jsonl")
    parser.add_argument("--connections", type=int, default=4, help="paperbot's connections")
    parser.add_argument("--sink", default="/usr/sbin/smtp-sink")
    parser.add_argument("--port", type=int, default=25251)
    args = parser.parse_args()
    papers = list(read_papers_file(args.papers).papers)
    settings = load_settings(None, PAPERBOT_FROM=f"paperbot <{SENDER}>")
    sink = start_sink(args.sink, args.port)
    try:
        print(f"{'subscribers':>11} {'naive':>9} {'floor':>9} {'paperbot':>9}  vs naive  vs floor")
        for n in (int(s) for s in args.sizes.split(",")):
            subs = subscribers(papers, n, random.Random(n))
            messages = samples(settings, papers, subs[:200])
            t_naive = naive(args.port, messages, n)
            t_floor = floor(args.port, messages, n)
            t_bot = paperbot(args.port, papers, subs, args.connections)
            print(
                f"{n:>11} {t_naive:>8.2f}s {t_floor:>8.2f}s {t_bot:>8.2f}s"
                f"  {t_naive / t_bot:>6.2f}x  {t_bot / t_floor:>6.2f}x",
                flush=True,
            )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
