"""Class lists: WLASL's indexed format, plain lists, and the errors a user can hit."""

import pytest

from convert.labels import LabelsError, load_labels, parse_labels


def test_wlasl_class_list_uses_first_n(tmp_path):
    (tmp_path / "l.txt").write_text("0\tbook\n1\tdrink\n2\tcomputer\n3\tthank you\n", encoding="utf-8")
    assert load_labels(tmp_path / "l.txt", 3) == ["book", "drink", "computer"]
    assert load_labels(tmp_path / "l.txt", 4)[3] == "thank you"


def test_indexed_list_is_ordered_by_index():
    assert parse_labels("1\tb\n0\ta\n2\tc\n") == ["a", "b", "c"]


def test_plain_list_with_crlf_and_blank_lines():
    assert parse_labels("book\r\n\r\ndrink\r\n") == ["book", "drink"]


def test_fewer_labels_than_classes(tmp_path):
    (tmp_path / "l.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(LabelsError, match="2 labels for a checkpoint with 5 classes"):
        load_labels(tmp_path / "l.txt", 5)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("0\ta\n2\tb\n", "1 is missing"),
        ("0\ta\n0\tb\n", "appears twice"),
        ("", "no labels"),
        ("0\ta\nplain\tx y\n", "mixes"),
    ],
)
def test_malformed_lists(text, pattern):
    with pytest.raises(LabelsError, match=pattern):
        parse_labels(text)


def test_unreadable_labels(tmp_path):
    with pytest.raises(LabelsError, match="no such file"):
        load_labels(tmp_path / "missing.txt", 1)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabelsError, match="cannot read labels"):
        load_labels(tmp_path / "bin.txt", 1)


def test_byte_order_mark_is_ignored(tmp_path):
    (tmp_path / "l.txt").write_bytes("0\tbook\n1\tdrink\n".encode("utf-8-sig"))
    assert load_labels(tmp_path / "l.txt", 2) == ["book", "drink"]
