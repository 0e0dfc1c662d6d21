"""The README's configuration reference is generated from the config schema and must be current."""

import dataclasses
from pathlib import Path

import pytest

from asl_edge.cli import main
from edge.core.config import Config
from edge.core.config_doc import END, START, DocError, current_block, render_reference, replace_block

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_configuration_reference_is_current():
    assert current_block(README.read_text(encoding="utf-8")) == render_reference(), (
        "README.md's configuration reference differs from edge/core/config.py: run `make docs`"
    )


def test_reference_names_every_section_and_key_with_type_default_and_doc():
    reference = render_reference()
    for section in dataclasses.fields(Config):
        assert f"### `[{section.name}]`" in reference
        table = reference.split(f"### `[{section.name}]`")[1].split("### ")[0]
        for item in dataclasses.fields(section.default_factory()):
            row = next(line for line in table.splitlines() if line.startswith(f"| `{item.name}` |"))
            assert item.metadata["doc"].replace("|", "\\|") in row
            kind = "str or list of str" if isinstance(item.default, tuple) else type(item.default).__name__
            assert f"| {kind} |" in row
    assert '| `backend` | str | `"auto"` |' in reference
    assert "one of `auto`, `tensorrt`, `openvino`, `onnxruntime`" in reference
    assert "| `build_if_missing` | bool | `false` |" in reference
    assert (
        "| `top_k` | int | `5` | how many ranked words to report with each prediction | 1 to 100 |"
        in reference
    )


def test_write_replaces_only_the_block(tmp_path, capsys):
    page = tmp_path / "README.md"
    page.write_text(f"# title\n\nbefore\n{START}\nstale text\n{END}\nafter\n", encoding="utf-8")
    assert main(["config-reference", "--write", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "stale text" not in text
    assert current_block(text) == render_reference()
    assert main(["config-reference", "--write", str(page)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("already current")
    with pytest.raises(DocError, match="config-reference:start"):
        replace_block("no markers here", "x")
    page.write_text(f"{END}\n{START}\n", encoding="utf-8")
    assert main(["config-reference", "--write", str(page)]) == 2
