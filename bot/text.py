"""Text analysis shared by matching (indexing, queries, explanations), alerts and the email.

It imports nothing heavy: the processes that compose messages read topics with it.

Words are folded (accents removed, lower case) and Snowball-stemmed; stop words are dropped but
phrases never match across punctuation. Tokens written with two or more capitals ("MoE", "CLIP",
"LLMs") are kept as acronyms; an acronym defined somewhere as "long form (ACR)" is expanded to its
long form, so "MoE" and "mixture of experts" become the same terms.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import NamedTuple

import Stemmer

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be been before being
    below between both but by can could did do does doing down during each either etc few for
    from further had has have having here how i if in into is it its itself just may might more
    most much must my no nor not now of off on once only or other our ours out over own per same
    shall she should so some such than that the their them then there these they this those
    through thus to too under until up upon us very via was we were what when where whether
    which while who whom why will with within without would yet you your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Words a description uses to say what its writer wants rather than to name a topic ("I want
# to read papers about things like ..."): free text weighs them nothing alone, though a pair
# of words holding one still counts ("reading comprehension", "instruction following").
_DESCRIBING_TEXT = """
    want wants wanted wish like likes liked love prefer interested interest interests
    interesting curious keen read reads reading paper papers article articles work works
    thing things stuff goes going get gets look looking seek seeking follow following find
    keep especially particularly mainly mostly primarily really quite perhaps maybe anything
    everything something whatever kind kinds lot lots topic topics include includes including
    new latest
"""
# Hyphenated words whose first part is one of these are written as one word ("pre-training").
_PREFIX_TEXT = "pre post re non co sub semi multi un anti mid"
_JOINED_PREFIXES = frozenset(_PREFIX_TEXT.split())
WORD = re.compile(r"\w+(?:-\w+)*")
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
"""Chinese characters and Japanese kana: scripts that do not put spaces between words."""
# A word (group 1), or punctuation that phrases never cross (group 1 empty), Chinese too.
_CJK_STOPS = r"\u3001\u3002\u300c\u300d\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f"
SCAN = re.compile(rf"(\w+(?:-\w+)*)|[.,;:!?()\[\]{{}}\"{_CJK_STOPS}]")
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bal)(?<!\bvs)[.!?](?=\s+[A-Z0-9(\"])")
_ACRONYM_DEF = re.compile(r"\(\s*([A-Za-z][\w-]*[A-Z][\w-]*)\s*\)")
_STEMMER = Stemmer.Stemmer("english")

Acronyms = Mapping[str, tuple[str, ...]]


class Token(NamedTuple):
    """One analysed word: its term(s), where it sits in the text, and its phrase segment."""

    terms: tuple[str, ...]
    start: int
    end: int
    segment: int


_LETTERS = str.maketrans(
    {"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ð": "d", "đ": "d", "þ": "th", "ß": "ss",
     "\u0131": "i", "ħ": "h"}
)  # fmt: skip
"""Letters Unicode does not decompose into a base letter and an accent, written as in ASCII."""


@lru_cache(maxsize=500_000)
def fold(text: str) -> str:
    """Lower-case ``text`` and strip accents ("Schrödinger" -> "schrodinger", "Łukasz" ->
    "lukasz")."""
    if text.isascii():  # most text: nothing to decompose
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.lower().translate(_LETTERS)


_GREEK = {
    code: unicodedata.name(chr(code)).rsplit(" ", 1)[-1].lower().replace("lamda", "lambda")
    for code in range(0x3B1, 0x3CA)
}
"""Small Greek letters by name, as LaTeX writes them (U+03B1 is "alpha", as "$\\alpha$" is)."""


@lru_cache(maxsize=200_000)
def _word_term(word: str) -> str:
    """The term of one word (no hyphens): an acronym in capitals or a folded stem; Greek
    letters are read by name."""
    if sum(c.isupper() for c in word) >= 2:
        base = word[:-1] if word.endswith("s") and word[-2:-1].isupper() else word
        return fold(base).upper()
    stem: str = _STEMMER.stemWord(fold(word).translate(_GREEK))
    return stem


DESCRIBING = frozenset(_word_term(word) for word in _DESCRIBING_TEXT.split())
"""The terms of the words in ``_DESCRIBING_TEXT``."""


def _parts(word: str) -> list[str]:
    """Split a hyphenated word, joining well-known prefixes ("pre-training" -> "pretraining")."""
    parts = word.split("-")
    out: list[str] = []
    for part in parts:
        if out and out[-1].lower() in _JOINED_PREFIXES:
            out[-1] += part
        elif part:
            out.append(part)
    return out


@lru_cache(maxsize=200_000)
def _word_terms(word: str) -> tuple[str, ...]:
    """The terms of one (possibly hyphenated) word, stop words dropped."""
    return tuple(
        _word_term(part) for part in _parts(word) if part.isupper() or fold(part) not in STOPWORDS
    )


def tokenize(text: str, acronyms: Acronyms | None = None) -> list[Token]:
    """Content tokens of ``text`` with character spans; stop words dropped, acronyms expanded."""
    tokens: list[Token] = []
    segment, broken = 0, False
    for found in SCAN.finditer(text):
        word = found.group(1)
        if word is None:
            broken = True
            continue
        if broken:
            segment, broken = segment + 1, False
        for start, end, terms in _pieces(word, found.start()):
            if acronyms and any(t in acronyms for t in terms):
                terms = expanded(terms, acronyms)
            if terms:
                tokens.append(Token(terms, start, end, segment))
    return tokens


def expanded(terms: Iterable[str], acronyms: Acronyms) -> tuple[str, ...]:
    """``terms`` with each acronym replaced by the terms of its long form."""
    return tuple(x for t in terms for x in acronyms.get(t, (t,)))


def _pieces(word: str, at: int) -> Iterator[tuple[int, int, tuple[str, ...]]]:
    """(start, end, terms) of the parts of a word found at ``at``: the word itself, except that
    Chinese and Japanese, written without spaces, become overlapping pairs of characters (as
    search engines index them), so that "门控专家" is found inside "本文研究门控专家网络"."""
    if word.isascii() or not _UNSPACED.search(word):
        yield at, at + len(word), _word_terms(word)
        return
    pos = 0
    for run in _UNSPACED.finditer(word):
        if run.start() > pos:
            yield at + pos, at + run.start(), _word_terms(word[pos : run.start()])
        chars, first = run.group(), at + run.start()
        if len(chars) == 1:
            yield first, first + 1, (chars,)
        for i in range(len(chars) - 1):
            yield first + i, first + i + 2, (chars[i : i + 2],)
        pos = run.end()
    if pos < len(word):
        yield at + pos, at + len(word), _word_terms(word[pos:])


def terms_of(text: str, acronyms: Acronyms | None = None) -> list[str]:
    """The flat term sequence of ``text``."""
    return [term for token in tokenize(text, acronyms) for term in token.terms]


def _capitals(part: str, df: Mapping[str, int], acronyms: Acronyms) -> str:
    """``part`` of a word, in capitals when it is written in lower case where the papers
    write it only in capitals (``df`` counts the papers holding each term)."""
    if not part.islower() or len(part) < 2:
        return part
    plural = len(part) > 3 and part.endswith("s")
    capitals = part[:-1].upper() + "s" if plural else part.upper()
    lower, upper = _word_terms(part), _word_terms(capitals)
    if len(lower) != 1 or len(upper) != 1:
        return part
    if not df.get(lower[0]) and (df.get(upper[0]) or upper[0] in acronyms):
        return capitals
    return part


def word_terms(word: str, df: Mapping[str, int], acronyms: Acronyms) -> tuple[str, ...]:
    """The terms of one word a subscriber wrote (a keyword's, an exclude's or an alert
    phrase's), read against the papers: ``df`` counts the papers holding each term and
    ``acronyms`` are those the papers define. An acronym typed in lower case is read in
    capitals where the papers write it only so ("rlhf" is "RLHF", "llms" "LLMs"; "cat" stays a
    word while papers also write it in lower case), and an acronym stands for its long form
    ("MoE" is "mixture of experts" where a paper defines it)."""
    written = "-".join(_capitals(part, df, acronyms) for part in word.split("-"))
    return tuple(terms_of(written, acronyms))


def distinct_phrases(phrases: Iterable[str]) -> list[str]:
    """``phrases`` each once: of those with the same terms whatever their case, hyphens and
    word forms ("vision-language" and "vision language", "diffusion model" and "diffusion
    models"), the first written."""
    kept: dict[tuple[str, ...] | str, str] = {}
    for phrase in phrases:
        kept.setdefault(_phrase_terms(phrase) or phrase, phrase)
    return list(kept.values())


@lru_cache(maxsize=8192)
def _phrase_terms(phrase: str) -> tuple[str, ...]:
    """The terms of a subscriber's phrase, whatever its case: every digest lists its topics
    (``distinct_phrases``), and the same phrases come back subscriber after subscriber."""
    return tuple(terms_of(fold(phrase)))


_WORD = re.compile(r"\w+(?:-\w+)*")
"""A word as ``SCAN`` finds it."""


def distinct_terms(text: str) -> tuple[str, ...]:
    """The terms of ``text`` (acronyms not expanded), each once, in no particular order: what
    counts for document frequencies, found without the positions that ``tokenize`` keeps."""
    terms: set[str] = set()
    for word in set(_WORD.findall(text)):
        if word.isascii() or not _UNSPACED.search(word):
            terms.update(_word_terms(word))
        else:
            terms.update(term for _, _, pieces in _pieces(word, 0) for term in pieces)
    return tuple(terms)


class _KeptTerms:
    """The distinct terms of the texts last counted (the papers of the last ``lexicon``), kept
    by a digest of each text (about 1 KB a paper). The next call, for another group of
    subscribers, the next run or the next sweep's alerts, counts mostly the same papers:
    analysing a window of thousands again would cost seconds."""

    def __init__(self) -> None:
        self._kept: dict[bytes, tuple[str, ...]] = {}

    def of(self, texts: Iterable[str]) -> list[tuple[str, ...]]:
        """The distinct terms of each text (``distinct_terms``); only these texts stay kept."""
        kept, out = self._kept, []
        now: dict[bytes, tuple[str, ...]] = {}
        for text in texts:
            key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            terms = now.get(key, kept.get(key))
            if terms is None:
                terms = distinct_terms(text)
            now[key] = terms
            out.append(terms)
        self._kept = now
        return out


_kept_terms = _KeptTerms()


class Lexicon(NamedTuple):
    """What a subscriber's words are read against (``word_terms``): how many papers of a
    collection hold each term (``df``, acronyms counted as their long forms) and the acronyms
    the papers define."""

    df: Counter[str]
    acronyms: dict[str, tuple[str, ...]]


def paper_text(title: str, abstract: str) -> str:
    """The text of a paper that a ``lexicon`` reads: its title, then its abstract."""
    return f"{title}. {abstract}"


def lexicon(texts: Iterable[str], extra_text: Iterable[str] = ()) -> Lexicon:
    """The ``Lexicon`` of papers, one text each (``paper_text``); ``extra_text`` (what
    subscribers wrote) may define acronyms too."""
    texts = list(texts)
    acronyms = find_acronyms([*texts, *extra_text])
    return Lexicon(frequencies(texts, acronyms), acronyms)


def frequencies(
    texts: Iterable[str], acronyms: Acronyms, analysed: Iterable[Iterable[str]] = ()
) -> Counter[str]:
    """How many papers hold each term (an acronym counted as its long form): those of
    ``texts`` (``paper_text``), and those already ``analysed`` with these acronyms (their
    terms, each paper's once), not read again."""
    df: Counter[str] = Counter()
    for terms in _kept_terms.of(texts):  # tokenize expands each term alone: so can these
        if not acronyms.keys().isdisjoint(terms):
            terms = tuple(set(expanded(terms, acronyms)))
        df.update(terms)
    for held in analysed:
        df.update(set(held))
    return df


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``."""
    spans, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        spans.append((start, end.end()))
        start = end.end()
        while start < len(text) and text[start].isspace():
            start += 1
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _definitions(text: str) -> Iterable[tuple[str, tuple[str, ...]]]:
    """Pairs (ACRONYM, long-form terms) for each "long form (ACR)" in ``text``."""
    for found in _ACRONYM_DEF.finditer(text):
        acronym = _word_term(found.group(1).replace("-", ""))
        if not acronym.isupper():
            continue
        before = text[max(0, found.start() - 120) : found.start()]
        before = re.split(r"[.,;:!?()\[\]{}\"]", before)[-1]
        words = [p for w in WORD.findall(before) for p in _parts(w)]
        letters = [c.lower() for c in found.group(1) if c.isalpha()]
        capitals = [c.lower() for c in found.group(1) if c.isupper()]
        content = [w for w in words if fold(w) not in STOPWORDS]
        for pool, wanted in ((content, capitals), (words, letters), (content, letters)):
            tail = pool[-len(wanted) :] if wanted else []
            if len(tail) == len(wanted) and [fold(w)[0] for w in tail] == wanted:
                long_form = tuple(_word_term(w) for w in tail if fold(w) not in STOPWORDS)
                if len(long_form) >= 2:
                    yield acronym, long_form
                break


def find_acronyms(texts: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Acronym table from text: each acronym mapped to its most frequent definition."""
    counts: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for text in texts:
        if "(" in text:
            counts.update(_definitions(text))
    best: dict[str, tuple[str, ...]] = {}
    for (acronym, long_form), _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        best.setdefault(acronym, long_form)
    return best


_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii"})
_PARTICLES = frozenset({"le", "la", "de", "du", "des", "del", "della", "di", "da", "van", "von",
                        "der", "den", "ter", "ten", "dos", "das"})  # fmt: skip
"""Words that belong to the family name they precede ("Le Cun", "van der Maaten")."""
_VIETNAMESE_FAMILIES = frozenset({"nguyen", "tran", "le", "pham", "hoang", "huynh", "phan", "vu",
                                   "vo", "dang", "bui", "do", "ho", "ngo", "duong", "ly", "dinh",
                                   "truong"})  # fmt: skip
"""The commonest Vietnamese family names: before one of them, "Van" is a middle name (Văn)."""


class Name(NamedTuple):
    """A person's name as ``name_key`` reads it."""

    keys: tuple[str, ...]
    """Family name keys."""
    initials: tuple[str, ...]
    """Initials of the given names."""
    given: frozenset[str]
    """The given name written out, as one word ("feifei" for "Fei-Fei" or "Fei Fei"; the
    first one alone, "fei", too; "ue" read as "ü", so "Juergen" is "Jürgen"); empty when only
    initials are written."""


@lru_cache(maxsize=200_000)
def name_key(name: str) -> Name:
    """A person's name as family name keys, given-name initials and the given name written
    out, robust to order, accents, dots.

    "LeCun, Yann", "Y. LeCun", "Yann LeCun", "Yann Le Cun" and "LeCun Y." all have the key
    "lecun" and the initial "y"; particles belong to the family name ("van der Maaten":
    "vandermaaten"), except that a capitalised "Van" between a given name and a Vietnamese
    family name is a middle name too ("Thanh Van Nguyen": "vannguyen" and "nguyen"). A double
    family name is one key ("García-López": "garcialopez"), which "María García López" has too,
    beside "lopez".
    """
    if "," in name:
        family_part, _, given_part = name.partition(",")
        name = f"{given_part} {family_part}"
    words = [w for w in re.split(r"[\s.]+", fold(name)) if w]
    words = [re.sub(r"[^\w-]", "", w) for w in words]
    words = [w for w in words if w.strip("-") and w not in _NAME_SUFFIXES]
    if not words:
        return Name((), (), frozenset())
    letters = len(words) - next((i for i in range(len(words), 0, -1) if len(words[i - 1]) > 1), 0)
    if 0 < letters < len(words):  # "Vaswani A.", "Le Cun Y.": the family name, then initials
        words = words[-letters:] + words[:-letters]
    *given, last = words
    family = "".join(p for p in last.split("-") if p)  # "García-López" is "garcialopez"
    lower = {w for w in re.findall(r"\w+", name) if w.islower()}
    before = list(given)
    # A particle after a given name, or one written in lower case ("van der Maaten"); a first
    # word in capitals is a given name ("Di Wang").
    while before and before[-1] in _PARTICLES and (len(before) > 1 or before[-1] in lower):
        before.pop()
    particles = given[len(before) :]
    keys = ["".join(particles) + family]
    if particles == ["van"] and "van" not in lower and family in _VIETNAMESE_FAMILIES:
        keys.append(family)  # "Thanh Van Nguyen": Van is a middle name there
    if len(before) > 1 and len(before[-1]) > 1:  # "María García López": maybe a double name
        keys.append(before[-1] + family)
    initials = tuple(p[0] for w in given for p in w.split("-") if p) if before else ()
    written = [re.sub("([aou])e", r"\1", w.replace("-", "")) for w in before]  # "Juergen"
    full = [w for w in written if len(w) > 1]
    given_names = {written[0], "".join(full)} if written and len(written[0]) > 1 else set()
    return Name(tuple(keys), initials, frozenset(given_names))


def same_given(wanted: Name, author: Name) -> bool:
    """Whether two names with a family name key in common can be one person: the same first
    initial where both have one, and the same given name where both write it out ("Kaiming
    He" is not "Kai He", though either may be "K. He")."""
    if wanted.initials and author.initials and wanted.initials[0] != author.initials[0]:
        return False
    return not (wanted.given and author.given) or bool(wanted.given & author.given)


def same_person(wanted: str, author: str) -> bool:
    """Whether ``author`` (as printed on a paper) is the person ``wanted`` names: a family name
    key in common, and given names that agree (see ``same_given``)."""
    a, b = name_key(wanted), name_key(author)
    return not set(a.keys).isdisjoint(b.keys) and same_given(a, b)


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``3 papers``, ``1 paper``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"
