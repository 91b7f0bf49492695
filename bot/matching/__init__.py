"""Score and select papers for subscribers (pure: no clock, no database, no I/O).

``select`` gives each subscriber a ``Selection``: the digest picks (scores in [0, 1] above one
calibrated threshold, then ``max_papers``), the matches that did not fit, and every paper ranked.
``explain`` says why one paper was or was not picked. Scoring sits behind ``Scorer``.
"""

from bot.matching.combine import DEFAULT_THRESHOLD
from bot.matching.evidence import Evidence
from bot.matching.explain import UNSEEN_LIKE, Delivered, Explanation, explain, unseen_likes
from bot.matching.scorer import LexicalScorer, Scorer, Scores
from bot.matching.selection import Selection, select, threshold_for

__all__ = [
    "DEFAULT_THRESHOLD",
    "UNSEEN_LIKE",
    "Delivered",
    "Evidence",
    "Explanation",
    "LexicalScorer",
    "Scorer",
    "Scores",
    "Selection",
    "explain",
    "select",
    "threshold_for",
    "unseen_likes",
]
