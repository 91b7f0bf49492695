"""From scores to digests: the calibrated threshold, ``max_papers``, rank order, explanations."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np

from bot.collector import paused_collector
from bot.matching.combine import DEFAULT_THRESHOLD
from bot.matching.reasons import Found
from bot.matching.scorer import LexicalScorer, ManyScores, Scorer, Scores
from bot.models import Match, Paper, Subscriber

# Scores are compared at this precision, so float noise never beats the upvotes tie-break.
DECIMALS = 4
# Subscribers ranked together in one array operation.
BLOCK = 2000


Matches = Sequence[Match] | Callable[[], Sequence[Match]]
Papers = Sequence[Paper] | Callable[[], Sequence[Paper]]


class Selection:
    """One subscriber's result.

    ``picked`` goes into the digest (best first, at most ``max_papers``); ``more`` are the papers
    that cleared the threshold but did not fit (listed by title only, so they carry no reasons);
    ``ranked`` is every paper scored, best first. ``more`` and ``ranked`` may be given as
    functions: they are then built when first read, since a run with many subscribers rarely
    needs them.
    """

    __slots__ = ("_more", "_ranked", "more_count", "picked")

    def __init__(
        self,
        picked: Sequence[Match],
        more: Papers = (),
        ranked: Matches = (),
        *,
        more_count: int = -1,
    ) -> None:
        self.picked: tuple[Match, ...] = tuple(picked)
        self._more = more if callable(more) else tuple(more)
        self._ranked = ranked if callable(ranked) else tuple(ranked)
        self.more_count: int = more_count if more_count >= 0 else len(self.more)

    @property
    def more(self) -> tuple[Paper, ...]:
        """Papers that cleared the threshold but did not fit, best first."""
        if callable(self._more):
            self._more = tuple(self._more())
        return self._more

    @property
    def ranked(self) -> tuple[Match, ...]:
        """Every paper scored, best first."""
        if callable(self._ranked):
            self._ranked = tuple(self._ranked())
        return self._ranked

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return (self.picked, self.more, self.ranked) == (other.picked, other.more, other.ranked)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Selection(picked={self.picked!r}, more_count={self.more_count})"


def threshold_for(subscriber: Subscriber) -> float:
    """The score a paper needs: the subscriber's ``min_score`` or the calibrated default."""
    return DEFAULT_THRESHOLD if subscriber.min_score is None else subscriber.min_score


def tie_break(papers: Sequence[Paper]) -> np.ndarray:
    """Rank of each paper among equal scores: most upvotes first, then by id."""
    order = sorted(range(len(papers)), key=lambda j: (-(papers[j].upvotes or 0), papers[j].id))
    ranks = np.empty(len(papers), dtype=np.int64)
    ranks[order] = np.arange(len(papers))
    return ranks


def _keys(scores: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """One integer per score, larger is better: the rounded score, then ``ties``; all distinct."""
    rounded = np.rint(scores.astype(np.float64) * 10**DECIMALS).astype(np.int64)
    keys: np.ndarray = rounded * len(ties) + (len(ties) - 1 - ties)
    return keys


def rank_order(scores: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Column order best first: score, then ``ties`` (see ``tie_break``)."""
    return np.argsort(-_keys(scores, ties), kind="stable")


def top_columns(scores: np.ndarray, ties: np.ndarray, k: int) -> np.ndarray:
    """For each row of ``scores``, the ``k`` best columns in rank order (as ``rank_order``)."""
    keys = _keys(scores, ties)
    k = min(k, keys.shape[1])
    if k < keys.shape[1]:
        part = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(k), keys.shape)
    inner = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1)
    return np.take_along_axis(part, inner, axis=1)


def _found(scores: Scores, rows: np.ndarray, cols: np.ndarray) -> list[Found]:
    """(reasons, (snippet, marks)) per pair, in one call when the scores allow it."""
    if isinstance(scores, ManyScores):
        return scores.pairs(rows, cols)
    found: list[Found] = []
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        ev = scores.evidence(row, col)
        found.append((ev.reasons, (ev.snippet, ev.marks)))
    return found


def _matches(
    scores: Scores, rows: np.ndarray, cols: np.ndarray, papers: Sequence[Paper]
) -> list[Match]:
    """A ``Match`` per pair ``(rows[k], cols[k])``."""
    values = scores.matrix[rows, cols].tolist()
    found = _found(scores, rows, cols)
    return [
        Match(papers[col], round(value, DECIMALS), reasons, shown[0], shown[1])
        for col, value, (reasons, shown) in zip(cols.tolist(), values, found, strict=True)
    ]


class _Builder:
    """Makes the ``Match`` objects of one subscriber's ``more`` and ``ranked``, when read."""

    def __init__(self, scores: Scores, row: int, papers: Sequence[Paper]) -> None:
        self.scores, self.row, self.papers = scores, row, papers

    def matches(self, cols: np.ndarray) -> list[Match]:
        """Matches for the papers of ``cols``, in that order."""
        rows = np.full(len(cols), self.row, np.int64)
        return _matches(self.scores, rows, np.asarray(cols, np.int64), self.papers)

    def ranked(self, ties: np.ndarray) -> list[Match]:
        """Every paper, best first."""
        return self.matches(rank_order(self.scores.matrix[self.row], ties))

    def more(self, ties: np.ndarray, floor: float, skip: int) -> list[Paper]:
        """The papers from ``floor`` up, best first, after the ``skip`` picked ones."""
        values = self.scores.matrix[self.row]
        order = rank_order(values, ties)
        return [self.papers[col] for col in order[values[order] >= floor][skip:].tolist()]


def _block(
    subs: Sequence[Subscriber],
    scores: Scores,
    first: int,
    papers: Sequence[Paper],
    ties: np.ndarray,
) -> list[Selection]:
    """Selections for the subscribers whose score rows start at ``first``."""
    values = scores.matrix[first : first + len(subs)]
    floors = np.array([max(threshold_for(s), 1e-6) for s in subs], np.float64)[:, None]
    above = (values >= floors).sum(axis=1)
    top = top_columns(values, ties, max((s.max_papers for s in subs), default=0))
    counts = np.minimum(above, [s.max_papers for s in subs])
    rows = np.repeat(np.arange(len(subs)), counts) + first
    picked = _matches(scores, rows, top[np.arange(top.shape[1]) < counts[:, None]], papers)
    ends = np.cumsum(counts).tolist()
    out = []
    for i in range(len(subs)):
        build = _Builder(scores, first + i, papers)
        count, floor = int(counts[i]), float(floors[i, 0])
        out.append(
            Selection(
                picked[ends[i] - count : ends[i]],
                partial(build.more, ties, floor, count),
                partial(build.ranked, ties),
                more_count=int(above[i]) - count,
            )
        )
    return out


def select(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    *,
    corpus: Sequence[Paper] = (),
    liked: Mapping[str, Paper] | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Selection]:
    """Each subscriber's digest from today's ``papers``, keyed by email.

    ``corpus`` is a window of stored papers for term statistics (``papers`` always count);
    ``liked`` maps paper ids to stored papers for the ``like:`` signal. Pure and deterministic.
    """
    with paused_collector():
        scores = (scorer or LexicalScorer()).score(subscribers, papers, corpus=corpus, liked=liked)
        ties = tie_break(papers)
        out: dict[str, Selection] = {}
        for first in range(0, len(subscribers), BLOCK):
            subs = subscribers[first : first + BLOCK]
            for sub, selection in zip(subs, _block(subs, scores, first, papers, ties), strict=True):
                out[sub.email] = selection
    return out
