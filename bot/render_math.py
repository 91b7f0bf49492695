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
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pylatexenc import latex2text, latexwalker, macrospec

Marks = tuple[tuple[int, int], ...]

_MATH = re.compile(
    r"(?<![\\$])\$(?=[^\s$])"  # $x$, no space inside
    r"(?:(?=(?:[^$\\]|\\[^a-zA-Z])*\\[a-zA-Z]|[<>]\$)"  # with a command, or just < or >,
    r"(?:[^$\\]|\\.)*?(?:[^\s\\$]|\\[^$])\$(?!\$)"  # closing before anything: $\sim$1000
    r"|(?:[^$\\]|\\.)*?(?:[^\s\\$]|\\[^$])\$(?![\d$]))"  # else not before a digit: $5 and $10
    r"|(?<!\\)\\\((?:[^\\]|\\[^)])+?\\\)"  # \(x\)
    r"|\\(?:emph|textit|textbf|texttt)\{[^{}\\$]*\}",  # \emph{plain words}
    re.DOTALL,
)
"""What is converted. A ``$`` opens math only before a character other than a space, and closes
it only after one; before a digit only when the formula is clearly math, with a command or just a
``<`` or ``>`` in it (``$\\sim$1000``, ``$>$99``): ``costs $5 and $10`` holds no math."""
_TEXT_COMMAND = re.compile(r"\\[a-z]+\{")
_SUPERSCRIPTS = dict(
    zip(
        "0123456789+-\u2212=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVW\u22a4\u2032",  # top
        "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂᵀ\u2032",
        strict=True,
    )
)
_SUBSCRIPTS = dict(
    zip("0123456789+-\u2212=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ", strict=True)
)
_SCRIPTS = {"^": _SUPERSCRIPTS, "_": _SUBSCRIPTS}
_AROUND_SYMBOL = re.compile(r"\s*([^\w\s])\s*")
_SPACES = re.compile(r"\s+")
_INSIDE_BRACKETS = re.compile(r"(?<=[(\[{⟨⌊⌈])\s+|\s+(?=[)\]}⟩⌋⌉])")
"""Spaces just inside brackets: math sets none (``\\langle x, y \\rangle`` reads ``⟨x, y⟩``)."""
_ENDS_WORD = re.compile(r"[^\W_][\u2032\u2033]*$|[)\]}]$")  # a letter or digit, primes, a bracket
"""Where a command shown as a word after it is set apart: ``n\\log n`` reads ``n log n``."""
_ONLY_SCRIPTS = re.compile(r"(?:[_^][^\s_^])*[_^]?")
"""Characters that are only scripts (``_x``, ``^2_``): a word before them stays a word."""
_ONE_ARGUMENT = ("bm", "boldsymbol", "texttt", "mathnormal")
"""Commands common in abstracts that pylatexenc does not know: shown as their argument."""
_NAMED = ("Pr", "det", "ker", "dim", "deg", "gcd", "hom", "lg", "cot", "sec", "csc", "coth")
"""Operators pylatexenc does not know: shown as their names, as LaTeX sets them."""
_SYMBOLS = {
    "ne": "≠",
    "neg": "¬",
    "iff": "⟺",
    "implies": "⟹",
    "impliedby": "⟸",
    "gets": "←",
    "land": "∧",
    "lor": "\u2228",
    "bot": "⊥",
    "bmod": "mod",
    "colon": ":",
    "prime": "\u2032",
    "quad": " ",
    "qquad": " ",
    "\\": " ",  # a line break: a title is shown on one line
}
"""Commands pylatexenc does not know, or shows otherwise, and what they read as."""
_UNSHOWN = (
    *("left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl"),
    *("biggr", "Biggl", "Biggr", "displaystyle", "textstyle", "rm", "it", "bf"),
)
"""Commands that only size a bracket or set a font: shown as nothing (``T_{\\rm c}`` reads
``T_c``)."""
_BARS = {"lvert": "open", "lVert": "open", "rvert": "close", "rVert": "close"}
"""Bars that open or close: no space inside them (``\\lvert x \\rvert`` reads ``|x|``)."""
_DOUBLE_STRUCK_DIGITS = str.maketrans("0123456789", "".join(chr(0x1D7D8 + n) for n in range(10)))
_WIDE_ACCENTS = {"overline": "\u0305", "widehat": "\u0302", "widetilde": "\u0303"}
"""Accents pylatexenc drops: shown as their narrow forms are (``\\bar{x}`` reads ``x̅``)."""
_MATH_SPECIALS = {"''": "\u2033", "--": "--", "---": "---"}
"""What these read as in math: primes and minus signs (``f''`` reads ``f″``), not quotes or
dashes."""


class _Unknown(Exception):
    """A formula holds something that cannot be shown faithfully: it is left as written."""


def _contexts() -> tuple[macrospec.LatexContextDb, macrospec.LatexContextDb]:
    """pylatexenc's parsing and text contexts, with the commands of ``_ONE_ARGUMENT``,
    ``_NAMED``, ``_SYMBOLS``, ``_UNSHOWN`` and a few more added."""
    walker = latexwalker.get_default_latex_context_db()
    specs = [macrospec.std_macro(name, False, 1) for name in (*_ONE_ARGUMENT, "pmod")]
    specs += [macrospec.std_macro(name, False, 2) for name in ("tfrac", "dfrac", "binom")]
    specs += [macrospec.std_macro(name, False, 0) for name in (*_UNSHOWN, *_NAMED, "arg")]
    specs += [macrospec.std_macro(name, False, 0) for name in _SYMBOLS if name != "\\"]
    specs.append(macrospec.std_macro("operatorname", "*{"))  # \operatorname*{argmax}
    specs.append(macrospec.std_macro("mathbbm", False, 1))
    walker.add_context_category("paperbot", macros=specs, prepend=True)
    text = latex2text.get_default_latex_context_db()
    shown = [latex2text.MacroTextSpec(name, "%s") for name in _ONE_ARGUMENT]
    shown += [latex2text.MacroTextSpec(name, "%s/%s") for name in ("tfrac", "dfrac")]
    shown += [latex2text.MacroTextSpec(name, "") for name in _UNSHOWN]
    shown += [latex2text.MacroTextSpec(name, name) for name in (*_NAMED, "arg")]
    shown += [latex2text.MacroTextSpec(name, sign) for name, sign in _SYMBOLS.items()]
    shown += [latex2text.MacroTextSpec("|", "‖"), latex2text.MacroTextSpec("operatorname", "%(2)s")]
    shown += [latex2text.MacroTextSpec("binom", "(%s choose %s)")]
    shown += [latex2text.MacroTextSpec("pmod", "(mod %s)")]
    shown += [latex2text.MacroTextSpec(name, _double_struck) for name in ("mathbb", "mathbbm")]
    shown += [latex2text.MacroTextSpec(name, f"%s{mark}") for name, mark in _WIDE_ACCENTS.items()]
    text.add_context_category("paperbot", macros=shown, prepend=True)
    return walker, text


def _double_struck(node: Any, l2tobj: Any) -> str:
    """``\\mathbb{R}`` in double-struck letters, and ``\\mathbb{1}`` (an indicator) in a
    double-struck digit, not a plain ``1``."""
    shown = latex2text.fmt_math_text_style(l2tobj.node_arg_to_text(node, 0), "doublestruck")
    return str(shown).translate(_DOUBLE_STRUCK_DIGITS)


_WALKER_DB, _TEXT_DB = _contexts()
logging.getLogger("pylatexenc").setLevel(logging.ERROR)
"""A formula pylatexenc cannot read is left as written: its warnings about it would only be
noise in the log."""
_AS_TEXT = latex2text.LatexNodes2Text(latex_context=_TEXT_DB, math_mode="text")
"""pylatexenc's own conversion: for text commands, whose ``_`` and ``^`` are no scripts."""


class _ToText(latex2text.LatexNodes2Text):  # type: ignore[misc]
    """pylatexenc's conversion of one command, its arguments read as the rest of a formula is
    (``\\sqrt{T \\log T}`` reads ``√(T log T)``, ``\\frac{x^2}{2}`` reads ``x²/2``), except
    those of text commands, which hold text (``\\texttt{max_len}``)."""

    def macro_node_to_text(self, node: Any) -> str:
        if node.macroname.startswith("text") or node.macroname in ("emph", "mbox"):
            return str(_AS_TEXT.macro_node_to_text(node))
        return str(super().macro_node_to_text(node))

    def nodelist_to_text(self, nodelist: Sequence[Any]) -> str:
        return _text(nodelist)


_TO_TEXT = _ToText(latex_context=_TEXT_DB, math_mode="text")


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
        text = _text(node.nodelist if math else [node])
    except _Unknown:
        raise
    except Exception as error:  # pylatexenc says it cannot read a formula in several ways
        raise _Unknown(source) from error
    if "%" in text and "%" not in source:  # the pattern of a command whose arguments are amiss
        raise _Unknown(source)
    if not math:
        return text.strip()
    text = _INSIDE_BRACKETS.sub("", _SPACES.sub(" ", text))  # math sets its own spaces
    return text.strip() or text  # $\quad$ alone is a space


def _text(nodes: Sequence[Any]) -> str:
    """The text of parsed ``nodes``, superscripts and subscripts made Unicode where they can."""
    out: list[str] = []
    script = ""  # a ^ or _ waiting for what it applies to
    named = False  # the last thing shown was a command shown as a word (\log), and its scripts
    sized = False  # the last node was \left or \right, which a . after leaves without a bracket
    for node in nodes:
        if node is None or node.isNodeType(latexwalker.LatexCommentNode):
            continue
        sized, was_sized = False, sized
        if named and not script and _starts_word(node):
            out.append(" ")  # \log\log n, \arg\min, \min_x\max_y: words apart, as LaTeX sets them
            named = False
        if node.isNodeType(latexwalker.LatexCharsNode):
            chars = node.chars
            if was_sized and chars.startswith("."):
                chars = chars[1:]  # \left. \right.: no bracket at all
            if script and chars:
                out.append(_scripted(script, chars[0]))
                chars, script = chars[1:], ""
            text, script = _chars(chars)
            out.append(text)
            named = named and _ONLY_SCRIPTS.fullmatch(chars) is not None
            continue
        space = ""
        word = False
        if node.isNodeType(latexwalker.LatexGroupNode):
            text = _text(node.nodelist)
        elif node.isNodeType(latexwalker.LatexMacroNode):
            _check(node)
            text = _TO_TEXT.node_to_text(node)
            sized = node.macroname in ("left", "right")
            argless = not (node.nodeargd and node.nodeargd.argnlist)
            if _BARS.get(node.macroname) == "close":
                out = ["".join(out).rstrip()]
            if argless and node.macro_post_space and text and node.macroname not in _BARS:
                space = " "  # \log n: the space that ends a command's name still parts words
                if _is_sign(text) and not script and "".join(out)[-1:].strip():
                    out.append(" ")  # z\sim 2: a sign spaced after is spaced before
            word = _is_word(node, text)
            if word and not script and _ENDS_WORD.search("".join(out)):
                out.append(" ")  # n\log n, \min_x\max_y: apart from the word before, as in LaTeX
        elif node.isNodeType(latexwalker.LatexSpecialsNode):
            text = _MATH_SPECIALS.get(node.specials_chars) or _TO_TEXT.node_to_text(node)
        else:  # an environment, nested math: not for a one-line title
            raise _Unknown(node.latex_verbatim())
        out += [_scripted(script, text) if script else text, space]
        if not script:  # what a script applies to leaves the word before it a word
            named = word and not space
        script = ""
    if script:
        out.append(script)
    return "".join(out)


def _is_word(node: Any, text: str) -> bool:
    """Whether the command ``node``, shown as ``text``, is shown as a word (``\\log``,
    ``\\operatorname{Tr}``), which LaTeX sets apart from the words around it."""
    named = node.macroname == "operatorname" or not (node.nodeargd and node.nodeargd.argnlist)
    return named and len(text) > 1 and text.isalpha()


def _is_sign(text: str) -> bool:
    """Whether ``text`` is one mathematical sign (``\\sim``, ``\\in``, ``\\to``), which LaTeX spaces
    alike on both sides."""
    return len(text) == 1 and unicodedata.category(text) == "Sm"


def _starts_word(node: Any) -> bool:
    """Whether ``node`` shows a letter first: plain letters, or a command shown as a word."""
    if node.isNodeType(latexwalker.LatexCharsNode):
        return bool(node.chars[:1].isalpha())
    if node.isNodeType(latexwalker.LatexMacroNode) and not (
        node.nodeargd and node.nodeargd.argnlist
    ):
        return bool(_TO_TEXT.node_to_text(node)[:1].isalpha())
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
            out.append("\u2032" if char == "'" else char)  # f'(x): a prime, as f'' is
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
    # a command read as another's argument (\hat\theta, \not\in) has no arguments parsed
    spec, arguments = (node.nodeargd.argspec, node.nodeargd.argnlist) if node.nodeargd else ("", [])
    if any(
        kind == "[" and argument is not None
        for kind, argument in zip(spec, arguments, strict=False)
    ):  # \sqrt[3]{x}: pylatexenc would drop the 3
        raise _Unknown(node.latex_verbatim())
    for argument in arguments:
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
