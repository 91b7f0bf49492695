"""Fictional digests for the rendering tests and the screenshot script."""

from __future__ import annotations

import re
from datetime import date

from bot.alerts import alert_digest, alert_hits
from bot.models import AlertRule, Digest, DigestKind, Interests, Match, Paper, Subscriber
from bot.render import EmailContext

DAY = date(2025, 3, 4)

CTX = EmailContext(
    sender_name="paperbot",
    contact="digests@example.org",
    unsubscribe_url="https://papers.example.org/unsubscribe?token=abc.def",
    unsubscribe_mailto="unsubscribe@example.org",
    postal_address="Example Lab, 1 Sample Street, 12345 Exampletown",
)

ADA = Subscriber(
    email="ada@example.org",
    name="Ada Lovelace",
    timezone="Europe/London",
    max_papers=10,
    interests=Interests(
        keywords=["mixture of experts", "sparse experts", "state space model"],
        authors=["Noam Shazeer"],
        categories=["cs.LG"],
        like=["2401.00001"],
    ),
)

TITLES = [
    "Routing Without Regret: Load-Balanced Mixture of Experts at Trillion-Token Scale",
    "Sparse Experts Learn Faster When They Forget Slowly",
    "A Field Guide to State Space Models for Long Documents",
    "Tiny Routers, Big Models: Distilling Expert Selection into Two Layers",
    "When Does Sparsity Help? An Empirical Study of Conditional Computation",
    "Expert Parallelism on Commodity Clusters with Asynchronous All-to-All",
    "Selective State Space Layers Meet Retrieval",
    "Token Dropping Revisited for Efficient Pretraining",
    "Calibrated Gating Networks for Multilingual Translation",
    "On the Surprising Stability of Top-2 Routing",
]

ABSTRACT = (
    "We study how a mixture of experts routes tokens when the number of sparse experts grows "
    "beyond what a single accelerator can hold. Our method balances load with a regret-free "
    "auxiliary objective and keeps every expert busy without a capacity factor. Across six "
    "benchmarks it matches dense baselines at a third of the compute, and it trains stably "
    "from 1B to 70B parameters. We release code, checkpoints and a small library for routing "
    "experiments. Further analysis shows that experts specialise by syntax early and by topic "
    "late in training, which suggests a curriculum for expert initialisation."
)

AUTHORS = (
    "Grace Hopper",
    "Alan Turing",
    "Noam Shazeer",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
)


def paper(n: int, **changes: object) -> Paper:
    """A fictional paper numbered ``n`` with every optional field filled in."""
    pid = f"2503.{n:05d}"
    fields: dict[str, object] = {
        "id": pid,
        "title": TITLES[n % len(TITLES)],
        "abstract": ABSTRACT,
        "authors": AUTHORS[: 1 + n % len(AUTHORS)],
        "url": f"https://arxiv.org/abs/{pid}",
        "pdf_url": f"https://arxiv.org/pdf/{pid}",
        "categories": ("cs.LG", "cs.CL"),
        "upvotes": (n * 7) % 50 or None,
        "source": "sample",
        "hf_url": f"https://huggingface.co/papers/{pid}" if n % 2 == 0 else None,
        "code_url": f"https://github.com/example/paper-{n}" if n % 3 == 0 else None,
    }
    fields.update(changes)
    return Paper(**fields)  # type: ignore[arg-type]


def snippet_marks(text: str, terms: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Spans of every case-insensitive occurrence of ``terms`` in ``text``."""
    spans = [m.span() for t in terms for m in re.finditer(re.escape(t), text, re.IGNORECASE)]
    return tuple(sorted(spans))


def match(p: Paper, score: float = 0.8, reasons: tuple[str, ...] | None = None) -> Match:
    """A match with a two-sentence snippet marking the subscriber's keywords."""
    snippet = ". ".join(p.abstract.split(". ")[:2]) + "."
    reasons = reasons or (
        "keyword: mixture of experts (title)",
        "author: Noam Shazeer",
        "like: similar to 2401.00001",
    )
    terms = ("mixture of experts", "sparse experts")
    return Match(p, score, reasons, snippet, snippet_marks(snippet, terms))


def digest(n: int = 10, more: int = 4, kind: DigestKind = "digest", **changes: object) -> Digest:
    """A digest of ``n`` picks and ``more`` further matches."""
    picks = tuple(match(paper(i), score=1 - i / 100) for i in range(n))
    rest = tuple(paper(100 + i) for i in range(more))
    topics = ("Shazeer",) if kind == "alert" else ("mixture of experts", "Noam Shazeer", "cs.LG")
    fields: dict[str, object] = {"topics": topics}
    fields.update(changes)
    return Digest(ADA, DAY, picks, rest, kind, **fields)  # type: ignore[arg-type]


WATCHER = ADA.model_copy(
    update={
        "alerts": [
            AlertRule(name="Okafor", authors=["L. Okafor"]),
            AlertRule(name="SSMs", keywords=["state space model"]),
            AlertRule(name="MoE", keywords=["mixture of experts"]),
        ]
    }
)
"""A subscriber watching an author and two phrases, each rule named."""

FIRING = (
    ("Selective State Space Models for Birdsong", (), "SSMs"),
    ("Routing Tokens in a Sparse Mixture of Experts", ("Lina Okafor",), "Okafor, MoE"),
    ("A Mixture of Experts for Weather Maps", (), "MoE"),
    ("State Space Models Read Long Contracts", (), "SSMs"),
    ("Counting Sheep with Small Vision Models", ("Lina Okafor", "Kim Lee"), "Okafor"),
)
"""Papers in the order a sweep finds them: their titles, authors and the rules they fire."""


NO_LINKS = {"url": None, "pdf_url": None, "hf_url": None, "code_url": None}
"""What ``paper`` changes for a paper without a link."""


def grouped_alert(max_papers: int = 10, linkless: tuple[int, ...] = ()) -> Digest:
    """The alert of the papers of ``FIRING`` for ``WATCHER``, made as a sweep makes it; those
    numbered in ``linkless`` have no link."""
    papers = [
        paper(n, title=title, authors=authors, abstract=f"On {title}.", **changes)
        for n, (title, authors, _) in enumerate(FIRING)
        for changes in [NO_LINKS if n in linkless else {}]
    ]
    subscriber = WATCHER.model_copy(update={"max_papers": max_papers})
    return alert_digest(subscriber, DAY, alert_hits(subscriber, papers))
