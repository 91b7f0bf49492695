"""Which new papers fire a subscriber's alert rules, and the alert email that holds them (pure).

A rule fires on a paper when one of its authors wrote it (robust to initials, accents and name
order) or one of its phrases appears in the title or abstract (as consecutive stemmed words, so
"state space model" also finds "State-Space Models", but not across punctuation, as digest
keywords are counted). Its words are read as digest keywords are
(``word_terms``), against the same papers (``Among``: in a sweep, the stored window a digest
reads its keywords against): "rlhf" finds a paper writing only "RLHF" while no paper writes
"rlhf" as a word, but "cat" stays the word where papers write it in lower case, and a paper
titled "CAT: ..." fires no alert for it; "mixture of experts" finds one writing "MoE" where a
paper defines it as "mixture of experts (MoE)".

The papers that fire in one sweep go out together, in one alert (``alert_digest``), grouped by
the rule that fired.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from bot.models import AlertRule, Digest, Match, Paper, Subscriber
from bot.text import (
    WORD,
    Lexicon,
    Token,
    lexicon,
    paper_text,
    same_person,
    sentences,
    tokenize,
    word_terms,
)


@dataclass(frozen=True, slots=True)
class AlertHit:
    """A paper that fired one or more of a subscriber's rules."""

    paper: Paper
    rules: tuple[str, ...]
    match: Match


class Terms(NamedTuple):
    """The terms of a text, each with the token it comes from (``bot.text.tokenize``)."""

    terms: list[str]
    owners: list[Token]

    @classmethod
    def of(cls, tokens: Sequence[Token]) -> Terms:
        """The terms of ``tokens``, in order."""
        return cls(
            [t for token in tokens for t in token.terms],
            [token for token in tokens for _ in token.terms],
        )

    def find(self, phrase: Sequence[str]) -> list[tuple[Token, Token]]:
        """The first and last token of each occurrence of the terms ``phrase``: consecutive
        terms inside one phrase segment, as digests count a keyword, so that "diffusion model"
        is not found in "we study diffusion. Model collapse ..."."""
        n, terms, owners, wanted = len(phrase), self.terms, self.owners, list(phrase)
        if not n or n > len(terms):
            return []
        found: list[tuple[Token, Token]] = []
        at, stop = -1, len(terms) - n + 1
        while True:  # each place the first term is, found by ``list.index`` (a sweep asks often)
            try:
                at = terms.index(wanted[0], at + 1, stop)
            except ValueError:
                return found
            last = at + n - 1
            if terms[at : at + n] == wanted and owners[at].segment == owners[last].segment:
                found.append((owners[at], owners[last]))


class Read(NamedTuple):
    """A paper analysed for alerts: the terms of its title and abstract, and the ``Lexicon`` of
    the papers it is read among."""

    title: Terms
    abstract: Terms
    lexicon: Lexicon
    phrases: dict[str, list[str]]
    """The terms of each phrase read so far (``wanted``), shared by the papers of one lexicon."""

    def wanted(self, phrase: str) -> list[str]:
        """The terms of a subscriber's ``phrase``, read against the papers (``word_terms``):
        the same for each paper of the lexicon, so read once."""
        found = self.phrases.get(phrase)
        if found is None:
            df, acronyms = self.lexicon
            found = [t for w in WORD.findall(phrase) for t in word_terms(w, df, acronyms)]
            self.phrases[phrase] = found
        return found

    def holds(self, phrase: str) -> str:
        """Where the paper holds ``phrase``: ``title``, else ``abstract``, else ""."""
        wanted = self.wanted(phrase)
        if self.title.find(wanted):
            return "title"
        return "abstract" if self.abstract.find(wanted) else ""


class Quiet:
    """The papers on which one set of alert rules and excludes (``Among.quiet``) was checked
    and fired nothing: a flag per paper the ``Among`` placed, one byte each."""

    def __init__(self, places: dict[str, int]) -> None:
        self._places = places
        self._flags = bytearray()

    def unchecked(self, papers: Iterable[Paper]) -> list[Paper]:
        """The ``papers`` not known to fire nothing, in their order (in one pass: a sweep asks
        of every paper for every set)."""
        flags, end, place = self._flags, len(self._flags), self._places.get
        return [paper for paper in papers if (at := place(paper.id, end)) >= end or not flags[at]]

    def add(self, paper_id: str) -> None:
        """Remember that ``paper_id`` fired nothing."""
        at = self._places.setdefault(paper_id, len(self._places))
        if at >= len(self._flags):
            self._flags.extend(bytes(at + 1 - len(self._flags)))
        self._flags[at] = 1

    def __len__(self) -> int:
        """How many papers it holds a flag for: its size in bytes, at most the papers placed."""
        return len(self._flags)


class Among:
    """The papers alerts are read among, as a digest reads its keywords among its papers and
    the stored window: their ``lexicon`` (``bot.text.lexicon``), and each paper checked,
    analysed once (``read``). The papers checked must be among them.

    It also remembers, for each set of rules and excludes, the papers on which they fired
    nothing (``quiet``): a sweep checks the same papers against the same rules every minute,
    and only a change of the rules or of the papers can change the answer. A paper is read
    once per ``Among`` anyway (a changed paper comes with a new one), and a rule edited is
    another set, checked afresh. The memory is one byte per (set, paper checked), and goes
    with the ``Among``.
    """

    def __init__(self, lexicon: Lexicon, ids: frozenset[str] = frozenset()) -> None:
        self.lexicon = lexicon
        self.ids = ids
        """The ids of the papers the lexicon counts."""
        self._read: dict[str, Read] = {}
        self._phrases: dict[str, list[str]] = {}
        self._places: dict[str, int] = {}
        self._quiet: dict[tuple[tuple[str, ...], ...], Quiet] = {}

    @classmethod
    def of(cls, papers: Iterable[Paper], written: Iterable[str] = ()) -> Among:
        """Among ``papers``; ``written``: what subscribers wrote (``Interests.written``), which
        may define acronyms too."""
        unique = {p.id: p for p in papers}  # each paper counted once
        texts = (paper_text(p.title, p.abstract) for p in unique.values())
        return cls(lexicon(texts, written), frozenset(unique))

    def read(self, paper: Paper) -> Read:
        """``paper`` analysed (once)."""
        found = self._read.get(paper.id)
        if found is None:
            acronyms = self.lexicon.acronyms
            title = Terms.of(tokenize(paper.title, acronyms))
            abstract = Terms.of(tokenize(paper.abstract, acronyms))
            found = self._read[paper.id] = Read(title, abstract, self.lexicon, self._phrases)
        return found

    def quiet(self, subscriber: Subscriber) -> Quiet:
        """The papers on which the subscriber's alert rules and excludes fired nothing so far
        (``fired_rules``), shared by the subscribers who have the same: what decides whether a
        rule fires is its authors and phrases (not its name), and a veto the excludes."""
        rules = subscriber.alerts
        key = (
            tuple(author for rule in rules for author in rule.authors),
            tuple(phrase for rule in rules for phrase in rule.keywords),
            tuple(subscriber.interests.exclude),
        )
        found = self._quiet.get(key)
        if found is None:
            found = self._quiet[key] = Quiet(self._places)
        return found


@dataclass(frozen=True, slots=True)
class Fired:
    """How one rule fires on a paper: the rule's ``name``, its author or phrase that fired
    (``trigger``), and where it was found: ``author`` (``found`` is then the author as the
    paper prints the name), ``title`` or ``abstract``."""

    name: str | None
    trigger: str
    where: str
    found: str

    @property
    def label(self) -> str:
        """What fired, as the alert's topics name it: the rule's name, else the trigger."""
        return self.name or self.trigger

    @property
    def reason(self) -> str:
        """The reason the alert shows with the paper."""
        if self.where == "author":
            return f"author: {self.found}"
        return f"alert: {self.trigger}" + (" (title)" if self.where == "title" else "")

    def explained(self, veto: str = "") -> str:
        """The line ``paperbot explain`` gives it: ``fires alert "SSMs" (title: state space
        model)``, ``fires alert for author Lena Okafor (as L. Okafor)``; when the paper holds a
        phrase the subscriber excludes (``veto``), ``would fire alert ..., but exclude
        "survey" vetoes the paper``."""
        verb = "would fire" if veto else "fires"
        but = f', but exclude "{veto}" vetoes the paper' if veto else ""
        if self.where != "author":
            return f'{verb} alert "{self.label}" ({self.where}: {self.trigger}){but}'
        named = f' "{self.name}"' if self.name else ""
        spelled = f" (as {self.trigger})" if self.trigger != self.found else ""
        return f"{verb} alert{named} for author {self.found}{spelled}{but}"


def _phrase_fired(rule: AlertRule, read: Read) -> Fired | None:
    """The first phrase of ``rule`` that the paper ``read`` holds, in its title or else its
    abstract."""
    for phrase in rule.keywords:
        where = read.holds(phrase)
        if where:
            return Fired(rule.name, phrase, where, phrase)
    return None


def _author_fired(rule: AlertRule, paper: Paper) -> Fired | None:
    """The first author of ``rule`` who wrote ``paper``."""
    for wanted in rule.authors:
        for author in paper.authors:
            if same_person(wanted, author):
                return Fired(rule.name, wanted, "author", author)
    return None


def _snippet(
    paper: Paper, rule_phrases: Iterable[str], among: Among
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The first abstract sentence that holds a phrase, with each occurrence of it marked."""
    read = among.read(paper)
    wanted = [read.wanted(p) for p in rule_phrases]
    for start, end in sentences(paper.abstract):
        text = paper.abstract[start:end]
        terms = Terms.of(tokenize(text, read.lexicon.acronyms))
        found = next((f for f in map(terms.find, wanted) if f), None)
        if found:
            return text, tuple(dict.fromkeys((first.start, last.end) for first, last in found))
    return "", ()


def excluded(subscriber: Subscriber, paper: Paper, among: Among) -> str:
    """The first phrase the subscriber excludes that ``paper`` (one of ``among``) holds (a veto,
    as in digests), or ""."""
    read = among.read(paper)
    return next((phrase for phrase in subscriber.interests.exclude if read.holds(phrase)), "")


def fired_rules(
    subscriber: Subscriber, paper: Paper, among: Among, *, vetoed: bool = False
) -> tuple[Fired, ...]:
    """How each of the subscriber's alert rules that fires on ``paper`` (one of ``among``)
    does; none fires on a paper holding a phrase they exclude (``excluded``), unless
    ``vetoed``: how they would fire but for it."""
    read = among.read(paper)
    fired = (_author_fired(rule, paper) or _phrase_fired(rule, read) for rule in subscriber.alerts)
    found = tuple(filter(None, fired))
    # the veto is looked for only once a rule fires: most papers fire none, at every sweep
    if found and not vetoed and excluded(subscriber, paper, among):
        return ()
    return found


def alert_hits(
    subscriber: Subscriber, papers: Sequence[Paper], among: Among | None = None
) -> list[AlertHit]:
    """Every paper that fires at least one of the subscriber's alert rules (``fired_rules``),
    read ``among`` the papers given (by default ``papers`` themselves, with what the subscriber
    wrote).

    ``among`` keeps the analysed words of each paper between calls, and the papers on which
    the subscriber's rules fired nothing (``Among.quiet``): they are not checked again.
    """
    if among is None:
        among = Among.of(papers, subscriber.interests.written)
    phrases = [k for rule in subscriber.alerts for k in rule.keywords]
    quiet = among.quiet(subscriber)
    hits = []
    for paper in quiet.unchecked(papers):
        fired = fired_rules(subscriber, paper, among)
        if not fired:
            quiet.add(paper.id)
        else:
            snippet, marks = _snippet(paper, phrases, among)
            reasons = tuple(dict.fromkeys(found.reason for found in fired))
            # what fired, not every term of the rule
            rules = tuple(dict.fromkeys(found.label for found in fired))
            hits.append(AlertHit(paper, rules, Match(paper, 1.0, reasons, snippet, marks)))
    return hits


def rules_named(subscriber: Subscriber, labels: Iterable[str]) -> int:
    """How many of the subscriber's rules ``labels`` (``Fired.label``) name: a rule without a
    name is named by each of its authors and phrases that fired. A label no rule has any more
    (the profile changed) counts as one."""

    def rule(label: str) -> int | str:
        for n, found in enumerate(subscriber.alerts):
            if label == found.name or (
                not found.name and label in (*found.authors, *found.keywords)
            ):
                return n
        return label

    return len({rule(label) for label in labels})


def unfired(paper: Paper) -> AlertHit:
    """A paper an alert holds although none of the subscriber's rules fires on it any more (the
    profile changed before the alert went again): shown without reasons."""
    return AlertHit(paper, (), Match(paper, 1.0))


def alert_digest(subscriber: Subscriber, day: date, hits: Sequence[AlertHit]) -> Digest:
    """One alert email holding ``hits``: the first ``max_papers`` of them shown in full, the
    others listed by title under "N more matches".

    They are grouped by the first rule each fires (the earliest of the subscriber's rules): the
    groups in the order of their first paper, the papers of a group in their order, those that no
    rule fires any more last. A paper firing several rules is listed once, under the first; the
    email says which others it matches. Its topics are the rules that fired, each once, those
    heading a group first, in the order of the groups.
    """
    heads = list(dict.fromkeys(hit.rules[0] for hit in hits if hit.rules))
    place = {rule: n for n, rule in enumerate(heads)}
    grouped = sorted(hits, key=lambda hit: place[hit.rules[0]] if hit.rules else len(place))
    topics = tuple(dict.fromkeys([*heads, *(rule for hit in hits for rule in hit.rules)]))
    shown = subscriber.max_papers
    matches = tuple(hit.match for hit in grouped[:shown])
    more = tuple(hit.paper for hit in grouped[shown:])
    rules = tuple(hit.rules for hit in grouped)
    return Digest(subscriber, day, matches, more, "alert", topics, rules=rules)
