"""Matching: each signal, the threshold, selection, explanations, determinism and edge cases.

Every paper and profile here is fictional and written for these tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bot import text
from bot.matching import DEFAULT_THRESHOLD, Selection, explain, scorer, select, signals
from bot.matching.combine import DESCRIPTION_SCALE
from bot.matching.describe import PAIR_SHARE, Descriptions
from bot.matching.index import Collection
from bot.models import Match, Paper, Subscriber
from bot.text import distinct_terms, find_acronyms, same_person, terms_of

FILLER = [
    Paper(f"f{i}", f"A study of {topic}", f"We study {topic} with a new model and report results.")
    for i, topic in enumerate(
        [
            "graph coloring",
            "protein folding",
            "weather forecasting",
            "speech codecs",
            "robot arms",
            "query planning",
            "image denoising",
            "traffic lights",
            "crop yields",
            "music tagging",
        ]
    )
]


def sub(email: str = "ada@example.org", **interests: Any) -> Subscriber:
    extra = {k: interests.pop(k) for k in ("max_papers", "min_score") if k in interests}
    return Subscriber(email=email, interests=interests, **extra)


def one(subscriber: Subscriber, papers: list[Paper], **kw: Any) -> Selection:
    return select([subscriber], papers, **kw)[subscriber.email]


def scores(selection: Selection) -> dict[str, float]:
    return {m.paper.id: m.score for m in selection.ranked}


def test_phrase_beats_scattered_words() -> None:
    phrase = Paper("p", "Quantum walks for sorting", "A quantum walk sorts lists quickly.")
    scattered = Paper("s", "Sorting by walking", "Walks on graphs; quantum effects are ignored.")
    got = scores(one(sub(keywords=["quantum walk"]), [phrase, scattered, *FILLER]))
    assert got["p"] > DEFAULT_THRESHOLD > got["s"] > 0


def test_a_phrase_does_not_run_across_punctuation() -> None:
    """The words of "quantum walk" side by side across a comma ("quantum, walks") are no
    phrase: they score as the same words the other way round."""
    crossed = Paper("c", "Notes on graphs", "We compare quantum, walks and trees.")
    swapped = Paper("w", "Notes on graphs", "We compare walks, quantum and trees.")
    phrase = Paper("p", "Notes on graphs", "We compare quantum walks and trees.")
    got = scores(one(sub(keywords=["quantum walk"]), [crossed, swapped, phrase, *FILLER]))
    assert got["p"] > DEFAULT_THRESHOLD > got["c"] == got["w"] > 0


LONGER = [
    Paper(
        f"g{i}",
        f"Notes on {topic}",
        f"We revisit {topic} under realistic budgets. A simple baseline with careful tuning "
        "matches recent methods on three public benchmarks, and we release the code.",
    )
    for i, topic in enumerate(["graph coloring", "crop yields", "speech codecs", "robot arms"])
]
"""Papers whose abstracts are about as long as real ones (two sentences of some 25 words)."""


def test_a_phrase_written_once_in_the_abstract_is_picked() -> None:
    """A keyword of several words found word for word, once, in an abstract longer than the
    day's average clears the threshold; one word found once there does not."""
    mention = Paper(
        "m",
        "Faster sampling at megapixel resolution",
        "We train a one-step student from a latent diffusion model teacher with a loss that "
        "weighs each timestep by how much the student can still learn, and report image "
        "quality at four resolutions on two public benchmarks, with the code and weights.",
    )
    selection = one(sub(keywords=["diffusion models"]), [mention, *LONGER])
    assert [m.paper.id for m in selection.picked] == ["m"]
    assert selection.picked[0].reasons == ("keyword: diffusion models",)
    assert not one(sub(keywords=["teacher"]), [mention, *LONGER]).picked


def test_a_keyword_written_twice_or_in_another_form_counts_once() -> None:
    """Repeating a keyword, or writing its plural or its acronym beside it, neither raises the
    papers it finds nor carries a weaker match past the threshold."""
    defined = Paper("d", "Sparse gating", "A mixture of experts (MoE) routes each token.")
    passing = Paper("p", "Load balance", "Routing with a mixture of experts; we study many.")
    papers = [defined, passing, *LONGER, *FILLER]
    once = scores(one(sub(keywords=["mixture of experts", "graph coloring"]), papers))
    for extra in (["mixture of experts"], ["mixtures of experts"], ["MoE", "Mixture-of-Experts"]):
        profile = sub(keywords=["mixture of experts", *extra, "graph coloring"])
        assert scores(one(profile, papers)) == once, extra


BROAD = [
    *(f"{topic} generation" for topic in ("music", "code", "speech", "protein", "layout")),
    *(f"{kind} models" for kind in ("world", "reward", "sequence", "energy", "latent")),
    *("generative models", "language models", "model merging", "model editing", "data generation"),
    *(f"{topic} generation" for topic in ("story", "caption", "query", "scene", "report")),
    *(f"{kind} models" for kind in ("topic", "mixture", "graphical", "ranking", "vision")),
]
"""Broad keywords, many sharing a word ("models", "generation") with others."""


def test_words_shared_by_many_keywords_do_not_carry_a_paper_none_of_them_names() -> None:
    """A word found in a paper counts towards each keyword holding it, but matches too weak to
    be named add up to less than the threshold: a paper that only says "model" and
    "generation" is no pick, however many keywords share those words."""
    vague = Paper(
        "v",
        "Goes on and on",
        "We propose a model for the generation of long outputs; the model is fast.",
    )
    on_topic = Paper("t", "Reward models that forget", "Reward models drift during training.")
    profile = sub(keywords=BROAD)
    selection = one(profile, [vague, on_topic, *FILLER, *LONGER])
    assert [m.paper.id for m in selection.picked] == ["t"]
    assert selection.picked[0].reasons == ("keyword: reward models (title)",)
    lenient = one(sub(keywords=BROAD, min_score=0.2), [vague, on_topic, *FILLER, *LONGER])
    assert "v" in [m.paper.id for m in lenient.picked]
    assert all(m.reasons for m in lenient.picked)
    why = {m.paper.id: m.reasons for m in lenient.picked}
    assert why["f1"] == ("keyword: protein generation (one of its words)",)


def test_title_counts_more_than_abstract() -> None:
    title = Paper("t", "Lattice sieving made fast", "We improve a classic algorithm.")
    abstract = Paper("a", "Faster algorithms", "We improve lattice sieving in one step.")
    got = scores(one(sub(keywords=["lattice sieving"]), [title, abstract, *FILLER]))
    assert got["t"] > got["a"]


def test_more_keywords_found_rank_higher(monkeypatch: pytest.MonkeyPatch) -> None:
    both = Paper("b", "Lattice sieving", "Lattice sieving with quantum walks.")
    once = Paper("o", "Lattice sieving", "Lattice sieving with classical tricks.")
    profile = sub(keywords=["lattice sieving", "quantum walk", "bloom filter"])
    got = scores(one(profile, [both, once, *FILLER]))
    assert got["b"] > got["o"] > DEFAULT_THRESHOLD
    monkeypatch.setattr("bot.matching.combine.COVERAGE_WEIGHT", 0.0)
    without = scores(one(profile, [both, once, *FILLER]))
    assert without["o"] == got["o"] and without["b"] < got["b"]


def test_stemming_matches_word_forms() -> None:
    paper = Paper("p", "Routing packets with learned tables", "Tables that route packets.")
    selection = one(sub(keywords=["routed packet"]), [paper, *FILLER])
    assert [m.paper.id for m in selection.picked] == ["p"]
    assert terms_of("policies") == terms_of("policy")


def test_acronym_and_long_form_match_each_other() -> None:
    defined = Paper("d", "Sparse gating networks", "A mixture of experts (MoE) routes tokens.")
    short = Paper("s", "Faster MoE inference", "We cache the MoE layers on device.")
    got = scores(one(sub(keywords=["mixture of experts"]), [defined, short, *FILLER]))
    assert got["s"] > DEFAULT_THRESHOLD
    assert find_acronyms(["a mixture of experts (MoE) model"]) == {"MOE": ("mixtur", "expert")}


def test_an_acronym_typed_in_lower_case_is_found_in_capitals() -> None:
    """The keyword "rlhf" finds "RLHF" (which no paper writes in lower case); "cat", which
    papers also write as a word, stays the word and does not find the acronym "CAT"."""
    rlhf = Paper("r", "Cheaper RLHF for chat models", "We halve the cost of RLHF with LLMs.")
    tagger = Paper("c", "CAT: a contrastive tagger", "CAT tags photos of pets.")
    pets = Paper("p", "Counting pets", "We count cats and dogs in photos.")
    papers = [rlhf, tagger, pets, *FILLER]
    (pick,) = one(sub(keywords=["rlhf"]), papers).picked
    assert (pick.paper.id, pick.reasons) == ("r", ("keyword: rlhf (title)",))
    assert [m.paper.id for m in one(sub(keywords=["llms"]), papers).picked] == ["r"]
    word = next(m for m in one(sub(keywords=["cat"]), papers).ranked if m.paper.id == "p")
    assert [word.snippet[a:b] for a, b in word.marks] == ["cats"]
    assert scores(one(sub(keywords=["cat"]), papers))["c"] == 0.0
    assert not one(sub(keywords=["rlhf门控"]), papers).picked  # several terms: left as written


def test_a_chinese_keyword_is_found_in_text_written_without_spaces() -> None:
    gated = Paper("g", "门控专家网络的路由", "本文研究门控专家网络。我们提出一种新的路由算法。")
    apart = Paper("a", "专家系统综述", "门控电路与专家知识。")
    selection = one(sub(keywords=["门控专家"]), [gated, apart, *FILLER])
    (pick,) = selection.picked
    assert pick.paper.id == "g" and pick.reasons[0] == "keyword: 门控专家 (title)"
    assert [pick.snippet[a:b] for a, b in pick.marks] == ["门控专家"]
    assert scores(selection)["a"] < pick.score / 2, "the characters apart are no phrase"


def test_a_greek_letter_is_its_name_as_latex_writes_it() -> None:
    unicode = Paper(
        "u", "Tuning \u03b1-divergences", "We tune the \u03b1-divergence of a posterior."
    )
    latex = Paper("l", r"Bounds for $\lambda$-returns", r"We bound $\lambda$-returns.")
    for keyword, wanted in (("alpha-divergence", "u"), ("λ-return", "l"), ("$\\alpha$", "u")):
        picked = one(sub(keywords=[keyword]), [unicode, latex, *FILLER]).picked
        assert [m.paper.id for m in picked] == [wanted], keyword


def test_exclude_vetoes_as_a_phrase() -> None:
    survey = Paper("v", "Quantum walks: a systematic survey", "We review quantum walks.")
    kept = Paper("k", "Quantum walks on trees", "A systematic study; no survey data.")
    profile = sub(keywords=["quantum walk"], exclude=["systematic surveys"])
    selection = one(profile, [survey, kept, *FILLER])
    assert [m.paper.id for m in selection.picked] == ["k"]
    assert scores(selection)["v"] == 0.0


@pytest.mark.parametrize(
    ("wanted", "printed", "same"),
    [
        ("Y. LeCun", "Yann LeCun", True),
        ("Yann LeCun", "LeCun, Yann", True),
        ("Jose Garcia", "José García", True),
        ("A. Turing", "B. Turing", False),
        ("Ada Lovelace", "Ada Byron", False),
        ("Lukasz Kaiser", "Łukasz Kaiser", True),
        ("Oystein Hansen", "Ø. Hansen", True),
        ("Aevar Arnfjord", "Ævar Arnfjörð", True),
        ("Ashish Vaswani", "Vaswani A.", True),
        ("Noam Shazeer", "Shazeer N", True),
        ("Maria Garcia-Lopez", "María García López", True),
        ("María García López", "M. Garcia-Lopez", True),
        ("Yann LeCun", "Yann Le Cun", True),
        ("Laurens van der Maaten", "van der Maaten, L.", True),
        ("Andrew Ng", "A. Ng", True),
        ("Andrew Ng", "Ng Andrew", False),  # no way to tell without initials
        ("Di Wang", "D. Wang", True),  # a given name that is also a particle
        ("Di Wang", "X. Wang", False),
        ("Wei Zhang", "Zhang W", True),
        ("Wei Zhang", "Wei Zhao", False),
        ("Thanh Van Nguyen", "T. V. Nguyen", True),  # "Van" a middle name, not a particle
        ("Hieu Van Le", "H. Le", True),
        ("Thanh Van Nguyen", "Nguyen, Thanh", True),
        ("van der Maaten", "Laurens van der Maaten", True),
        ("Laurens van der Maaten", "Van der Maaten L.", True),
        ("Yann LeCun", "Le Cun Y.", True),
        ("Thanh Van Nguyen", "Thanh V. Nguyen", True),
        ("Maria Garcia-Lopez", "Miguel López", False),  # another person sharing a part
        ("Maria Garcia-Lopez", "Marta Fernández-López", False),
        ("John von Neumann", "J. Neumann", False),  # particles belong to the family name
        ("Marco De Martin", "Matthew Martin", False),
        ("João da Silva", "José Silva", False),
        ("Y. Le Cun", "Yi Cun", False),
        ("Benjamin Van Roy", "B. Roy", False),
        ("Benjamin Van Roy", "B. Van Roy", True),
        ("Kaiming He", "Kai He", False),  # given names written out must agree
        ("Kaiming He", "K. He", True),
        ("Yoon Kim", "Yejin Kim", False),
        ("Fei-Fei Li", "Fei Fei Li", True),
        ("Fei-Fei Li", "Feifei Li", True),
        ("Geoffrey Hinton", "Geoffrey E. Hinton", True),
        ("Jürgen Schmidhuber", "Juergen Schmidhuber", True),
        ("Thanh Van Nguyen", "Thanh Nguyen", True),
    ],
)
def test_author_name_forms(wanted: str, printed: str, same: bool) -> None:
    assert same_person(wanted, printed) is same


def test_followed_author_is_picked_with_reason() -> None:
    paper = Paper("a", "On knitting", "Nothing to do with the keywords.", authors=("Zoë Quill",))
    selection = one(sub(authors=["Z. Quill"], keywords=["graph coloring"]), [paper, *FILLER])
    match = next(m for m in selection.picked if m.paper.id == "a")
    assert "author: Z. Quill" in match.reasons


def test_a_followed_author_is_not_found_in_someone_sharing_the_family_name() -> None:
    """Papers by another person with the same family name and initial are not picked, and
    their reasons never name the followed author."""
    theirs = Paper("y", "Parsing with trees", "Tree parsers.", authors=("Yoon Quill",))
    other = Paper("o", "Knitting machines", "Looms.", authors=("Yejin Quill", "Ada Byron"))
    short = Paper("s", "Sorting socks", "Socks.", authors=("Y. Quill",))
    selection = one(sub(authors=["Yoon Quill"]), [theirs, other, short, *FILLER])
    assert sorted(m.paper.id for m in selection.picked) == ["s", "y"]
    assert explain(sub(authors=["Yoon Quill"]), other, FILLER).reasons == ()


def test_threshold_and_min_score() -> None:
    papers = [Paper("p", "Quantum walks", "A quantum walk."), *FILLER]
    assert one(sub(keywords=["quantum walk"]), papers).picked
    assert not one(sub(keywords=["quantum walk"], min_score=1.0), papers).picked
    weak = one(sub(keywords=["model"]), FILLER)
    assert all(m.score < DEFAULT_THRESHOLD for m in weak.ranked)


def test_a_paper_scoring_exactly_the_threshold_clears_it() -> None:
    papers = [Paper("p", "Quantum walks", "A quantum walk."), *FILLER]
    profile = sub(keywords=["quantum walk"])
    exact = float(scorer.LexicalScorer().score([profile], papers).matrix[0, 0])
    assert 0 < exact < 1
    at = one(sub(keywords=["quantum walk"], min_score=exact), papers)
    assert [m.paper.id for m in at.picked] == ["p"]
    past = one(sub(keywords=["quantum walk"], min_score=float(np.nextafter(exact, 1))), papers)
    assert (past.picked, past.more_count) == ((), 0)


def test_max_papers_and_more() -> None:
    papers = [Paper(f"q{i}", f"Quantum walks {i}", "A quantum walk.", upvotes=i) for i in range(5)]
    selection = one(sub(keywords=["quantum walk"], max_papers=2), [*papers, *FILLER])
    assert len(selection.picked) == 2
    assert selection.more_count == len(selection.more) == 3
    assert [m.paper.id for m in selection.picked] == ["q4", "q3"]  # equal scores: upvotes
    assert [p.id for p in selection.more] == ["q2", "q1", "q0"]  # the rest, in rank order
    assert len(selection.ranked) == len(papers) + len(FILLER)


def test_scores_in_unit_interval_and_ranked_best_first() -> None:
    selection = one(sub(keywords=["quantum walk", "sorting"], description="walks"), FILLER)
    values = [m.score for m in selection.ranked]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v <= 1.0 for v in values)


def check_marks(match: Match) -> None:
    assert match.snippet
    for start, end in match.marks:
        assert 0 <= start < end <= len(match.snippet)


def test_description_reasons_name_words_as_a_reader_would_write_them() -> None:
    """A word capitalised only because it starts a sentence is named in lower case; names and
    acronyms inside a sentence keep theirs."""
    paper = Paper(
        "p", "Sorting with quantum walks", "Quantum walks sort lists. We follow Grover on QRAM."
    )
    text = "Sorting is fast. Quantum methods after Grover, with QRAM."
    match = one(sub(description=text), [paper, *FILLER]).picked[0]
    (reason,) = [r for r in match.reasons if r.startswith("description: ")]
    named = reason.removeprefix("description: ").split(", ")
    assert "Grover" in named and "QRAM" in named
    assert {"sorting", "quantum"} & set(named) and not {"Sorting", "Quantum"} & set(named)


def test_reasons_snippet_and_marks() -> None:
    paper = Paper(
        "p",
        "Quantum walks for sorting",
        "Sorting is old. We show that a quantum walk sorts any list in linear time. Code is free.",
    )
    selection = one(sub(keywords=["quantum walk"], description="fast sorting"), [paper, *FILLER])
    match = selection.picked[0]
    assert match.reasons[0] == "keyword: quantum walk (title)"
    assert any(r.startswith("description: ") for r in match.reasons)
    check_marks(match)
    marked = [match.snippet[s:e] for s, e in match.marks]
    assert any("quantum walk" in text for text in marked)
    assert "quantum walk sorts" in match.snippet


def test_explain_says_why_not() -> None:
    survey = Paper("v", "Quantum walks: a survey", "We review quantum walk algorithms.")
    profile = sub(keywords=["quantum walk"], exclude=["survey"])
    why = explain(profile, survey, FILLER)
    assert why.status == "vetoed"
    assert why.vetoes == ("exclude: survey",)
    assert why.threshold == DEFAULT_THRESHOLD
    assert "keyword: quantum walk (title)" in why.reasons
    picked = explain(sub(keywords=["quantum walk"]), survey, FILLER)
    assert (picked.status, picked.rank) == ("picked", 1)


def test_explain_says_a_match_beyond_max_papers_is_listed_by_title_only() -> None:
    phrase = Paper("p", "Quantum walks for sorting", "A quantum walk sorts lists quickly.")
    title = Paper("t", "Quantum walks on graphs", "Walks that spread fast.")
    why = explain(sub(keywords=["quantum walk"], max_papers=1), title, [phrase, title, *FILLER])
    assert (why.status, why.rank) == ("more", 2)
    assert why.lines()[0].startswith(
        "t: matched, but listed by title only, beyond max_papers 1 (score "
    )


def test_like_signal() -> None:
    liked = Paper("old", "Quantum walks sort lists", "Quantum walks sort lists in linear time.")
    similar = Paper("new", "Sorting lists by quantum walks", "Linear time sorting of lists.")
    selection = one(sub(like=["old"]), [similar, *FILLER], liked={"old": liked})
    assert [m.paper.id for m in selection.picked] == ["new"]
    assert "like: similar to old (Quantum walks sort lists)" in selection.picked[0].reasons


def test_a_liked_paper_is_not_sent_back() -> None:
    liked = Paper("old", "Quantum walks sort lists", "Quantum walks sort lists in linear time.")
    similar = Paper("new", "Sorting lists by quantum walks", "Linear time sorting of lists.")
    reader = sub(like=["old"], keywords=["quantum walks"])
    selection = one(reader, [liked, similar, *FILLER], liked={"old": liked})
    assert [m.paper.id for m in selection.picked] == ["new"]
    verdict = explain(reader, liked, [liked, similar, *FILLER], liked={"old": liked})
    assert (verdict.status, verdict.vetoes) == ("vetoed", ("like: old is a paper you liked",))


_TOPICS = [
    "graph coloring",
    "protein folding",
    "weather forecasting",
    "speech codecs",
    "robot arms",
]
_TOPICS += ["query planning", "image denoising", "traffic lights", "crop yields", "music tagging"]
_TOPICS += [
    "ship routes",
    "chess openings",
    "bird songs",
    "power grids",
    "soil moisture",
    "tax forms",
]
_WORDS = ["error rates", "linear time", "sorted order", "long lists", "small chips", "low noise"]
_WORDS += ["graphs", "scores"]
# A day of unrelated papers that share some words with the liked paper, as real days do.
DAY = [
    Paper(
        f"d{i}",
        f"Learning {topic} at scale",
        f"We study {topic} with {_WORDS[i % 8]} and {_WORDS[(3 * i + 1) % 8]}. A new model "
        f"learns {topic} from data; results show gains.",
    )
    for i, topic in enumerate(_TOPICS)
]
WALKS = Paper(
    "old",
    "Sorting lists with quantum walks on hypercubes",
    "We sort long lists by running quantum walks on hypercube graphs. The walk amplitudes settle "
    "on the sorted order, and a lattice of beam splitters reads them out. Photonic chips run the "
    "walk in linear time, with error rates that stay low as the lists grow.",
)
RANKING = Paper(
    "near",
    "Ranking items with quantum walks",
    "Quantum walks on hypercubes rank items by score. A new model of walk amplitudes learns from "
    "data; results show gains.",
)
SPLITTERS = Paper(
    "near2",
    "Beam splitter lattices on photonic chips",
    "Lattices of beam splitters on photonic chips mix light. We study their losses; results show "
    "gains.",
)
TIDES = Paper(
    "tides",
    "Tide gauges read by sonar buoys",
    "Sonar buoys read tide gauges along coasts and send the heights ashore every minute.",
)
BUOYS = Paper(
    "buoys",
    "Calibrating sonar buoys against tide gauges",
    "Sonar buoys drift; we calibrate them against tide gauges. A new model learns the drift.",
)


def test_a_like_only_profile_gets_the_papers_that_share_the_liked_papers_terms() -> None:
    """A cosine of 0.3 to a liked paper, where the day's others score 0.01-0.12, is a match."""
    day = [RANKING, SPLITTERS, *DAY]
    selection = one(sub(like=["old"]), day, liked={"old": WALKS})
    assert {m.paper.id for m in selection.picked} == {"near", "near2"}
    reason = "like: similar to old (Sorting lists with quantum walks on hypercubes)"
    assert all(m.reasons == (reason,) for m in selection.picked)
    unrelated = explain(sub(like=["old"]), DAY[1], day, liked={"old": WALKS})
    assert unrelated.status == "below threshold" and unrelated.reasons == ()


def test_likes_of_papers_not_at_hand_count_for_nothing() -> None:
    day = [RANKING, SPLITTERS, *DAY]
    alone = scores(one(sub(like=["old"]), day, liked={"old": WALKS}))
    assert scores(one(sub(like=["gone", "old"]), day, liked={"old": WALKS})) == alone
    unseen = one(sub(like=["gone"]), day, liked={"old": WALKS})
    assert unseen.picked == () and set(scores(unseen).values()) == {0.0}


def test_several_likes_each_bring_their_own_papers() -> None:
    day = [RANKING, SPLITTERS, BUOYS, *DAY]
    liked = {"old": WALKS, "tides": TIDES}
    selection = one(sub(like=["old", "tides"]), day, liked=liked)
    reasons = {m.paper.id: m.reasons for m in selection.picked}
    assert set(reasons) == {"near", "near2", "buoys"}
    assert reasons["buoys"] == ("like: similar to tides (Tide gauges read by sonar buoys)",)
    # A second liked paper on another topic does not dilute the first one's matches.
    alone = scores(one(sub(like=["old"]), day, liked=liked))
    assert scores(selection)["near2"] == alone["near2"]


def test_a_small_day_is_read_against_a_typical_one() -> None:
    """Too few papers to tell what stands out: a close paper still counts, a distant one not."""
    corpus = [RANKING, *DAY]
    for day, picked in (([RANKING], ["near"]), ([DAY[0]], [])):
        got = one(sub(like=["old"]), day, corpus=corpus, liked={"old": WALKS})
        assert [m.paper.id for m in got.picked] == picked
    # A day of nothing but one of the liked papers leaves no background, and nothing to send.
    liked = {"old": WALKS, "tides": TIDES}
    assert one(sub(like=["old", "tides"]), [WALKS], liked=liked).picked == ()
    assert one(sub(like=["old", "tides"]), [], liked=liked).picked == ()


def test_a_day_mostly_on_the_liked_papers_topic_still_brings_them() -> None:
    """When most of the day is on the liked paper's topic, its cosines to them are the day's
    typical ones: the bar is no higher than a typical day's, so they are still matches (the
    day's papers sharing a few words with the liked one may stand out as much)."""
    things = ["hypercubes", "photonic chips", "beam splitters", "lattices", "sorted lists"]
    same = [
        Paper(
            f"q{i}",
            f"Quantum walks on {things[i % 5]}",
            f"We study quantum walks on {things[i % 5]} and {things[(i // 5) % 5]}. The walk "
            "amplitudes settle; results show gains.",
        )
        for i in range(30)
    ]
    selection = one(sub(like=["old"]), [RANKING, *same, *DAY], liked={"old": WALKS})
    on_topic = {"near", *(p.id for p in same)}
    picked = {m.paper.id for m in selection.picked}
    assert len(picked) == 10 and len(picked - on_topic) <= 1, picked


def test_beside_keywords_a_like_only_boosts() -> None:
    """Likes raise what the keywords find; they do not add papers the keywords miss."""
    day = [RANKING, SPLITTERS, *DAY]
    got = scores(one(sub(keywords=["quantum walks"], like=["old"]), day, liked={"old": WALKS}))
    without = scores(one(sub(keywords=["quantum walks"]), day))
    assert got["near"] > without["near"] > DEFAULT_THRESHOLD > got["near2"] > 0


def test_category_boost_and_filter() -> None:
    tagged = Paper("c", "Graph coloring again", "More coloring.", categories=("cs.DM",))
    alone = one(sub(categories=["cs.DM"]), [tagged, *FILLER])
    assert [m.paper.id for m in alone.picked] == ["c"]
    assert "category: cs.DM" in alone.picked[0].reasons


def test_deterministic() -> None:
    profiles = [sub(f"u{i}@example.org", keywords=["quantum walk", "coloring"]) for i in range(3)]
    papers = [Paper("p", "Quantum walks", "A quantum walk."), *FILLER]
    first = select(profiles, papers, corpus=FILLER)
    second = select(profiles, list(papers), corpus=list(FILLER))
    assert first == second


def test_empty_profile_empty_papers_huge_profile() -> None:
    assert not one(sub(), FILLER).picked
    assert one(sub(keywords=["x"]), []).ranked == ()
    huge = sub(
        keywords=[f"topic {i}" for i in range(300)] + ["graph coloring"], description="w " * 2000
    )
    selection = one(huge, FILLER)
    assert [m.paper.id for m in selection.picked] == ["f0"]
    assert select([], FILLER) == {}


def test_top_columns_agree_with_full_rank_order() -> None:
    import numpy as np

    from bot.matching.selection import rank_order, top_columns

    rng = np.random.default_rng(3)
    scores = np.round(rng.random((6, 40)), 2).astype(np.float32)  # many ties
    ties = rng.permutation(40)
    top = top_columns(scores, ties, 7)
    for row, best in zip(scores, top, strict=True):
        assert list(best) == list(rank_order(row, ties)[:7])
    assert top_columns(scores, ties, 100).shape == (6, 40)


def test_many_subscribers_match_one_at_a_time_results() -> None:
    papers = [
        Paper("p", "Quantum walks for sorting", "Sorting is old. A quantum walk sorts lists."),
        Paper("q", "Graph coloring by walks", "Quantum effects help coloring graphs."),
        *FILLER,
    ]
    profiles = [
        sub(f"u{i}@example.org", keywords=["quantum walk", kw], description=d, max_papers=1 + i)
        for i, (kw, d) in enumerate(
            [("coloring", "graphs"), ("sorting", "lists"), ("coloring", ""), ("walks", "old")]
        )
    ]
    together = select(profiles, papers)
    for profile in profiles:
        alone = one(profile, papers)
        assert together[profile.email].picked == alone.picked
        assert together[profile.email].more == alone.more
        assert together[profile.email].more_count == alone.more_count


def test_snippet_marks_the_keyword_sentence() -> None:
    paper = Paper(
        "p",
        "Sorting lists",
        "Lists are everywhere in practice. Here a quantum walk sorts them quickly. Code is free.",
    )
    selection = one(sub(keywords=["quantum walk"], description="lists practice"), [paper, *FILLER])
    picked = selection.ranked[0]
    assert picked.snippet.startswith("Here a quantum walk")
    assert [picked.snippet[s:e] for s, e in picked.marks] == ["quantum walk"]


def test_reasons_of_many_pairs_agree_with_one_pair_at_a_time() -> None:
    papers = [
        Paper("p", "Quantum walks for sorting", "Sorting is old. A quantum walk sorts lists."),
        Paper(
            "q", "Graph coloring by walks", "Quantum effects help coloring graphs.", ("Ada Byron",)
        ),
        *FILLER,
    ]
    profiles = [
        sub("a@example.org", keywords=["quantum walk", "Quantum walks", "sorting"]),
        sub(
            "b@example.org", keywords=["coloring"], description="graphs graphs walks", max_papers=2
        ),
        sub("c@example.org", authors=["A. Byron"], description="quantum coloring of graphs"),
    ]
    together = select(profiles, papers)
    for profile in profiles:
        for match in together[profile.email].ranked:
            why = explain(profile, match.paper, papers)
            assert (why.score, why.reasons) == (match.score, match.reasons)
            assert (why.snippet, why.marks) == (match.snippet, match.marks)
    picked = together["a@example.org"].picked[0]
    assert picked.reasons.count("keyword: quantum walk (title)") == 1
    assert "keyword: Quantum walks (title)" not in picked.reasons  # same terms, named once


def test_dense_product_is_the_sparse_product(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import scipy.sparse as sp

    from bot.matching import matrices

    rng = np.random.default_rng(5)
    right = sp.random(60, 30, density=0.2, format="lil", random_state=7, dtype=np.float32)
    right[10] = 0  # an empty row
    right = sp.csr_matrix(right)
    left = sp.random(9, 60, density=0.3, format="csr", random_state=8, dtype=np.float32)
    left.data = rng.random(len(left.data)).astype(np.float32)
    exact = sp.csr_matrix(left @ right).toarray()
    assert np.array_equal(matrices.DenseRows(right).times(left), exact)
    monkeypatch.setattr(matrices, "DENSE_LIMIT", 10)
    assert matrices.DenseRows(right).dense is None
    assert np.array_equal(matrices.DenseRows(right).times(left), exact)


def test_descriptions_compiled_together() -> None:
    from bot.matching.query import Compiler

    compiler = Compiler(Collection.build(FILLER))
    texts = ["protein folding folding proteins", "", "protein folding folding proteins", "crops"]
    queries = compiler.compile(
        [sub(f"u{i}@example.org", description=t) for i, t in enumerate(texts)]
    )
    assert queries[0] is queries[2]  # identical profiles share one query
    assert [q.described for q in queries] == [True, False, True, True]
    assert compiler.vocabulary.descriptions is not None
    weights, surface = compiler.vocabulary.descriptions.matrices(len(compiler.vocabulary.columns))
    row = weights[queries[0].description]
    features = list(compiler.vocabulary.columns)
    # Terms in first-occurrence order, then the pairs of adjacent words a paper also holds:
    # "protein folding" is in a title, "folding proteins" in none.
    assert [features[c] for c in row.indices] == ["protein", "fold", ("protein", "fold")]
    assert row.data[:2].sum() == pytest.approx(1 - PAIR_SHARE)
    assert row.data[2] == pytest.approx(PAIR_SHARE)  # the only pair held takes the whole share
    words = compiler.vocabulary.descriptions.words
    surface_row = surface[queries[0].description].data
    assert [words[w - 1] for w in surface_row] == ["protein", "folding", "protein folding"]
    crops = weights[queries[3].description]
    assert crops.data.sum() == pytest.approx(1.0)  # no pair of words: all on the terms


def test_description_pairs_are_words_written_next_to_each_other() -> None:
    """Pairs form inside a word ("video-text") and between consecutive words, never across a
    stop word or punctuation; only the pairs some paper holds share the row, which sums to 1
    whatever the papers hold."""
    names: dict[str, int] = {}

    def terms(word: str) -> tuple[int, ...]:
        parts = [p.lower() for p in word.split("-") if p.lower() not in {"for", ""}]
        return tuple(names.setdefault(p, len(names)) for p in parts)

    text = "Policy gradients for robots, video-text retrieval"
    descriptions = Descriptions({text: 0}, terms)
    asked: list[tuple[int, int]] = []

    def held(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        asked.extend(zip(first.tolist(), second.tolist(), strict=True))
        return np.where(first == names["video"], len(names), -1)  # papers hold "video text"

    descriptions.weigh(np.ones(len(names)), held)
    pairs = {(names[a], names[b]) for a, b in [("policy", "gradients"), ("video", "text")]}
    assert set(asked) == pairs | {(names["text"], names["retrieval"])}
    weights, surface = descriptions.matrices(len(names) + 1)
    assert weights.indices.tolist() == [*range(len(names)), len(names)]
    assert weights.data[:-1] == pytest.approx([(1 - PAIR_SHARE) / len(names)] * len(names))
    assert weights.data[-1] == pytest.approx(PAIR_SHARE)
    assert descriptions.words[surface.data[-1] - 1] == "video-text"
    none_held = Descriptions({text: 0}, terms)
    none_held.weigh(np.ones(len(names)), lambda first, _: np.full(len(first), -1))
    alone, _ = none_held.matrices(len(names))
    assert alone.indices.tolist() == list(range(len(names)))
    assert alone.data == pytest.approx([1 / len(names)] * len(names))


def test_a_keyword_found_as_words_apart_says_so_in_plain_words() -> None:
    papers = [
        Paper("two", "Routing for each expert", "Each expert sees a share of the routing load."),
        Paper("three", "Experts in a learned mixture", "A mixture of many experts is learned."),
        *FILLER,
    ]
    ranked = one(sub(keywords=["expert routing", "mixture of experts"]), papers).ranked
    reasons = {m.paper.id: m.reasons for m in ranked}
    assert "keyword: expert routing (both words)" in reasons["two"]
    hyphenated = one(sub(keywords=["expert-routing"]), papers).ranked
    assert hyphenated[0].reasons == ("keyword: expert-routing (both words)",)
    assert "keyword: mixture of experts (all its words)" in reasons["three"]


def test_description_reasons_leave_out_words_that_carry_little() -> None:
    """A word of the description found in the paper is named only when it weighs at least a
    third of the heaviest one found: "method", in many papers, is filler here."""
    paper = Paper("p", "Quantized sparse models", "A method of quantization serves sparse models.")
    many = [Paper(f"m{i}", f"Study {i}", f"A method for problem {i}.") for i in range(6)]
    match = one(
        sub(description="a method of quantization for sparse models"), [paper, *many, *FILLER]
    )
    assert match.picked[0].reasons == ("description: quantization, sparse models",)


def test_a_description_names_topics_not_the_words_that_say_what_is_wanted() -> None:
    """Free text says what its writer wants ("I want to read papers about things ..."): those
    words weigh nothing alone and are never named, though a pair holding one still counts."""
    text = (
        "I want to read papers about things I am interested in: a long description that goes "
        "on about mixture-of-experts and the work on sparse routing."
    )
    goes = Paper("g", "Goes on and on", "A mixture-of-experts layer that goes deeper.")
    routed = Paper("r", "Sparse routing", "Mixture-of-experts models with sparse routing.")
    ranked = one(sub(description=text), [goes, routed, *FILLER]).ranked
    reasons = {m.paper.id: m.reasons for m in ranked}
    assert reasons["g"] == ("description: mixture-of-experts",)
    assert reasons["r"] == ("description: sparse routing, mixture-of-experts",)
    together = Paper("t", "Legal reading comprehension", "Reading comprehension of contracts.")
    apart = Paper("a", "Legal comprehension", "We read contracts to test comprehension.")
    ranked = one(sub(description="reading comprehension of contracts"), [together, apart]).ranked
    assert [(m.paper.id, m.reasons) for m in ranked] == [
        ("t", ("description: reading comprehension, contracts",)),
        ("a", ("description: comprehension, contracts",)),
    ]


def test_a_snippet_marks_only_the_keywords_that_were_found() -> None:
    """The word "models" of the keyword "state space model", which did not match, is not
    marked as though the keyword had been found."""
    paper = Paper(
        "p", "A Yoruba speech corpus", "We record speech. Our models transcribe Yoruba tones."
    )
    match = one(sub(keywords=["state space model", "Yoruba"]), [paper, *FILLER]).picked[0]
    assert match.reasons == ("keyword: Yoruba (title)",)
    assert [match.snippet[s:e] for s, e in match.marks] == ["Yoruba"]


def test_description_words_together_beat_words_apart() -> None:
    together = Paper("t", "Reef acoustics", "Coral bleaching is heard before reefs are seen.")
    apart = Paper("a", "Reef acoustics", "Coral reefs are heard before bleaching is seen.")
    selection = one(sub(description="coral bleaching, in sound"), [together, apart, *FILLER])
    got = scores(selection)
    assert got["t"] > got["a"]
    reasons = {m.paper.id: m.reasons for m in selection.ranked}
    assert reasons["t"] == ("description: coral bleaching",)
    assert reasons["a"] == ("description: bleaching, coral",)
    match = next(m for m in selection.ranked if m.paper.id == "t")
    assert [match.snippet[s:e] for s, e in match.marks] == ["Coral bleaching"]


CORPUS = [
    Paper("2610.00001", "Sparse routing at scale", "A mixture of experts (MoE) routes each token."),
    Paper("2610.00002", "Cheaper MoE inference", "We prune MoE layers. Pre-training is unchanged."),
    Paper("2610.00003", "Langevin samplers", "Annealed Langevin dynamics for score models."),
]


def test_corpus_papers_count_as_if_analysed_and_again_the_same() -> None:
    """Corpus papers are only counted, through terms kept from one call to the next; the
    frequencies are those of papers analysed in full, acronyms expanded."""
    today = [Paper("2611.00009", "Routing experts", "Load balancing for MoE routers.")]
    counted = Collection.build(today, CORPUS)
    analysed = Collection.build(today + CORPUS)
    assert counted.df == analysed.df and counted.n_docs == analysed.n_docs == 4
    assert counted.df[terms_of("experts")[0]] == 3, "MoE counts as mixture of experts"
    assert Collection.build(today, CORPUS).df == counted.df


def test_the_terms_of_the_last_corpus_are_kept_for_the_next_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    analysed: list[str] = []

    def counting(text: str) -> tuple[str, ...]:
        analysed.append(text)
        return distinct_terms(text)

    monkeypatch.setattr(text, "distinct_terms", counting)
    today = [Paper("2611.00009", "Routing experts", "Load balancing for MoE routers.")]
    Collection.build(today)  # a call without a corpus keeps nothing
    first = Collection.build(today, CORPUS).df
    assert len(analysed) == 3, "the day's papers are read once, for matching"
    assert Collection.build(today, CORPUS).df == first and len(analysed) == 3, "all kept"
    Collection.build(today, CORPUS[:1])
    Collection.build(today, CORPUS)
    assert len(analysed) == 5, "only the last call's corpus is kept"


@pytest.mark.parametrize(
    "text",
    [
        "Sparse Mixture-of-Experts (MoE) routing: pre-training LLMs on 3D-VAE latents, e.g. GPUs.",
        "本文研究门控专家网络。Gated experts über naïve ζ-functions_x \uff21\uff22\uff23",
        "",
    ],
)
def test_distinct_terms_are_the_terms_of_the_text(text: str) -> None:
    found = distinct_terms(text)
    assert sorted(found) == sorted(set(terms_of(text)))


GLACIERS = [
    Paper(
        "g1",
        "Calving of tidewater glaciers",
        "Glacier calving sets how fast tidewater glaciers lose ice; calving glaciers retreat.",
    ),
    Paper(
        "g2",
        "What drives glacier calving",
        "Glacier calving follows crevasses; a calving front retreats when glaciers thin.",
    ),
    Paper(
        "g3",
        "Calving and glacier retreat",
        "Glacier calving events at three glaciers, read from calving records.",
    ),
]
SOIL = Paper(
    "x", "Soil heat in frozen ground", "Soil heat under snow, checked by numerical simulation."
)
SHELF = Paper("y", "Ice shelf fracture", "How an ice shelf breaks ahead of glacier calving.")
GLACIER_TEXT = "Glacier calving: theory, field measurement and numerical simulation."


def test_a_description_alone_ranks_its_topic_above_its_context_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The papers holding most of a description say which of its words its topic is written
    with: a paper on glacier calving comes before one holding only "numerical simulation",
    and a paper that mentions glacier calving once is picked."""
    day = [*GLACIERS, SOIL, SHELF, *FILLER]
    selection = one(sub(description=GLACIER_TEXT), day)
    assert selection.ranked[0].paper.id == "g2"
    assert "y" in [m.paper.id for m in selection.picked]
    monkeypatch.setattr(signals, "FEEDBACK_GAIN", 0.0)  # each term as rare as it is, only
    selection = one(sub(description=GLACIER_TEXT), day)
    assert selection.ranked[0].paper.id == "x"
    assert "y" not in [m.paper.id for m in selection.picked]


def _share(score: float) -> float:
    """The description share found behind a description-only score."""
    return float(-DESCRIPTION_SCALE * np.log1p(-score))


def test_a_description_matched_by_one_word_stays_a_weak_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the best a day holds is one word of a long description, re-weighing its terms by
    that paper at most doubles the share found: the paper is not picked."""
    text = (
        "Glacier calving, sea ice drift, permafrost thaw, avalanche forecasting, firn density "
        "and meltwater lakes: theory, field measurement and numerical simulation."
    )
    lone = Paper("l", "Cheese ripening", "Cheese ripening in caves, with a note on firn.")
    got = scores(one(sub(description=text), [lone, *FILLER]))
    monkeypatch.setattr(signals, "FEEDBACK_GAIN", 0.0)
    before = scores(one(sub(description=text), [lone, *FILLER]))
    assert 0 < before["l"] < got["l"] < DEFAULT_THRESHOLD
    assert _share(got["l"]) <= 2 * _share(before["l"]) + 1e-6


def test_a_description_beside_keywords_is_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keywords rank the papers; the description beside them keeps its weights as written."""
    day = [*GLACIERS, SOIL, SHELF, *FILLER]
    profile = sub(keywords=["ice shelf"], description=GLACIER_TEXT)
    got = scores(one(profile, day))
    monkeypatch.setattr(signals, "FEEDBACK_GAIN", 0.0)
    assert scores(one(profile, day)) == got


def test_descriptions_alone_and_beside_keywords_score_as_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Re-weighing is per profile: blocks mixing both kinds give each its own scores."""
    day = [*GLACIERS, SOIL, SHELF, *FILLER]
    subs = [
        sub("a@example.org", description=GLACIER_TEXT),
        sub("b@example.org", keywords=["soil heat"], description=GLACIER_TEXT),
        sub("c@example.org", description="numerical simulation of snow"),
        sub("d@example.org", description="tidewater glaciers"),
    ]
    alone = {s.email: scores(one(s, day)) for s in subs}
    monkeypatch.setattr(scorer, "CHUNK", 3)
    together = select(subs, day)
    assert {email: scores(s) for email, s in together.items()} == alone
