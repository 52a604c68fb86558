"""The tests bench/README.md names (its table of issue 14's findings) exist, so the table cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_the_bench_readme_names_exists():
    text = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    named, current = [], None
    # `tests/x.py::test_y` names a file and a test; a following `::test_z` is another test in that file
    for match in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", text):
        path, test, same_file_test = match.groups()
        current = path or current
        named.append((current, test or same_file_test))
    assert len(named) > 15
    for path, test in named:
        source = (REPO / path).read_text(encoding="utf-8")
        assert test is None or f"def {test}(" in source, f"{path}::{test} is named in bench/README.md but missing"
