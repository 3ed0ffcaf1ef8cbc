"""The benchmarks' record keeping (``benchmarks/markdown_section.py``): each section of
``docs/benchmarks.md`` is replaced on its own, says when and from which commit it was recorded,
and the JSON results carry the code version too."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.markdown_section import (  # noqa: E402
    code_version,
    command_line,
    record_results,
    write_section,
)


def test_sections_are_replaced_alone_and_stamped_with_the_code(tmp_path):
    doc = tmp_path / "benchmarks.md"
    write_section("one", "## One\nfirst", doc)
    write_section("two", "## Two\nsecond", doc)
    write_section("one", "## One\nagain", doc)
    text = doc.read_text()
    assert "first" not in text and "again" in text and "second" in text
    assert text.index("again") < text.index("second")                 # replaced in place
    stamps = re.findall(r"Recorded \d{4}-\d\d-\d\d \d\d:\d\d UTC from (.+)\.\n", text)
    assert len(stamps) == 2 and all(s == code_version() for s in stamps)
    assert re.fullmatch(r"(commit [0-9a-f]{10}( with uncommitted changes)?, tumorsynth \S+"
                        r"|tumorsynth \S+ \(not a git checkout\))", code_version())


def test_record_results_writes_json_with_the_code_and_the_command(tmp_path, capsys):
    said = []
    record_results("bench_x", {"dsc": 0.5}, "## X\nbody", tmp_path, False, said.append)
    saved = json.loads((tmp_path / "bench_x.json").read_text())
    assert saved == {"dsc": 0.5, "code": code_version()}
    assert "body" in capsys.readouterr().out and said == []
    assert command_line("bench_x.py", ["--seeds", "2", "a b"]) == "python benchmarks/bench_x.py --seeds 2 'a b'"
