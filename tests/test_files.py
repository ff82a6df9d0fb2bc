"""negrec.files.append_csv: the benches' long CSVs."""

from __future__ import annotations

import csv

import pytest

from negrec.files import append_csv


def read(path):
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_append_csv_writes_the_header_once_then_rows(tmp_path):
    path = tmp_path / "sub" / "bench.csv"
    append_csv(path, [{"a": 1, "b": "x,y"}])
    append_csv(path, [{"a": 2, "b": "z"}, {"a": 3, "b": ""}])
    assert read(path) == [["a", "b"], ["1", "x,y"], ["2", "z"], ["3", ""]]
    append_csv(path, [])  # nothing to append: the file is untouched
    assert len(read(path)) == 4
    empty = tmp_path / "empty.csv"
    empty.touch()  # an empty file (e.g. left by an interrupted run) gets the header
    append_csv(empty, [{"a": 1}])
    assert read(empty) == [["a"], ["1"]]


def test_append_csv_refuses_rows_under_another_header(tmp_path):
    path = tmp_path / "bench.csv"
    append_csv(path, [{"a": 1, "b": 2}])
    with pytest.raises(ValueError, match=r"its columns are \['a', 'b'\], these rows' are \['a', 'c'\]"):
        append_csv(path, [{"a": 1, "c": 2}])
    with pytest.raises(ValueError, match=r"row 1 has the keys \['a'\]; expected the columns \['a', 'b'\]"):
        append_csv(path, [{"a": 1, "b": 2}, {"a": 1}])
    with pytest.raises(ValueError, match=r"row 0 has the keys \['a', 'b'\]; expected the columns \['a', 'b', 'c'\]"):
        append_csv(path, [{"a": 1, "b": 2}], fields=["a", "b", "c"])
    assert read(path) == [["a", "b"], ["1", "2"]]  # nothing written by any of these calls
    # the columns' order is the file's, whatever the order of a row's keys
    append_csv(path, [{"b": 4, "a": 3}], fields=["a", "b"])
    assert read(path)[-1] == ["3", "4"]
