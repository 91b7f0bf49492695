"""Which papers fire a subscriber's alert rules, and what the alert shows of them."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import pytest

from bot import matching
from bot.alerts import Among, Terms, alert_digest, alert_hits, fired_rules, unfired
from bot.matching.index import Collection
from bot.models import Paper, Subscriber
from bot.render import subject_for
from bot.render_views import chip
from bot.text import terms_of, tokenize


def watcher(**interests: object) -> Subscriber:
    return Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "interests": interests,
            "alerts": [{"keywords": ["state space model"]}, {"authors": ["L. Okafor"]}],
        }
    )


PAPER = Paper(
    id="2611.30001",
    title="Selective scans for long sequences",
    abstract=(
        "Transformers are slow on long inputs. We show that a state space model beats every "
        "transformer model with the same state size and memory space, and that the state space "
        "model trains faster."
    ),
    authors=("Lina Okafor",),
)


def test_an_alert_marks_the_phrase_where_it_occurs_not_each_of_its_words() -> None:
    (hit,) = alert_hits(watcher(), [PAPER])
    text = hit.match.snippet
    assert [text[a:b] for a, b in hit.match.marks] == ["state space model", "state space model"]
    assert hit.match.reasons == ("alert: state space model", "author: Lina Okafor")
    assert [str(chip(r)) for r in hit.match.reasons] == [
        "Alert: state space model",
        "Author: Lina Okafor",
    ]


def test_an_alert_names_what_fired_not_every_term_of_its_rule() -> None:
    sub = Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "alerts": [
                {"authors": ["Grace Hopper", "L. Okafor", "Alan Turing"]},
                {"keywords": ["selective scan", "state space model"], "name": "SSMs"},
                {"keywords": ["mixture of experts"]},
            ],
        }
    )
    (hit,) = alert_hits(sub, [PAPER])
    assert hit.rules == ("L. Okafor", "SSMs")


def test_a_paper_holding_an_excluded_phrase_fires_no_alert() -> None:
    assert alert_hits(watcher(exclude=["memory space"]), [PAPER]) == []
    assert alert_hits(watcher(exclude=["survey"]), [PAPER]) != []
    assert fired_rules(watcher(exclude=["memory space"]), PAPER, Among.of([PAPER])) == ()


def test_each_rule_that_fires_says_what_it_found_and_where() -> None:
    sub = Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "alerts": [
                {"keywords": ["selective scan"]},
                {"keywords": ["mixture of experts", "state space model"], "name": "SSMs"},
                {"authors": ["L. Okafor"]},
                {"authors": ["Lina Okafor"], "name": "Lina"},
                {"authors": ["Grace Hopper"]},
            ],
        }
    )
    assert [fired.explained() for fired in fired_rules(sub, PAPER, Among.of([PAPER]))] == [
        'fires alert "selective scan" (title: selective scan)',
        'fires alert "SSMs" (abstract: state space model)',
        "fires alert for author Lina Okafor (as L. Okafor)",
        'fires alert "Lina" for author Lina Okafor',
    ]


def test_one_alert_holds_every_paper_that_fired_the_first_max_papers_in_full() -> None:
    sub = watcher().model_copy(update={"max_papers": 2})
    by_okafor = replace(PAPER, id="2611.30002", abstract="Long inputs, fast.")
    by_lee = replace(PAPER, id="2611.30003", authors=("Kim Lee",))
    unwatched = replace(by_lee, id="2611.30004", abstract="Nothing to see.")
    hits = alert_hits(sub, [by_okafor, unwatched, by_lee, PAPER])
    alert = alert_digest(sub, date(2026, 11, 25), hits)
    assert [m.paper.id for m in alert.matches] == ["2611.30002", "2611.30003"]
    assert [p.id for p in alert.more] == ["2611.30001"]
    assert (alert.kind, alert.topics) == ("alert", ("L. Okafor", "state space model"))


def test_an_alert_groups_its_papers_by_the_first_rule_each_fires() -> None:
    """Groups in the order of their first paper, papers in their order within a group, a paper
    no rule fires any more last; the first ``max_papers`` of that order in full."""
    sub = watcher().model_copy(update={"max_papers": 3})
    by_okafor = replace(PAPER, id="2611.30002", abstract="Long inputs, fast.")
    on_ssms = replace(PAPER, id="2611.30003", authors=("Kim Lee",))
    also_by_okafor = replace(by_okafor, id="2611.30004")
    gone = unfired(replace(PAPER, id="2611.30005", abstract="Changed.", authors=()))
    hits = [gone, *alert_hits(sub, [by_okafor, on_ssms, PAPER, also_by_okafor])]
    alert = alert_digest(sub, date(2026, 11, 25), hits)
    assert [m.paper.id for m in alert.matches] == ["2611.30002", "2611.30004", "2611.30003"]
    assert [p.id for p in alert.more] == ["2611.30001", "2611.30005"]
    okafor, ssms = ("L. Okafor",), ("state space model",)
    assert alert.rules == (okafor, okafor, ssms, (*ssms, *okafor), ())
    assert alert.topics == ("L. Okafor", "state space model")


def test_alert_phrases_read_acronyms_as_digest_keywords_do() -> None:
    """A lower-case acronym finds its capitals, and an acronym its long form where the paper
    defines it (and the other way round), as digest keywords do."""
    sub = Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "alerts": [
                {"keywords": ["rlhf"]},
                {"keywords": ["mixture of experts"]},
                {"keywords": ["SSM"]},
            ],
        }
    )
    feedback = Paper("f", "Cheaper RLHF", "We cut the cost of RLHF by half.")
    routed = Paper(
        "r",
        "MoE layers on phones",
        "A mixture of experts (MoE) runs on device. Our MoE caches experts.",
    )
    scans = Paper("s", "Selective scans", "A state space model (SSM) beats transformers.")
    among = Among.of([feedback, routed, scans])
    found = [f.explained() for p in (feedback, routed, scans) for f in fired_rules(sub, p, among)]
    assert found == [
        'fires alert "rlhf" (title: rlhf)',
        'fires alert "mixture of experts" (title: mixture of experts)',
        'fires alert "SSM" (abstract: SSM)',
    ]
    (hit,) = alert_hits(sub, [routed])
    text = hit.match.snippet
    assert [text[a:b] for a, b in hit.match.marks] == ["mixture of experts", "MoE"]


ADAPTERS = Paper("2611.40001", "CAT: contrastive adapter tuning", "We present CAT for vision.")
SEGMENTS = Paper("2611.40002", "SAM for medical images", "We adapt SAM to scans of the lung.")
WARNINGS = Paper("2611.40003", "NEWS: neural early warning system", "NEWS warns of floods.")
FEEDBACK = Paper("2611.40004", "Cheaper RLHF", "We cut the cost of RLHF by half.")
PETS = Paper(
    "2611.40005",
    "Telling a cat from a dog in the news",
    "Photos of a cat in the news, aligned with reads kept as sam files.",
)
WORDS = ("cat", "sam", "news", "rlhf")


def watching(*words: str) -> Subscriber:
    """A subscriber with one alert rule and one digest keyword for each of ``words``."""
    return Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "interests": {"keywords": list(words)},
            "alerts": [{"keywords": [word]} for word in words],
        }
    )


def test_a_word_one_paper_writes_in_capitals_fires_no_alert_where_papers_write_it_as_a_word() -> (
    None
):
    """Alert words are read against every paper checked, not against each paper alone: "cat",
    "sam" and "news" are words where one paper writes them in lower case, so a paper naming its
    method CAT, SAM or NEWS fires no alert for them; "rlhf", which no paper writes as a word, still
    finds "RLHF"."""
    sub = watching(*WORDS)
    papers = [ADAPTERS, SEGMENTS, WARNINGS, FEEDBACK, PETS]
    hits = alert_hits(sub, papers)
    assert [(hit.paper.id, hit.rules) for hit in hits] == [
        ("2611.40004", ("rlhf",)),
        ("2611.40005", ("cat", "sam", "news")),
    ]
    among = Among.of(papers)
    assert [f.explained() for f in fired_rules(sub, ADAPTERS, among)] == []
    assert [f.explained() for f in fired_rules(sub, FEEDBACK, among)] == [
        'fires alert "rlhf" (title: rlhf)'
    ]


def test_alerts_and_digests_read_a_keyword_alike_among_the_same_papers() -> None:
    """Among the same papers an alert word fires on the papers a digest keyword finds: "cat" is
    the acronym CAT among papers that write it only so, and the word cat among papers that
    write it in lower case too."""
    for papers in ([ADAPTERS, SEGMENTS, WARNINGS, FEEDBACK, PETS], [ADAPTERS, FEEDBACK]):
        among, collection = Among.of(papers), Collection.build(papers)
        assert among.lexicon == (collection.df, collection.acronyms)
        for word in WORDS:
            sub = watching(word)
            ranked = matching.select([sub], papers)[sub.email].ranked
            named = {f"keyword: {word}", f"keyword: {word} (title)"}
            digest = [m.paper.id for m in ranked if named & set(m.reasons)]
            alert = [hit.paper.id for hit in alert_hits(sub, papers, among)]
            assert sorted(alert) == sorted(digest), (word, [p.id for p in papers])
    assert [hit.paper.id for hit in alert_hits(watching("cat"), [ADAPTERS, FEEDBACK])] == [
        "2611.40001"
    ]


def test_an_alert_phrase_is_not_found_across_punctuation_as_a_digest_keyword_is_not() -> None:
    """ "diffusion model" is not in "We study diffusion. Model collapse ...", nor across a
    comma: neither an alert nor a digest finds it there; where it is written whole, both do,
    and the alert marks it."""
    split = Paper(
        "2611.40011",
        "Graph learning without labels",
        "We study diffusion. Model collapse is avoided by a regularizer on graph diffusion, "
        "model size aside.",
    )
    whole = Paper(
        "2611.40012",
        "Sampling faster",
        "Sampling. We distil a diffusion model into a few steps.",
    )
    papers = [split, whole]
    sub = watching("diffusion model")
    assert [hit.paper.id for hit in alert_hits(sub, papers)] == [whole.id]
    ranked = matching.select([sub], papers)[sub.email].ranked
    assert [m.paper.id for m in ranked if "keyword: diffusion model" in m.reasons] == [whole.id]
    (hit,) = alert_hits(sub, [whole])
    text = hit.match.snippet
    assert [text[a:b] for a, b in hit.match.marks] == ["diffusion model"]
    excluding = Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "interests": {"exclude": ["diffusion model"]},
            "alerts": [{"keywords": ["graph"]}],
        }
    )
    assert [hit.paper.id for hit in alert_hits(excluding, papers)] == [split.id]


def test_an_alert_subject_counts_the_rules_that_fired_not_each_author_of_one_rule() -> None:
    """One rule watching three authors, all of whom wrote a paper, is one rule: the subject
    counts the subscriber's rules beyond the first, not the names listed."""
    sub = Subscriber.model_validate(
        {
            "email": "ada@example.org",
            "alerts": [
                {"name": "Okafor", "authors": ["L. Okafor"]},
                {"authors": ["Tomas Reyes", "José Müller", "A. B. Cervantes"]},
                {"keywords": ["state space model", "mixture of experts"]},
            ],
        }
    )
    written = [
        ("Tomás Reyes", "Sparse mixture of experts for translation"),
        ("Jose Muller", "Linear attention revisited"),
        ("Ana Beatriz Cervantes", "Grounded answers from documents"),
        ("Kenji Watanabe", "A state space model for audio"),
    ]
    papers = [PAPER] + [
        Paper(f"2611.4002{n}", title, "We study it.", authors=(author,))
        for n, (author, title) in enumerate(written)
    ]
    hits = alert_hits(sub, papers)
    d = alert_digest(sub, date(2026, 11, 27), hits)
    assert len(d.topics) == 6, d.topics
    assert subject_for(d) == "Alert for “Okafor” and 2 more rules: 5 new papers"
    only = alert_digest(sub, date(2026, 11, 27), hits[1:4])
    assert only.topics == ("Tomas Reyes", "José Müller", "A. B. Cervantes", "mixture of experts")
    assert subject_for(only) == "Alert for “Tomas Reyes” and 1 more rule: 3 new papers"


def test_a_phrase_is_found_at_each_place_it_is_written_within_one_segment() -> None:
    text = "State space models scale. Models of state space: state space models, again state space models"
    terms = Terms.of(tokenize(text))
    found = terms.find(terms_of("state space model"))
    assert [text[first.start : last.end] for first, last in found] == [
        "State space models",
        "state space models",
        "state space models",
    ]
    assert terms.find(terms_of("scale model")) == []  # across the full stop
    assert terms.find(terms_of(text + " more")) == []  # longer than the text


TOPICS = ("state space model", "mixture of experts", "selective scan", "reward model", "survey")
PEOPLE = ("Lina Okafor", "L. Okafor", "Kim Lee", "José Müller", "Ana Cervantes", "Tomás Reyes")
FILLER = ("we", "study", "long", "audio", "models", "of", "the", "state", "experts", "space")


def varied_papers(rng: random.Random, n: int) -> list[Paper]:
    """``n`` papers writing some of the ``TOPICS``, by some of the ``PEOPLE``."""

    def text(words: int) -> str:
        parts = [rng.choice(TOPICS) if rng.random() < 0.15 else rng.choice(FILLER)]
        parts += [rng.choice(FILLER) for _ in range(words)]
        return " ".join(parts) + (". " if rng.random() < 0.5 else " ") + rng.choice(TOPICS)

    return [
        Paper(f"2611.5{k:04d}", text(3), text(12), authors=tuple(rng.sample(PEOPLE, 2)))
        for k in range(n)
    ]


def varied_roster(rng: random.Random, n: int) -> list[Subscriber]:
    """``n`` watchers: a few sets of rules, some with the same phrases and other authors, each
    with names and excludes varied, so that some share their rules with other excludes and
    their excludes with other rules."""
    phrases = [rng.sample(TOPICS, rng.randint(1, 2)) for _ in range(2)]
    sets = [
        [{"keywords": some}] + ([{"authors": [person]}] if person else [])
        for some in phrases
        for person in ("", *rng.sample(PEOPLE, 2))
    ]
    roster = []
    for k in range(n):
        rules = [
            rule | ({"name": f"rule {k}"} if rng.random() < 0.5 else {})
            for rule in rng.choice(sets)
        ]
        exclude = rng.sample(TOPICS, rng.randint(0, 1))
        roster.append(
            Subscriber.model_validate(
                {"email": f"w{k}@example.org", "interests": {"exclude": exclude}, "alerts": rules}
            )
        )
    return roster


@pytest.mark.parametrize("seed", range(6))
def test_papers_remembered_as_firing_nothing_give_the_hits_checking_every_paper_gives(
    seed: int,
) -> None:
    """Sweep after sweep over the same papers, the hits of each watcher are those a check of
    every paper finds; the papers their rules and excludes fired nothing on are not checked
    again (once per paper and set of them: one byte each)."""
    rng = random.Random(seed)
    papers, roster = varied_papers(rng, 30), varied_roster(rng, 12)
    written = [text for sub in roster for text in sub.interests.written]
    kept = Among.of(papers, written)
    for _ in range(3):  # sweeps, each over some of the papers
        for sub in roster:
            some = rng.sample(papers, rng.randint(10, len(papers)))
            afresh = Among(kept.lexicon, kept.ids)
            unchecked = kept.quiet(sub).unchecked(some)
            remembered = [p for p in some if p not in unchecked]
            assert alert_hits(sub, some, kept) == alert_hits(sub, some, afresh)
            assert not alert_hits(sub, remembered, afresh), "they fire nothing"
    assert any(kept.quiet(sub) for sub in roster)
    assert all(len(kept.quiet(sub)) <= len(papers) for sub in roster)
