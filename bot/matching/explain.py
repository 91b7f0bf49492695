"""Why a paper was or was not picked for a subscriber: ``paperbot explain``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from bot.matching.scorer import LexicalScorer, Scorer
from bot.matching.selection import rank_order, threshold_for, tie_break
from bot.models import Paper, Subscriber

UNSEEN_LIKE = "like: {} counts for nothing yet: paperbot has not seen that paper"


@dataclass(frozen=True, slots=True)
class Delivered:
    """The email that already carried a paper to the subscriber: its ``kind`` (``digest`` or
    ``alert``), its date, and when it was sent (UTC)."""

    kind: str
    day: date
    at: datetime

    def __str__(self) -> str:
        email = "an alert" if self.kind == "alert" else f"the digest for {self.day}"
        return f"sent in {email} on {self.at:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True, slots=True)
class Explanation:
    """The verdict on one paper for one subscriber, with everything that led to it.

    ``status`` is ``picked``, ``more`` (cleared the threshold, did not fit), ``below threshold``
    or ``vetoed``; ``rank`` is 1-based among ``total`` papers. ``alerts`` say how the
    subscriber's alert rules fire on the paper, ``sent`` which email carried it to them already,
    ``suppressed`` why no mail reaches them.
    """

    paper_id: str
    score: float
    threshold: float
    status: str
    rank: int
    total: int
    reasons: tuple[str, ...]
    vetoes: tuple[str, ...]
    snippet: str
    marks: tuple[tuple[int, int], ...]
    unseen_likes: tuple[str, ...] = ()
    email: str = ""
    max_papers: int = 0
    alerts: tuple[str, ...] = ()
    sent: Delivered | None = None
    suppressed: str = ""

    def verdict(self) -> str:
        """The status in words, and whether the paper reached the subscriber already."""
        said = self.status
        if self.status == "more":
            said = f"matched, but listed by title only, beyond max_papers {self.max_papers}"
        return f"{said}, but already sent to {self.email}" if self.sent else said

    def lines(self) -> list[str]:
        """The explanation as short human lines."""
        out = [
            f"{self.paper_id}: {self.verdict()} (score {self.score:.3f}, threshold "
            f"{self.threshold:.3f}, rank {self.rank} of {self.total})"
        ]
        out += [f"  {a}" for a in self.alerts]
        out += [f"  because {r}" for r in self.reasons]
        out += [f"  vetoed by {v}" for v in self.vetoes]
        out += [f"  {self.sent}"] if self.sent else []
        if self.suppressed:
            out.append(f"  {self.email} is suppressed ({self.suppressed}): gets no mail")
        out += [f"  {UNSEEN_LIKE.format(pid)}" for pid in self.unseen_likes]
        return out


def explain(
    subscriber: Subscriber,
    paper: Paper,
    papers: Sequence[Paper],
    *,
    corpus: Sequence[Paper] = (),
    liked: Mapping[str, Paper] | None = None,
    scorer: Scorer | None = None,
) -> Explanation:
    """Explain the verdict on ``paper`` for ``subscriber`` among the day's ``papers``.

    ``paper`` is added to ``papers`` when missing, so any stored paper can be explained.
    """
    pool = list(papers) if any(p.id == paper.id for p in papers) else [*papers, paper]
    col = next(j for j, p in enumerate(pool) if p.id == paper.id)
    scores = (scorer or LexicalScorer()).score([subscriber], pool, corpus=corpus, liked=liked)
    values = scores.matrix[0]
    order = list(rank_order(values, tie_break(pool)))
    rank = order.index(col) + 1
    threshold = threshold_for(subscriber)
    above = [j for j in order if values[j] >= max(threshold, 1e-6)]
    evidence = scores.evidence(0, col)
    if evidence.vetoes:
        status = "vetoed"
    elif col in above[: subscriber.max_papers]:
        status = "picked"
    else:
        status = "more" if col in above else "below threshold"
    return Explanation(
        paper.id,
        round(float(values[col]), 4),
        threshold,
        status,
        rank,
        len(pool),
        evidence.reasons,
        evidence.vetoes,
        evidence.snippet,
        evidence.marks,
        unseen_likes(subscriber, liked or {}),
        subscriber.email,
        subscriber.max_papers,
    )


def unseen_likes(subscriber: Subscriber, liked: Mapping[str, Paper]) -> tuple[str, ...]:
    """The subscriber's ``like:`` ids of papers not at hand, which count for nothing yet."""
    return tuple(pid for pid in subscriber.interests.like if pid not in liked)
