"""The README's outputs are what the code prints, and its module list is the modules there are:
the calibrate examples are rendered here with the command's own code, and every module (and
script) of a listed folder is named in that folder's entry, none that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from calibration.calibrate import Calibration
from calibration.report import AccuracyReport, PrecisionScore
from edge.core.bundle import DEMO_BUNDLE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CODE_FILES = ("*.py", "*.sh")


def _block_after(marker: str, skip: int = 0) -> str:
    """The first fenced block after ``marker`` in the README (after ``skip`` others), without its
    fences."""
    start = README.index(marker)
    for _ in range(skip):
        start = README.index("```", README.index("```", start) + 3) + 3
    opening = README.index("\n", README.index("```", start)) + 1
    return README[opening : README.index("```", opening)].rstrip("\n")


def _report_from_json(data: dict) -> AccuracyReport:
    """The accuracy report an ``int8_report.json`` was written from (counts from its fractions)."""
    n = data["n"]

    def score(top1: float, top5: float, agreement: float) -> PrecisionScore:
        return PrecisionScore(round(top1 * n), round(top5 * n), round(agreement * n))

    scores = {
        "fp32": score(data["fp32_top1"], data["fp32_top5"], 1.0),
        "int8": score(data["int8_top1"], data["int8_top5"], data["agreement"]),
        "fp16": score(data["fp16_top1"], data["fp16_top5"], data["fp16_agreement"]),
    }
    not_measured = {}
    for name, entry in data["openvino"].items():
        key = f"openvino_{name}"
        if entry.get("measured") is False:
            scores[key] = PrecisionScore()
            not_measured[key] = entry["reason"]
        else:
            scores[key] = score(entry["top1"], entry["top5"], entry["agreement"])
    return AccuracyReport(n, data["num_classes"], data["margin"], data["min_agreement"], scores, not_measured)


def test_the_demo_bundles_calibrate_output_is_what_the_command_prints_for_its_report():
    report = _report_from_json(json.loads((DEMO_BUNDLE / "int8_report.json").read_text(encoding="utf-8")))
    written = ["model.int8.onnx", "model.openvino.int8.xml (.bin)", "int8_report.json"]
    expected = Calibration(report, written).summary(Path("edge/demo/bundle"))
    assert _block_after("What the command prints for the committed `int8_report.json`") == expected


def test_the_jetson_calibrate_example_is_in_the_commands_format():
    """Illustrative figures (258 WLASL100 test clips), printed as the command prints them on a
    Jetson: TensorRT's cache written, the OpenVINO model skipped for want of NNCF and OpenVINO."""
    scores = {
        "fp32": PrecisionScore(170, 220, 258),
        "int8": PrecisionScore(169, 219, 251),
        "fp16": PrecisionScore(170, 220, 258),
    }
    report = AccuracyReport(258, 100, 0.01, 0.95, scores)
    skipped = "nncf and openvino not installed (pip install 'asl-edge[calibrate]' for x86 CPU kiosks)"
    written = ["model.int8.onnx", "calibration.cache", "int8_report.json"]
    expected = Calibration(report, written, skipped).summary(Path("bundles/wlasl100"))
    assert _block_after("**3. Calibrate INT8**", skip=1) == expected


def _module_entries() -> dict[str, str]:
    """Each folder of the README's module list and the text of its entry."""
    block = _block_after("The modules, one stage each:")
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line and not line[0].isspace():
            current, _, text = line.partition(" ")
            entries[current] = text
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


def _files(folder: Path, listed: set[Path]) -> set[str]:
    """The code files of ``folder`` and of its subfolders that have no entry of their own."""
    names = {path.name for pattern in CODE_FILES for path in folder.glob(pattern)}
    for sub in folder.iterdir():
        if sub.is_dir() and sub.resolve() not in listed and (sub / "__init__.py").exists():
            names |= _files(sub, listed)
    return {name for name in names if not name.startswith("__")}


def test_the_module_list_names_every_module_and_no_other():
    entries = _module_entries()
    folders = {name: ROOT / name.rstrip("/") for name in entries if name.endswith("/")}
    listed = {path.resolve() for path in folders.values()}
    problems = []
    for name, folder in folders.items():
        if name in ("tests/", "systemd/"):
            continue
        assert folder.is_dir(), f"the README lists {name}, which does not exist"
        mentioned = set(re.findall(r"[\w-]+\.(?:py|sh)\b", entries[name]))
        present = _files(folder, listed)
        problems += [f"{name}{module} is not in the README's module list" for module in present - mentioned]
        problems += [
            f"the README's {name} entry names {module}, which is not there" for module in mentioned - present
        ]
    assert not problems, "\n".join(sorted(problems))
