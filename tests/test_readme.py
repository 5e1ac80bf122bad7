"""The README's example really runs (against the simulator)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from oe_async import PrinterConnection
from oe_async.testing import Simulator

README = Path(__file__).resolve().parent.parent / "README.md"


# Read once at import time (not on the event loop).
README_TEXT = README.read_text(encoding="utf-8")


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README_TEXT, flags=re.S)


def _usage_example() -> dict[str, Any]:
    block = next(b for b in _python_blocks() if "async def report" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    return namespace


async def test_readme_report_runs_against_the_simulator(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    await _usage_example()["report"](printer)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Simulated Printer online"
    assert out[1] == f"upload limit: {1024**3} bytes"
    assert out[2] == "job: Printing"
    assert out[3].startswith("share: https://")


async def test_readme_report_shows_the_offline_message(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.fail(601, origin="relay", path="/api/job")
    await _usage_example()["report"](printer)
    assert "The printer is offline" in capsys.readouterr().out


def test_every_python_block_compiles() -> None:
    for block in _python_blocks():
        compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
