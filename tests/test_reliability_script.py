"""scripts/reliability.py keeps the hand-written "Security review" rows when it rebuilds
RELIABILITY.md (verbatim, in order, after the generated rows)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability.py"

KEPT = [
    "| Security review 1: first | `test_a`: 3 cases | 0 requests | yes |",
    "| Security review round 3, finding 2: second | `test_b` (a | b) | given up | NO |",
    "| Security review 12: third | `test_c` | clear error | yes |",
]
OLD_REPORT = "\n".join(
    [
        "# Reliability report",
        "",
        "Generated on an earlier day.",
        "",
        "| Check | Figure | Target | Pass |",
        "|---|---|---|---|",
        "| Hostile: an old row | stale | clear error | yes |",
        KEPT[0],
        "| Matrix: an old row | stale | green | yes |",
        KEPT[1],
        KEPT[2],
        "",
        "Security review rows outside the table are not rows: | Security review x |",
    ]
)


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script as a module, its results directory and report in ``tmp_path``."""
    spec = importlib.util.spec_from_file_location("reliability_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "OUT", tmp_path / ".reliability")
    return module


def test_kept_rows_are_the_security_review_rows_verbatim(script: ModuleType) -> None:
    assert script.kept_rows(OLD_REPORT) == KEPT
    assert [script.kept_row_failed(line) for line in KEPT] == [False, True, False]


def _record_runs(out: Path) -> None:
    out.mkdir()
    hostile = {"green": True, "summary": "2 passed", "report": {}, "when": "then"}
    suite = {
        "green": True,
        "summary": "9 passed",
        "report": {"canary": {"tests": 9, "checked": {"log": 3}, "leaks": 0}},
        "when": "then",
    }
    (out / "hostile.json").write_text(json.dumps(hostile))
    (out / "suite.json").write_text(json.dumps(suite))


def test_rebuilding_the_table_keeps_them_after_the_generated_rows(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_runs(tmp_path / ".reliability")
    (tmp_path / "RELIABILITY.md").write_text(OLD_REPORT)

    assert script.write_table() == 1  # the kept row marked NO is a missed target
    assert "1 check(s) missed their target" in capsys.readouterr().out
    lines = (tmp_path / "RELIABILITY.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert rows[-3:] == KEPT
    assert not any("an old row" in line for line in lines)  # generated rows are rebuilt
    assert all(not line.startswith("| Security review") for line in rows[:-3])

    # Rebuilt again from its own output: the same rows, once each.
    script.write_table()
    again = (tmp_path / "RELIABILITY.md").read_text().splitlines()
    assert [line for line in again if line.startswith("| Security review")] == KEPT


def test_no_report_yet_means_no_kept_rows(script: ModuleType, tmp_path: Path) -> None:
    _record_runs(tmp_path / ".reliability")
    assert script.write_table() == 0
    text = (tmp_path / "RELIABILITY.md").read_text()
    assert "| Security review" not in text
    assert text.count("| No blocking calls on the loop") == 1
