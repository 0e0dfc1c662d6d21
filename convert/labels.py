"""Class lists: WLASL's ``wlasl_class_list.txt`` (``index<TAB>gloss``) or one gloss per line."""

from __future__ import annotations

import re
from pathlib import Path

from edge.core.errors import AslEdgeError

_INDEXED = re.compile(r"^\s*(\d+)\t(.*)$")


class LabelsError(AslEdgeError):
    """The class list cannot be read or does not fit the model."""


def parse_labels(text: str, source: str = "labels") -> list[str]:
    """Glosses in class order. Indexed lists must number their classes 0..N-1."""
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
    if not lines:
        raise LabelsError(f"{source}: no labels")
    indexed = [match for match in map(_INDEXED.match, lines) if match is not None]
    if len(indexed) == len(lines):
        by_index: dict[int, str] = {}
        for match in indexed:
            index, gloss = int(match.group(1)), match.group(2).strip()
            if index in by_index:
                raise LabelsError(f"{source}: class index {index} appears twice")
            if not gloss:
                raise LabelsError(f"{source}: class index {index} has no gloss")
            by_index[index] = gloss
        if sorted(by_index) != list(range(len(by_index))):
            gap = next(i for i in range(len(by_index) + 1) if i not in by_index)
            raise LabelsError(f"{source}: class indices must run 0..{len(by_index) - 1}; {gap} is missing")
        return [by_index[i] for i in range(len(by_index))]
    glosses = [line.strip() for line in lines]
    if any("\t" in gloss for gloss in glosses):
        raise LabelsError(f"{source}: mixes 'index<TAB>gloss' lines with plain glosses")
    return glosses


def load_labels(path: str | Path, num_classes: int) -> list[str]:
    """The first ``num_classes`` glosses (WLASL-N uses the first N lines of the class list)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: cannot read labels: {exc}") from exc
    labels = parse_labels(text, str(path))
    if len(labels) < num_classes:
        raise LabelsError(
            f"{path}: {len(labels)} labels for a checkpoint with {num_classes} classes; "
            "pass the full class list (e.g. WLASL's wlasl_class_list.txt)"
        )
    return labels[:num_classes]
