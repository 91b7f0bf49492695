"""LaTeX in titles and abstracts shown as readable Unicode: ``$\\log n$`` reads ``log n``,
``$x^2$`` reads ``x²``, ``$\\leq$`` reads ``≤``, ``\\emph{fast}`` reads ``fast``.

For display only: papers are stored, matched and identified by the text as the source wrote it.
Only math between ``$...$`` or ``\\(...\\)`` is converted (by pylatexenc), and ``\\emph``,
``\\textit``, ``\\textbf`` and ``\\texttt`` around plain words; everything else stays as written.
A formula that does not parse (unbalanced braces) or uses a command pylatexenc does not know is
left whole, dollars and all, so that no text is lost; so is a ``$`` that opens no formula
(``costs $5 and $10``). Superscripts and subscripts become Unicode ones where every character
has one (``x²``, ``xᵢⱼ``), else they keep their ``^`` or ``_`` (``x^(n!)``).

Conversion is slow next to the rest of rendering: the renderer's views are cached, and so is
what each text converts to, whatever its marks, so that each title and snippet is parsed once.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pylatexenc import latex2text, latexwalker, macrospec

Marks = tuple[tuple[int, int], ...]

_MATH = re.compile(
    r"(?<![\\$])\$(?=[^\s$])(?:[^$\\]|\\.)*?(?:[^\s\\$]|\\[^$])\$(?![\d$])"  # $x$, no space inside
    r"|(?<!\\)\\\((?:[^\\]|\\[^)])+?\\\)"  # \(x\)
    r"|\\(?:emph|textit|textbf|texttt)\{[^{}\\$]*\}",  # \emph{plain words}
    re.DOTALL,
)
"""What is converted. A ``$`` opens math only before a character other than a space, and closes
it only after one, not before a digit: ``costs $5 and $10`` holds no math."""
_TEXT_COMMAND = re.compile(r"\\[a-z]+\{")
_SUPERSCRIPTS = dict(
    zip(
        "0123456789+-\u2212=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVW\u22a4",  # minus, top
        "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂᵀ",
        strict=True,
    )
)
_SUBSCRIPTS = dict(
    zip("0123456789+-\u2212=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ", strict=True)
)
_SCRIPTS = {"^": _SUPERSCRIPTS, "_": _SUBSCRIPTS}
_AROUND_SYMBOL = re.compile(r"\s*([^\w\s])\s*")
_ONE_ARGUMENT = ("operatorname", "bm", "boldsymbol", "texttt", "mathnormal")
"""Commands common in abstracts that pylatexenc does not know: shown as their argument."""
_WIDE_ACCENTS = {"overline": "\u0305", "widehat": "\u0302", "widetilde": "\u0303"}
"""Accents pylatexenc drops: shown as their narrow forms are (``\\bar{x}`` reads ``x̅``)."""
_MATH_SPECIALS = {"''": "\u2033", "--": "--", "---": "---"}
"""What these read as in math: primes and minus signs (``f''`` reads ``f″``), not quotes or
dashes."""


class _Unknown(Exception):
    """A formula holds something that cannot be shown faithfully: it is left as written."""


def _contexts() -> tuple[macrospec.LatexContextDb, macrospec.LatexContextDb]:
    """pylatexenc's parsing and text contexts, with the commands of ``_ONE_ARGUMENT`` and a few
    more added."""
    walker = latexwalker.get_default_latex_context_db()
    specs = [macrospec.std_macro(name, False, 1) for name in _ONE_ARGUMENT]
    specs += [macrospec.std_macro(name, False, 2) for name in ("tfrac", "dfrac")]
    specs += [macrospec.std_macro(name, False, 0) for name in ("left", "right", "arg")]
    walker.add_context_category("paperbot", macros=specs, prepend=True)
    text = latex2text.get_default_latex_context_db()
    shown = [latex2text.MacroTextSpec(name, "%s") for name in _ONE_ARGUMENT]
    shown += [latex2text.MacroTextSpec(name, "%s/%s") for name in ("tfrac", "dfrac")]
    shown += [latex2text.MacroTextSpec(name, "") for name in ("left", "right")]
    shown += [latex2text.MacroTextSpec("arg", "arg"), latex2text.MacroTextSpec("|", "‖")]
    shown += [latex2text.MacroTextSpec(name, f"%s{mark}") for name, mark in _WIDE_ACCENTS.items()]
    text.add_context_category("paperbot", macros=shown, prepend=True)
    return walker, text


_WALKER_DB, _TEXT_DB = _contexts()
logging.getLogger("pylatexenc").setLevel(logging.ERROR)
"""A formula pylatexenc cannot read is left as written: its warnings about it would only be
noise in the log."""
_TO_TEXT = latex2text.LatexNodes2Text(latex_context=_TEXT_DB, math_mode="text")


def _formula(source: str) -> str:
    """The text of one ``$...$``, ``\\(...\\)`` or ``\\emph{...}`` (``_MATH``); ``_Unknown``
    when it does not parse, uses an unknown command or gives a command too few arguments."""
    try:
        walker = latexwalker.LatexWalker(source, latex_context=_WALKER_DB, tolerant_parsing=False)
        nodes, _, _ = walker.get_latex_nodes()
        if len(nodes) != 1:
            raise _Unknown(source)
        node = nodes[0]
        math = node.isNodeType(latexwalker.LatexMathNode)
        text = _text(node.nodelist if math else [node]).strip()
    except _Unknown:
        raise
    except Exception as error:  # pylatexenc says it cannot read a formula in several ways
        raise _Unknown(source) from error
    if "%" in text and "%" not in source:  # the pattern of a command whose arguments are amiss
        raise _Unknown(source)
    return text


def _text(nodes: Sequence[Any]) -> str:
    """The text of parsed ``nodes``, superscripts and subscripts made Unicode where they can."""
    out: list[str] = []
    script = ""  # a ^ or _ waiting for what it applies to
    named = False  # the last node was a command shown as a word (\log): a word after it is apart
    for node in nodes:
        if node is None or node.isNodeType(latexwalker.LatexCommentNode):
            continue
        if named and _starts_word(node):
            out.append(" ")  # \log\log n, \arg\min: two words, as LaTeX sets them
        named = False
        if node.isNodeType(latexwalker.LatexCharsNode):
            chars = node.chars
            if script and chars:
                out.append(_scripted(script, chars[0]))
                chars, script = chars[1:], ""
            text, script = _chars(chars)
            out.append(text)
            continue
        space = ""
        if node.isNodeType(latexwalker.LatexGroupNode):
            text = _text(node.nodelist)
        elif node.isNodeType(latexwalker.LatexMacroNode):
            _check(node)
            text = _TO_TEXT.nodelist_to_text([node])
            if not (node.nodeargd and node.nodeargd.argnlist):
                if node.macro_post_space:
                    space = " "  # \log n: the space that ends a command's name still parts words
                else:
                    named = len(text) > 1 and text.isalpha()
        elif node.isNodeType(latexwalker.LatexSpecialsNode):
            text = _MATH_SPECIALS.get(node.specials_chars) or _TO_TEXT.nodelist_to_text([node])
        else:  # an environment, nested math: not for a one-line title
            raise _Unknown(node.latex_verbatim())
        out += [_scripted(script, text) if script else text, space]
        script = ""
    if script:
        out.append(script)
    return "".join(out)


def _starts_word(node: Any) -> bool:
    """Whether ``node`` shows a letter first: plain letters, or a command shown as a word."""
    if node.isNodeType(latexwalker.LatexCharsNode):
        return bool(node.chars[:1].isalpha())
    if node.isNodeType(latexwalker.LatexMacroNode) and not (
        node.nodeargd and node.nodeargd.argnlist
    ):
        return bool(_TO_TEXT.nodelist_to_text([node])[:1].isalpha())
    return False


def _chars(chars: str) -> tuple[str, str]:
    """Plain characters with their ``^2`` and ``_i`` made Unicode, and a final ``^`` or ``_``
    that applies to the node after them."""
    out: list[str] = []
    pending = ""
    for char in chars:
        if pending:
            out.append(_scripted(pending, char))
            pending = ""
        elif char in _SCRIPTS:
            pending = char
        else:
            out.append(char)
    return "".join(out), pending


def _scripted(script: str, text: str) -> str:
    """``text`` raised (``^``) or lowered (``_``) in Unicode when each of its characters can be,
    else written after ``script``, in parentheses when it is longer than one character."""
    table = _SCRIPTS[script]
    bare = text.replace(" ", "")
    if bare and all(char in table for char in bare):
        return "".join(table[char] for char in bare)
    if len(bare) <= 1:
        return f"{script}{bare or text}"
    grouped = _AROUND_SYMBOL.sub(r"\1", text.strip())  # d \times n: one word, never broken
    return f"{script}({grouped})"


def _check(node: Any) -> None:
    """``_Unknown`` unless the command ``node`` and every command in its arguments are known."""
    if _TEXT_DB.get_macro_spec(node.macroname) is None:
        raise _Unknown(node.macroname)
    spec = node.nodeargd.argspec if node.nodeargd else ""
    if any(
        kind == "[" and argument is not None
        for kind, argument in zip(spec, node.nodeargd.argnlist, strict=False)
    ):  # \sqrt[3]{x}: pylatexenc would drop the 3
        raise _Unknown(node.latex_verbatim())
    for argument in node.nodeargd.argnlist if node.nodeargd else ():
        _check_all([argument])


def _check_all(nodes: Sequence[Any]) -> None:
    """``_Unknown`` unless every command in ``nodes`` and in their groups is known."""
    for node in nodes:
        if node is None:
            continue
        if node.isNodeType(latexwalker.LatexMacroNode):
            _check(node)
        elif node.isNodeType(latexwalker.LatexEnvironmentNode):
            raise _Unknown(node.latex_verbatim())
        elif node.isNodeType(latexwalker.LatexGroupNode) or node.isNodeType(
            latexwalker.LatexMathNode
        ):
            _check_all(node.nodelist)


@lru_cache(maxsize=16_384)
def _edits(text: str) -> tuple[tuple[int, int, str], ...]:
    """Where ``text`` changes: (start, end, what replaces it), in order and not overlapping.

    ``\\emph{words}`` loses its command and closing brace only, so that marks inside it stay on
    their words. Cached: a snippet is shown with different marks to different subscribers.
    """
    edits: list[tuple[int, int, str]] = []
    for found in _MATH.finditer(text):
        source, start, end = found.group(), found.start(), found.end()
        try:
            shown = _formula(source)
        except _Unknown:
            continue
        opening = _TEXT_COMMAND.match(source)
        if opening and shown == source[opening.end() : -1]:
            edits += [(start, start + opening.end(), ""), (end - 1, end, "")]
        elif shown:
            edits.append((start, end, shown))
    return tuple(edits)


def readable(text: str) -> str:
    """``text`` with its LaTeX math and text commands shown as Unicode (see the module)."""
    return readable_marked(text, ())[0]


def readable_marked(text: str, marks: Marks) -> tuple[str, Marks]:
    """``readable(text)``, and ``marks`` (character spans of ``text``) moved onto the same words
    in it; a mark that starts or ends inside a formula takes in the whole formula."""
    if "$" not in text and "\\" not in text:
        return text, marks
    edits = _edits(text)
    if not edits:
        return text, marks
    pieces: list[str] = []
    starts: list[int] = []  # where each edit starts in the original and in the new text
    new_starts: list[int] = []
    pos = shift = 0
    for start, end, shown in edits:
        pieces += [text[pos:start], shown]
        starts.append(start)
        new_starts.append(start + shift)
        shift += len(shown) - (end - start)
        pos = end
    pieces.append(text[pos:])

    def moved(offset: int, is_end: bool) -> int:
        n = bisect_right(starts, offset) - 1
        if n < 0:
            return offset
        start, end, shown = edits[n]
        if offset >= end:
            return offset + new_starts[n] - start + len(shown) - (end - start)
        if offset == start or not is_end:
            return new_starts[n]
        return new_starts[n] + len(shown)

    kept = tuple(
        (moved(start, False), moved(end, True))
        for start, end in marks
        if moved(start, False) < moved(end, True)
    )
    return "".join(pieces), kept
