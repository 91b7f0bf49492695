"""LaTeX in titles and abstracts, shown as Unicode in the subject, the HTML and the plain text."""

# ruff: noqa: RUF001, RUF003  (the Unicode letters and signs that look like ASCII are the point)

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from render_samples import ADA, CTX, DAY, digest, match, paper

from bot import matching
from bot.jobs import build_digest
from bot.models import Digest, Interests
from bot.render import Renderer
from bot.render_math import readable, readable_marked


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        (r"Sorting in $\mathcal{O}(n \log n)$ time", "Sorting in 𝒪(n log n) time"),
        (r"Sub-$\epsilon$ bounds", "Sub-ϵ bounds"),
        (r"Sub-$\varepsilon$ bounds", "Sub-ε bounds"),
        (r"$\alpha$-divergence", "α-divergence"),
        (r"Embeddings in $\mathbb{R}^d$", "Embeddings in ℝᵈ"),
        (r"Fast $k$-NN search", "Fast k-NN search"),
        (r"$x^2$ and $x^{2n}$ and $10^{-3}$", "x² and x²ⁿ and 10⁻³"),
        (r"$x_{ij}$, $\ell_1$, $W^{(t)}_{k}$", "xᵢⱼ, ℓ₁, W⁽ᵗ⁾ₖ"),
        (r"$A^\top x$", "Aᵀ x"),
        (r"\(\beta\)-VAE", "β-VAE"),
        (
            r"\textit{Fast} and \emph{exact}, \textbf{bold} \texttt{code}",
            "Fast and exact, bold code",
        ),
        (r"$\operatorname{softmax}(x) \leq 1$", "softmax(x) ≤ 1"),
        (r"$\|x\|_2$", "‖x‖₂"),
        (r"$\mathcal{O}(\log\log n)$ rounds", "𝒪(log log n) rounds"),
        (r"$\arg\min_x f$ and $\sin\theta$", "arg minₓ f and sin θ"),
        (r"$\alpha\beta$-pairs", "αβ-pairs"),
        (r"Solving $f''(x) = -f(x)$", "Solving f″(x) = -f(x)"),
        (r"$f'(x)$ and $x'_i$", "f′(x) and x′ᵢ"),
        (
            r"$\overline{x}$ and $\widehat{f}$ and $\widetilde{O}(n)$",
            "x\u0305 and f\u0302 and O\u0303(n)",
        ),
        (r"$\sim$1000 samples, $\approx$2 h", "∼1000 samples, ≈2 h"),  # math before a digit
        (r"$\times$10 faster, $>$99 runs", "×10 faster, >99 runs"),
        (r"Line $a \\ b$ break", "Line a b break"),  # a title stays on one line
        (r"$\min_x\max_y f$ and $\log_2\log_2 n$", "minₓ max_y f and log₂ log₂ n"),
        (r"$\mathcal{O}(n\log n)$ and $\sqrt{n}\log n$", "𝒪(n log n) and √(n) log n"),
        (r"$\langle x, y \rangle$ and $\lfloor n/2 \rfloor$", "⟨x, y⟩ and ⌊n/2⌋"),
        (r"$\big( x \big)$ and $\{ x : x > 0 \}$", "(x) and {x : x > 0}"),
        (r"$\lvert x \rvert$ and $\left.\frac{df}{dx}\right|_{x=0}$", "|x| and df/dx|ₓ₌₀"),
        (r"$\Pr[X \ne 0]$ iff $\neg p$, $p \iff q$", "Pr[X ≠ 0] iff ¬ p, p ⟺ q"),
        (r"$\binom{n}{k}$ subsets", "(n choose k) subsets"),
        (r"$a\quad b$ and x$\quad$y", "a b and x y"),
        (r"$\det A$, $\dim V$, $a \equiv b \pmod{n}$", "det A, dim V, a ≡ b (mod n)"),
        (r"$O(\sqrt{T \log T})$ regret, $\frac{x^2}{2}$", "O(√(T log T)) regret, x²/2"),
        (r"$\operatorname*{arg\,max}_x f$", "arg maxₓ f"),
        (r"$T_{\rm c}$, $x^{\prime}$, $\mathbb{1}_A$", "T_c, x\u2032, \U0001d7d9_A"),
        (r"$z\sim 2$ and $f\colon X\to Y$", "z ∼ 2 and f: X → Y"),
        (r"\texttt{max_len} and $\text{a_b}$", "max_len and a_b"),  # text holds no scripts
        (r"$\hat\theta_t$, $\bar\mu$, $\tilde\Theta(n)$ and $\not\in$", "θ̂ₜ, μ̅, Θ̃(n) and ∉"),
    ],
)
def test_math_and_text_commands_read_as_unicode(written: str, shown: str) -> None:
    assert readable(written) == shown


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        (r"$\mathbb{R}^{d \times n}$", "ℝ^(d×n)"),  # no superscript ×: the ^ stays, grouped
        (r"$x_{i,j}$", "x_(i,j)"),
        (r"$e^{-i\pi}$", "e^(-iπ)"),
        (r"$x^*$", "x^*"),
    ],
)
def test_scripts_without_unicode_keep_their_caret(written: str, shown: str) -> None:
    assert readable(written) == shown


@pytest.mark.parametrize(
    "written",
    [
        "It costs $5 and $10 per hour",  # dollars, no math
        "Prices of $5, $10 or $20",
        "Plans at $5/$10 a month",
        "A lone $ sign",
        "Paths such as C:\\Users\\ada\\data and a\\b",  # backslashes that are no LaTeX
        r"50\% fewer \cite{x} calls",  # LaTeX outside math and not a known text command
        r"Unbalanced $a}b$ braces",
        r"Unbalanced $\frac{1}{2$ braces",
        r"Unbalanced \emph{open and $x{y$",
        r"Unknown $\foo{x} + \bar{y}$ macros",
        r"Too few $\frac{1}$ arguments",
        r"Odd $\frac\sqrt[3]$ arguments",
        r"Cube roots $\sqrt[3]{x}$ kept whole",  # no root sign that drops its 3
        r"An environment $\begin{pmatrix}a\end{pmatrix}$",
        "$$ display math $$ stays",
        "Nothing to see here",
        "",
    ],
)
def test_what_is_no_formula_or_cannot_be_read_stays_as_written(written: str) -> None:
    assert readable(written) == written


def test_a_formula_pylatexenc_cannot_read_leaves_no_warning_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert readable(r"A $\hat\frac$ with no arguments") == r"A $\hat\frac$ with no arguments"
    assert not caplog.records


def test_a_text_with_a_stray_dollar_still_converts_its_real_formula() -> None:
    assert readable(r"From $5 to $10 with $k$ arms") == "From $5 to $10 with k arms"
    assert readable(r"Unknown $\foo$ beside $\alpha$") == r"Unknown $\foo$ beside α"


def test_marks_follow_their_words_past_converted_formulas() -> None:
    text = r"We prove $\mathcal{O}(n \log n)$ bounds for \emph{sparse} routing in $\mathbb{R}^d$."
    marks = tuple((text.index(w), text.index(w) + len(w)) for w in ("bounds", "sparse", "routing"))
    shown, moved = readable_marked(text, marks)
    assert shown == "We prove 𝒪(n log n) bounds for sparse routing in ℝᵈ."
    assert [shown[a:b] for a, b in moved] == ["bounds", "sparse", "routing"]


def test_marks_follow_their_words_past_a_formula_closed_before_a_digit() -> None:
    text = r"About $\sim$1000 sparse experts route $\langle x, y \rangle$ pairs"
    marks = tuple((text.index(w), text.index(w) + len(w)) for w in ("sparse", "pairs"))
    shown, moved = readable_marked(text, marks)
    assert shown == "About ∼1000 sparse experts route ⟨x, y⟩ pairs"
    assert [shown[a:b] for a, b in moved] == ["sparse", "pairs"]


def test_a_mark_inside_a_formula_takes_in_the_whole_formula() -> None:
    text = r"An $\alpha$-divergence and $\mathbb{R}^d$ here"
    alpha = text.index("alpha")
    shown, moved = readable_marked(text, ((alpha, alpha + 5), (0, 2)))
    assert [shown[a:b] for a, b in moved] == ["α", "An"]


LATEX_TITLE = r"Sub-$\epsilon$ Routing in $\mathcal{O}(n \log n)$ for $k$-NN over $\mathbb{R}^d$"
LATEX_ABSTRACT = (
    r"We route tokens in $\mathcal{O}(n \log n)$ time with an $\alpha$-divergence penalty. "
    r"Each of the $x^2$ sparse experts then serves a mixture of experts."
)


def latex_digest() -> Digest:
    first = paper(1, title=LATEX_TITLE, abstract=LATEX_ABSTRACT)
    d = digest(n=2, more=1)
    more = (paper(100, title=r"Costs of $5 and $10 per \textit{hour}"),)
    return replace(d, matches=(match(first), *d.matches[1:]), more=more)


def test_the_subject_html_and_text_show_the_math_as_unicode(renderer: Renderer) -> None:
    out = renderer.render(latex_digest(), CTX)
    assert out.subject == "2 papers for Tue 4 Mar: Sub-ϵ Routing in 𝒪(n log n) for k-NN over ℝᵈ"
    title = "Sub-ϵ Routing in 𝒪(n log n) for k-NN over ℝᵈ"
    assert title in out.html and title in " ".join(out.text.split())
    snippet = "We route tokens in 𝒪(n log n) time with an α-divergence penalty. Each of the x²"
    assert snippet in out.html and snippet in " ".join(out.text.split())
    assert "Costs of $5 and $10 per hour" in out.html and "Costs of $5 and $10 per hour" in out.text
    for part in (out.subject, out.html, out.text):
        assert "\\" not in part and "{" not in part.split("<style", 1)[0].split("</style>")[-1]


def test_an_alert_subject_shows_the_math_as_unicode(renderer: Renderer) -> None:
    pick = match(paper(1, title=r"Bounds for $k$-NN in $\mathbb{R}^d$"))
    out = renderer.render(Digest(ADA, DAY, (pick,), kind="alert", topics=("Lee",)), CTX)
    assert out.subject == "Alert for “Lee”: Bounds for k-NN in ℝᵈ"


def test_a_matched_word_after_a_formula_is_still_marked(renderer: Renderer) -> None:
    """Matching finds the words in the abstract as written; the marks land on the same words
    once the formulas before them are shown as Unicode."""
    sub = ADA.model_copy(update={"interests": Interests(keywords=["sparse experts"])})
    latex = paper(1, title="Routing at scale", abstract=LATEX_ABSTRACT)
    plain = [paper(n) for n in range(2, 6)]
    picks = matching.select([sub], [latex, *plain])[sub.email]
    pick = next(m for m in picks.picked if m.paper.id == latex.id)
    assert "$x^2$ sparse experts" in pick.snippet, "matching keeps the text as written"
    assert pick.marks
    out = renderer.render(build_digest(sub, DAY, picks), CTX)
    assert re.search(r"the x² <strong[^>]*>sparse experts</strong> then", out.html), out.html
    assert "the x² *sparse experts* then" in " ".join(out.text.split())


def test_a_paper_without_a_snippet_shows_its_first_sentences_converted(
    renderer: Renderer,
) -> None:
    pick = replace(match(paper(1, abstract=LATEX_ABSTRACT)), snippet="", marks=())
    out = renderer.render(Digest(ADA, DAY, (pick,)), CTX)
    assert "We route tokens in 𝒪(n log n) time with an α-divergence penalty." in out.html


def test_a_liked_title_in_a_reason_shows_its_math(renderer: Renderer) -> None:
    reasons = (r"like: similar to 2401.00001 (Bounds for $k$-NN in $\mathbb{R}^d$)",)
    pick = replace(match(paper(1)), reasons=reasons)
    out = renderer.render(Digest(ADA, DAY, (pick,)), CTX)
    assert "2401.00001 (Bounds for k-NN in ℝᵈ)" in out.html
