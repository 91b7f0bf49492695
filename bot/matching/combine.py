"""How the signals become one calibrated score in [0, 1].

Each signal is evidence of relevance on its own scale in [0, 1]; the score is their soft OR
``1 - prod(1 - w * s)``, so any one strong signal can carry a paper and weak ones add up slowly.
These few weights are the model's only free parameters besides the BM25F constants in ``index``,
the most that weak keyword matches add up to and how much a description's best papers re-weigh
its terms in ``signals``, and the typical day that ``likes`` reads a small day against.
"""

from __future__ import annotations

import numpy as np

from bot.matching.matrices import Array
from bot.matching.signals import Signals

DEFAULT_THRESHOLD = 0.5
# Description share found (a fraction of the whole free text) giving evidence 1 - 1/e.
DESCRIPTION_SCALE = 0.2
# Weight of the description next to keywords, and alone when a profile has no keywords.
DESCRIPTION_WEIGHT = 0.05
DESCRIPTION_ALONE = 1.0
AUTHOR_WEIGHT = 0.95
# Weight of the like signal alone (no keywords, description or authors) and beside them.
LIKE_ALONE, LIKE_BOOST = 0.9, 0.2
# Standing against a liked paper (robust standard deviations above the day's cosines to it)
# at which the like signal starts and where it is full.
LIKE_FROM, LIKE_FULL = 2.0, 6.0
# A category match alone (no other interests) and as a boost beside other interests.
CATEGORY_ALONE = 0.6
CATEGORY_BOOST = 0.1
# Weight of keyword coverage: the share of a profile's other keywords a paper also holds.
COVERAGE_WEIGHT = 0.2


def description_evidence(raw: Array) -> Array:
    """Description share found, rescaled to [0, 1]."""
    return 1.0 - np.exp(-raw / DESCRIPTION_SCALE)


def like_evidence(standing: Array) -> Array:
    """Best standing against a liked paper, rescaled to [0, 1]."""
    return np.clip((standing - LIKE_FROM) / (LIKE_FULL - LIKE_FROM), 0.0, 1.0)


def _apply(miss: Array, factor: Array, rows: Array) -> None:
    """``miss[rows] *= factor`` in place (rows where a signal is zero leave ``miss`` as it is)."""
    if len(rows) == len(miss):
        miss *= factor
    elif len(rows):
        miss[rows] *= factor


def combine(signals: Signals, has_keywords: Array, has_topic: Array, has_stated: Array) -> Array:
    """Scores for a block of subscribers; ``has_*`` are per-row booleans about the profiles
    (``has_stated``: keywords, a description or authors, beside which likes only boost).

    A signal that is zero contributes a factor of exactly 1, so only rows where it is not are
    multiplied: the result is the same, with less work.
    """
    weight_d = np.where(has_keywords, DESCRIPTION_WEIGHT, DESCRIPTION_ALONE)[:, None]
    weight_c = np.where(has_topic, CATEGORY_BOOST, CATEGORY_ALONE)[:, None]
    weight_l = np.where(has_stated, LIKE_BOOST, LIKE_ALONE)[:, None]
    miss = 1.0 - signals.keywords
    miss *= 1.0 - COVERAGE_WEIGHT * signals.coverage
    miss *= 1.0 - weight_d * description_evidence(signals.description)
    rows = np.flatnonzero(signals.authors.any(axis=1))
    _apply(miss, 1.0 - AUTHOR_WEIGHT * signals.authors[rows], rows)
    rows = np.flatnonzero(signals.categories.any(axis=1))
    _apply(miss, 1.0 - weight_c[rows] * signals.categories[rows], rows)
    rows = np.flatnonzero(signals.likes.any(axis=1))
    _apply(miss, 1.0 - weight_l[rows] * like_evidence(signals.likes[rows]), rows)
    score = np.subtract(1.0, miss, out=miss)
    score[signals.vetoed] = 0.0
    return np.clip(score, 0.0, 1.0, out=score)
