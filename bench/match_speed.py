"""Time and peak memory of ``select`` for 1k/10k/100k synthetic subscribers x 1,000 papers.

    python bench/match_speed.py --papers seed-papers.jsonl [--sizes 1000,10000,100000]

Each measurement runs in a fresh process (so time includes interpreter start-up and imports, and
peak RSS is that process's own), beside a scikit-learn TF-IDF baseline run the same way: fit on
the papers, transform every profile's keywords + description, cosine, top 10 per subscriber.
Papers are the given file's papers repeated with shuffled sentences up to 1,000; subscribers get
2-4 keywords taken from paper titles (``--keywords phrases``: runs of title words, so profiles share
phrases as real ones do; ``words``: random title words joined), a 25-word description, and
sometimes an author.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_PAPERS = 1000
DIGEST = 10


def make_papers(path: Path, n: int, rng: random.Random) -> list[dict[str, object]]:
    """``n`` papers built from the file's papers (sentences shuffled for the copies)."""
    base = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i in range(n):
        src = base[i % len(base)]
        sentences = src["abstract"].split(". ")
        if i >= len(base):
            rng.shuffle(sentences)
        authors = [f"Author{rng.randrange(5000)} Name{rng.randrange(50)}" for _ in range(3)]
        out.append(
            {
                "id": f"p{i}",
                "title": src["title"],
                "abstract": ". ".join(sentences),
                "authors": authors,
                "upvotes": rng.randrange(50),
            }
        )
    return out


def _title_phrases(papers: list[dict[str, object]]) -> list[str]:
    """Every run of one to three words in the titles: a shared vocabulary of real phrases."""
    phrases = []
    for p in papers:
        words = [w for w in str(p["title"]).replace(":", " ").split() if w.isalpha()]
        for n in (1, 2, 2, 3):
            phrases += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return [p for p in phrases if len(p) > 3]


def make_profiles(
    papers: list[dict[str, object]], n: int, rng: random.Random, style: str = "phrases"
) -> list[dict[str, object]]:
    """``n`` profiles: 2-4 keywords, a 25-word description, sometimes an author.

    Keywords are runs of title words ("phrases", as people write them, shared between
    profiles) or title words drawn at random and joined ("words", rarely a real phrase).
    """
    words = [w for p in papers[:300] for w in str(p["title"]).split() if w.isalpha() and len(w) > 3]
    phrases = _title_phrases(papers[:300])
    profiles = []
    for i in range(n):
        keywords = [
            rng.choice(phrases)
            if style == "phrases"
            else " ".join(rng.sample(words, rng.choice((1, 2, 2, 3))))
            for _ in range(rng.randint(2, 4))
        ]
        profile: dict[str, object] = {
            "email": f"user{i}@example.org",
            "keywords": keywords,
            "description": " ".join(rng.sample(words, 25)),
        }
        if rng.random() < 0.2:
            profile["authors"] = [str(rng.choice(papers)["authors"][0])]  # type: ignore[index]
        profiles.append(profile)
    return profiles


def subscribers(profiles: list[dict[str, object]]) -> list[Any]:
    """``Subscriber`` objects for the profiles, built without validation (they are valid)."""
    from bot.models import Subscriber

    interests = Subscriber.model_fields["interests"].annotation
    # Every field is given (defaults too) with the set of fields, so pydantic resolves nothing.
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in Subscriber.model_fields.items()
        if name not in ("email", "max_papers", "interests", "alerts")
    }
    return [
        Subscriber.model_construct(
            {"email", "max_papers", "interests"},
            email=p["email"],
            max_papers=DIGEST,
            alerts=[],
            interests=interests.model_construct(  # type: ignore[union-attr]
                {"keywords", "description", "authors"},
                keywords=p["keywords"],
                description=p["description"],
                exclude=[],
                authors=p.get("authors", []),
                categories=[],
                like=[],
            ),
            **defaults,
        )
        for p in profiles
    ]


def run_ours(papers: list[dict[str, object]], profiles: list[dict[str, object]]) -> int:
    """``select`` for every profile; returns the number of papers picked."""
    from bot.matching import select
    from bot.models import Paper

    paper_objs = [
        Paper(
            str(p["id"]),
            str(p["title"]),
            str(p["abstract"]),
            tuple(p["authors"]),
            upvotes=int(p["upvotes"]),
        )
        for p in papers
    ]  # type: ignore[call-overload]
    subs = subscribers(profiles)
    return sum(len(s.picked) for s in select(subs, paper_objs).values())


def run_baseline(papers: list[dict[str, object]], profiles: list[dict[str, object]]) -> int:
    """scikit-learn TF-IDF cosine, top 10 per subscriber."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    docs = vec.fit_transform([f"{p['title']} {p['abstract']}" for p in papers])
    picked = 0
    for start in range(0, len(profiles), 5000):
        block = profiles[start : start + 5000]
        queries = vec.transform([" ".join([*p["keywords"], str(p["description"])]) for p in block])  # type: ignore[misc]
        sims = np.asarray((queries @ docs.T).todense())
        top = np.argpartition(-sims, DIGEST, axis=1)[:, :DIGEST]
        picked += int((np.take_along_axis(sims, top, axis=1) > 0).sum())
    return picked


def child(method: str, papers_file: Path, n: int, style: str) -> None:
    """Runs inside the measured process: generate, match, print JSON."""
    rng = random.Random(7)
    papers = make_papers(papers_file, N_PAPERS, rng)
    profiles = make_profiles(papers, n, rng, style)
    start = time.perf_counter()
    picked = (run_ours if method == "paperbot" else run_baseline)(papers, profiles)
    matching = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"matching_s": matching, "peak_mb": peak, "picked": picked}))


def measure(method: str, papers_file: Path, n: int, style: str) -> dict[str, float]:
    """Wall time of a fresh process (start-up included) plus what it reports."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            method,
            "--papers",
            str(papers_file),
            "--sizes",
            str(n),
            "--keywords",
            style,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["total_s"] = time.perf_counter() - start
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, required=True)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--keywords", choices=["phrases", "words"], default="phrases")
    parser.add_argument("--child", choices=["paperbot", "sklearn"])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        child(args.child, args.papers, sizes[0], args.keywords)
        return
    print(
        f"{'subscribers':>11} {'method':>9} {'total s':>8} {'match s':>8}"
        f" {'peak MB':>8} {'ratio':>6} {'picked':>8}"
    )
    for n in sizes:
        base = measure("sklearn", args.papers, n, args.keywords)
        ours = measure("paperbot", args.papers, n, args.keywords)
        for name, r in (("sklearn", base), ("paperbot", ours)):
            ratio = r["total_s"] / base["total_s"]
            print(
                f"{n:>11} {name:>9} {r['total_s']:>8.2f} {r['matching_s']:>8.2f}"
                f" {r['peak_mb']:>8.0f} {ratio:>6.2f} {r['picked']:>8.0f}"
            )


if __name__ == "__main__":
    main()
