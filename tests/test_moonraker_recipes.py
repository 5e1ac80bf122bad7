"""The README's Moonraker recipes run as written, against the simulator (Moonraker's shapes)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from oe_async import PrinterConnection
from oe_async.testing import Simulator

from .helpers import polls

ROOT = Path(__file__).resolve().parent.parent
README_TEXT = (ROOT / "README.md").read_text(encoding="utf-8")
SERVER_INFO = (ROOT / "tests" / "fixtures" / "moonraker" / "server_info.json").read_bytes()
KLIPPY_503 = json.dumps(
    json.loads(
        (
            ROOT / "tests" / "fixtures" / "moonraker" / "error_klippy_not_connected_503.json"
        ).read_text(encoding="utf-8")
    )
).encode()


def _recipe(marker: str) -> dict[str, Any]:
    block = next(b for b in re.findall(r"```python\n(.*?)```", README_TEXT, re.S) if marker in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    return namespace


async def test_upload_and_print(printer: PrinterConnection, sim: Simulator, tmp_path: Path) -> None:
    source = tmp_path / "a b ü#1.gcode"
    await asyncio.to_thread(source.write_bytes, b"G28\n")
    assert await _recipe("async def upload_and_print")["upload_and_print"](printer, str(source))
    assert "gcodes/jobs/a b ü#1.gcode" in sim.files


async def test_klipper_state_and_its_error(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    recipes = _recipe("async def klipper_ready")
    sim.fail(200, origin="relay", path="/server/info", body=SERVER_INFO)
    # Recorded without Klipper: Moonraker answers, and says Klipper is not up.
    assert await recipes["klipper_ready"](printer) is False
    sim.fail(503, origin="relay", path="/printer/firmware_restart", body=KLIPPY_503)
    await recipes["restart_firmware"](printer)
    assert capsys.readouterr().out.strip() == "Klippy Host not connected"
    sim.fail(200, origin="relay", path="/printer/print/start", body=b'{"result": "ok"}')
    await recipes["print_existing"](printer, "jobs/part.gcode")
    start = sim.requests_to("relay", "/printer/print/start")[-1]
    assert start.method == "POST"


async def test_identify_then_subscribe(
    printer: PrinterConnection, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.state.ws_interval = 0.05
    sub = _recipe("async def hello(ws")["watch"](printer)
    try:
        async for _ in polls():
            if "'print_stats'" in capsys.readouterr().out:
                break
        else:
            pytest.fail("no notify_status_update arrived")
    finally:
        await sub.close()
    sent = [m.get("method") for _, m in sim.ws_received if isinstance(m, dict)]
    assert sent[:2] == ["server.connection.identify", "printer.objects.subscribe"]
