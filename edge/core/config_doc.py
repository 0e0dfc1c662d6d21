"""The configuration reference, rendered from the config schema (edge/core/config.py) so it cannot drift.

``asl-edge config-reference`` prints it as Markdown tables, one per section: each key with its
type, default, one-line doc and allowed values. ``--write README.md`` (``make docs``) replaces the
README's block between ``START`` and ``END``; a test fails when that block is not current.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

from edge.core.config import Config
from edge.core.errors import AslEdgeError

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


class DocError(AslEdgeError):
    """The target file has no (or a damaged) generated block."""


def _toml(value: Any) -> str:
    if isinstance(value, (bool, str, tuple)):
        return json.dumps(value)
    return repr(value)


def _type(kind: Any) -> str:
    return "str or list of str" if kind == tuple[str, ...] else kind.__name__


def _allowed(rules: dict[str, Any]) -> str:
    if "choices" in rules:
        return "one of " + ", ".join(
            f"`{json.dumps(choice)}`" if choice == "" else f"`{choice}`" for choice in rules["choices"]
        )
    if rules.get("pattern") == "id":
        return "1-64 ASCII letters, digits, `-`, `_` or `.`"
    if "check" in rules:  # the rule's own summary, its docstring's first line
        return rules["check"].__doc__.strip().splitlines()[0].rstrip(".").replace("``", "`")
    if "min" in rules and "max" in rules:
        return f"{rules['min']} to {rules['max']}"
    if "min" in rules:
        return f"at least {rules['min']}"
    if "max" in rules:
        return f"at most {rules['max']}"
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference() -> str:
    """Every section and key of ``Config`` as Markdown."""
    parts = ["Generated from `edge/core/config.py` by `make docs`; do not edit by hand.\n"]
    section_types = get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = section_types[section.name]
        hints = get_type_hints(cls)
        rows = [
            f"### `[{section.name}]`\n",
            "| key | type | default | description | allowed |",
            "| --- | --- | --- | --- | --- |",
        ]
        for item in dataclasses.fields(cls):
            rules = dict(item.metadata)
            rows.append(
                f"| `{item.name}` | {_type(hints[item.name])} | `{_cell(_toml(item.default))}` | "
                f"{_cell(rules.pop('doc'))} | {_cell(_allowed(rules))} |"
            )
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def _split(text: str, start: str, end: str) -> tuple[str, str, str]:
    """(before the start marker, the block between the markers, from the end marker on)."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise DocError(f"expected one '{start}' followed by one '{end}'")
    head, rest = text.split(start)
    block, tail = rest.split(end)
    return head, block.removeprefix("\n"), tail


def current_block(text: str, start: str = START, end: str = END) -> str:
    """The generated block now in ``text`` (between ``start`` and ``end``)."""
    return _split(text, start, end)[1]


def replace_block(text: str, reference: str, start: str = START, end: str = END) -> str:
    """``text`` with the block between the markers replaced by ``reference``."""
    head, _, tail = _split(text, start, end)
    return f"{head}{start}\n{reference}{end}{tail}"


def write_reference(
    path: Path, render: Callable[[], str] = render_reference, start: str = START, end: str = END
) -> bool:
    """Rewrite the block in ``path`` (the config reference, or another generated one such as the
    health reference); True when the file changed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DocError(f"{path}: cannot read: {exc}") from exc
    updated = replace_block(text, render(), start, end)
    if updated == text:
        return False
    path.write_text(updated, encoding="utf-8")
    return True
