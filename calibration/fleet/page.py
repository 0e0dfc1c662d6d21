"""``report.html``: the fleet report on one page that needs nothing else.

Plain HTML with its style inline and the plots as inline PNGs drawn by matplotlib's Agg backend
(no display, no fonts or scripts fetched): accuracy per release over the days, with intervals,
and accuracy per word and release. It opens from a file, offline, in any browser.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d232a; max-width: 1100px; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
p.meta { color: #5a6570; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.92rem; }
th, td { border-bottom: 1px solid #d6dbe0; padding: 0.3rem 0.7rem; text-align: right; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
th { background: #f0f3f6; }
img { max-width: 100%; border: 1px solid #d6dbe0; }
"""


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _interval(entry: dict[str, Any]) -> str:
    if entry.get("ci_low") is None:
        return "-"
    return f"{entry['ci_low'] * 100:.1f}-{entry['ci_high'] * 100:.1f}%"


def _table(headers: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    head = "".join(
        f'<th class="text">{html.escape(h)}</th>' if i < text_columns else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{html.escape(str(c))}</td>'
            if i < text_columns
            else f"<td>{html.escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or ''}</tbody></table>"


def _png(figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _days_plot(report: dict[str, Any]) -> str | None:
    """Accuracy per release and day with its interval (shadow runs dashed)."""
    from matplotlib.figure import Figure

    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in report["days"]:
        if row["judged"]:
            series.setdefault((row["role"], row["release"]), []).append(row)
    if not series:
        return None
    figure = Figure(figsize=(9, 3.6), dpi=110, layout="constrained")
    axes = figure.subplots()
    for (role, release), rows in sorted(series.items()):
        days = [r["day"] for r in rows]
        values = [r["accuracy"] * 100 for r in rows]
        below = [(r["accuracy"] - r["ci_low"]) * 100 for r in rows]
        above = [(r["ci_high"] - r["accuracy"]) * 100 for r in rows]
        axes.errorbar(
            days,
            values,
            yerr=[below, above],
            capsize=4,
            marker="o",
            linestyle="--" if role == "shadow" else "-",
            label=f"{release} ({role})",
        )
    axes.set_ylim(0, 105)
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"Accuracy per release and day ({report['confidence']:.0%} Wilson intervals)")
    axes.legend(fontsize="small", loc="lower left")
    axes.grid(alpha=0.3)
    return _png(figure)


def _words_plot(report: dict[str, Any]) -> str | None:
    """Accuracy per word, one bar per release, with intervals."""
    from matplotlib.figure import Figure

    rows = [r for r in report["words"] if r["judged"]]
    if not rows:
        return None
    words = sorted({r["word"] for r in rows})
    releases = sorted({r["release"] for r in rows})
    width = 0.8 / len(releases)
    figure = Figure(figsize=(9, 3.6), dpi=110, layout="constrained")
    axes = figure.subplots()
    for index, release in enumerate(releases):
        found = {r["word"]: r for r in rows if r["release"] == release}
        xs = [position + index * width for position, word in enumerate(words) if word in found]
        picked = [found[word] for word in words if word in found]
        axes.bar(
            xs,
            [r["accuracy"] * 100 for r in picked],
            width,
            yerr=[
                [(r["accuracy"] - r["ci_low"]) * 100 for r in picked],
                [(r["ci_high"] - r["accuracy"]) * 100 for r in picked],
            ],
            capsize=2,
            label=release,
        )
    axes.set_xticks([position + 0.4 - width / 2 for position in range(len(words))], words, rotation=30)
    axes.set_ylim(0, 105)
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Accuracy per word signed (the word the user named or confirmed)")
    axes.legend(fontsize="small", loc="lower left")
    return _png(figure)


def render_page(report: dict[str, Any]) -> str:
    """The whole page, from ``report.json``'s figures."""
    releases = [
        [
            name,
            entry["judged"],
            entry["correct"],
            _percent(entry["accuracy"]),
            _interval(entry),
            *(
                [entry["shadow"]["judged"], _percent(entry["shadow"]["accuracy"]), _interval(entry["shadow"])]
                if entry["shadow"]
                else ["-", "-", "-"]
            ),
        ]
        for name, entry in sorted(report["releases"].items())
    ]
    level = f"{report['confidence']:.0%}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>asl-edge fleet report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>asl-edge fleet report</h1>",
        f'<p class="meta">{html.escape(report["source"]["uri"])} · {report["source"]["batches"]} batches'
        f"{' since ' + html.escape(report['source']['since']) if report['source']['since'] else ''} · "
        f"{report['judged']} judged signs · made {html.escape(report['created'])} by "
        f"{html.escape(report['tool'])} · intervals at {level} (Wilson)</p>",
        "<h2>Accuracy per release</h2>",
        _table(
            [
                "release",
                "judged",
                "right",
                "accuracy",
                "interval",
                "in shadow",
                "shadow accuracy",
                "interval",
            ],
            releases,
        ),
    ]
    days = _days_plot(report)
    if days:
        parts.append(f'<img alt="accuracy per release over days" src="{days}">')
    parts.append("<h2>Shadow against serving, on the same signs</h2>")
    parts.append(
        _table(
            [
                "serving",
                "shadow",
                "pairs",
                "both right",
                "serving only",
                "shadow only",
                "both wrong",
                "difference",
                "interval",
                "McNemar p",
            ],
            [
                [
                    p["serving"],
                    p["shadow"],
                    p["pairs"],
                    p["both_right"],
                    p["serving_only"],
                    p["shadow_only"],
                    p["both_wrong"],
                    f"{p['difference'] * 100:+.1f} pts",
                    f"{p['ci_low'] * 100:+.1f} to {p['ci_high'] * 100:+.1f}",
                    f"{p['mcnemar_p']:.4g}",
                ]
                for p in report["paired"]
            ],
            text_columns=2,
        )
        if report["paired"]
        else "<p>No sign was read in shadow and named by its user.</p>"
    )
    words = _words_plot(report)
    parts.append("<h2>Per word</h2>")
    if words:
        parts.append(f'<img alt="accuracy per word" src="{words}">')
    parts.append(
        _table(
            ["release", "word", "judged", "accuracy", "interval"],
            [
                [r["release"], r["word"], r["judged"], _percent(r["accuracy"]), _interval(r)]
                for r in report["words"]
            ],
            text_columns=2,
        )
    )
    for title, key in (("Per cohort", "cohort"), ("Per kiosk", "device")):
        rows = report["cohorts" if key == "cohort" else "devices"]
        parts.append(f"<h2>{title}</h2>")
        parts.append(
            _table(
                ["release", key, "judged", "accuracy", "interval"],
                [
                    [r["release"], r[key] or "-", r["judged"], _percent(r["accuracy"]), _interval(r)]
                    for r in rows
                ],
                text_columns=2,
            )
        )
    parts.append("<h2>Feedback volume</h2>")
    parts.append(
        "<p>Only answered signs leave a kiosk, so this counts answers per kiosk and day, and the share "
        "that named the word (what judges a shadow), not a share of all predictions.</p>"
    )
    parts.append(
        _table(
            ["release", "cohort", "answers", "kiosk-days", "per kiosk-day", "named the word"],
            [
                [
                    v["release"],
                    v["cohort"] or "-",
                    v["answers"],
                    v["kiosk_days"],
                    v["answers_per_kiosk_day"],
                    _percent(v["named_share"]),
                ]
                for v in report["feedback_volume"]
            ],
            text_columns=2,
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
