"""``report.html`` of ``asl-edge evaluate``: one self-contained page a person would rather look at.

The verdict and its reasons first, then for the new data and the regression source: per-class top-1
as bars (baseline beside candidate) and both confusion matrices, drawn by matplotlib's Agg backend
into PNGs inlined as data URIs. The page loads nothing: no script, no style sheet, no font, no URL.
"""

from __future__ import annotations

import base64
import html
import io

from calibration.accuracy import Accuracy
from calibration.comparison import Evaluation, SetResult

COLOURS = {"baseline": "#8c8c8c", "candidate": "#1f77b4"}
VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#9a6700"}


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def class_bars(item: SetResult) -> str:
    """Per-class top-1 of both models, side by side, as a PNG data URI."""
    from matplotlib.figure import Figure

    glosses = sorted(set(item.baseline.per_class) | set(item.candidate.per_class))
    figure = Figure(figsize=(max(6.0, 0.6 * len(glosses) + 2), 3.6))
    axes = figure.subplots()
    positions = range(len(glosses))
    for offset, (name, accuracy) in (
        (-0.2, ("baseline", item.baseline)),
        (0.2, ("candidate", item.candidate)),
    ):
        values = [100 * accuracy.class_top1(gloss) for gloss in glosses]
        axes.bar([p + offset for p in positions], values, width=0.4, label=name, color=COLOURS[name])
    counts = [item.baseline.per_class[g].n if g in item.baseline.per_class else 0 for g in glosses]
    axes.set_xticks(
        list(positions), [f"{g}\n({n})" for g, n in zip(glosses, counts, strict=True)], fontsize=8
    )
    axes.set_ylim(0, 105)
    axes.set_ylabel("top-1 (%)")
    axes.set_title(f"{item.name}: top-1 per class (clips per class below each word)")
    axes.legend(loc="lower right", fontsize=8)
    return _png(figure)


def confusion_matrices(item: SetResult) -> str:
    """Both models' confusion matrices (rows: the true word, columns: the answer) as a PNG data URI."""
    from matplotlib.figure import Figure

    truths = sorted(item.baseline.confusion)
    answered = {g for acc in (item.baseline, item.candidate) for row in acc.confusion.values() for g in row}
    columns = truths + sorted(answered - set(truths))
    figure = Figure(figsize=(2 * max(4.0, 0.45 * len(columns) + 1.5), max(3.5, 0.4 * len(truths) + 1.5)))
    for axes, (name, accuracy) in zip(
        figure.subplots(1, 2), (("baseline", item.baseline), ("candidate", item.candidate)), strict=True
    ):
        _matrix(axes, accuracy, truths, columns, f"{name} ({item.name})")
    return _png(figure)


def _matrix(axes, accuracy: Accuracy, truths: list[str], columns: list[str], title: str) -> None:
    values = [[accuracy.confusion[t][c] if t in accuracy.confusion else 0 for c in columns] for t in truths]
    axes.imshow(values, cmap="Blues", vmin=0)
    axes.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    axes.set_yticks(range(len(truths)), truths, fontsize=7)
    axes.set_xlabel("answer")
    axes.set_ylabel("true word")
    axes.set_title(title, fontsize=9)
    peak = max((v for row in values for v in row), default=0)
    for row, counts in enumerate(values):
        for column, count in enumerate(counts):
            if count:
                colour = "white" if count > peak / 2 else "black"
                axes.text(column, row, str(count), ha="center", va="center", fontsize=6, color=colour)


def _set_section(item: SetResult) -> str:
    paired = item.paired
    rows = "".join(
        f"<tr><td>{html.escape(g)}</td><td>{c.n}</td><td>{c.top1}</td>"
        f"<td>{item.candidate.per_class[g].top1 if g in item.candidate.per_class else 0}</td></tr>"
        for g, c in item.baseline.per_class.items()
    )
    return (
        f"<h2>{html.escape(item.name)}</h2><p>{html.escape(item.source)}: {item.baseline.n} clips; top-1 "
        f"{item.baseline.fraction('top1'):.1%} &rarr; {item.candidate.fraction('top1'):.1%}, top-5 "
        f"{item.baseline.fraction('top5'):.1%} &rarr; {item.candidate.fraction('top5'):.1%}; "
        f"{paired.wins} clips fixed, {paired.losses} broken (sign test p = {paired.p_better:.3g})</p>"
        f'<img alt="per-class top-1 of {html.escape(item.name)}" src="{class_bars(item)}">'
        f'<img alt="confusion matrices of {html.escape(item.name)}" src="{confusion_matrices(item)}">'
        "<table><tr><th>word</th><th>clips</th><th>baseline right</th><th>candidate right</th></tr>"
        f"{rows}</table>"
    )


def render_page(result: Evaluation) -> str:
    verdict = result.verdict
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in verdict.reasons)
    needed = f"<p>Needs {html.escape(verdict.needed)}.</p>" if verdict.needed else ""
    colour = VERDICT_COLOURS.get(verdict.verdict, "black")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>asl-edge evaluate: {html.escape(result.candidate_id)}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1200px}img{max-width:100%;display:block;"
        "margin:1em 0}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "</style></head><body>"
        f"<h1>{html.escape(result.candidate_id)} vs {html.escape(result.baseline_id)}</h1>"
        f'<p style="font-size:1.5em;color:{colour}"><b>gate: {verdict.verdict}</b></p>'
        f"<ul>{reasons}</ul>{needed}"
        f"{_set_section(result.new)}{_set_section(result.regression)}"
        "</body></html>\n"
    )
