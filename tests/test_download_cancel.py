"""Cancelling ``download_to`` while its final rename runs leaves ``dest`` as it was.

The rename runs in the executor and cannot be stopped; the executor below makes it slow (a
hook around the library's own install step, in a real worker thread) so the cancellation
lands while it runs, before or after the rename itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from oe_async import PrinterConnection
from oe_async.testing import Simulator
from oe_async.transfer import _sinks

NEW = b"G1 X1\n" * 50_000
OLD = b"previous content"


class _SlowDecision(dict[str, str]):
    """The install step's view of the shared decision, slowed down after the rename."""

    def __init__(self, shared: dict[str, str], started: threading.Event, delay: float) -> None:
        super().__init__()
        self._shared = shared
        self._started = started
        self._delay = delay

    def setdefault(self, key: str, default: str, /) -> str:  # type: ignore[override]
        self._started.set()  # the rename is done: the loop cancels now
        time.sleep(self._delay)
        return self._shared.setdefault(key, default)


class SlowInstall(ThreadPoolExecutor):
    """A default executor that holds the install step for ``delay`` seconds."""

    def __init__(self, *, delay: float, after_rename: bool) -> None:
        super().__init__(max_workers=4)
        self.started = threading.Event()
        self.delay = delay
        self.after_rename = after_rename
        self.installs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if fn is not _sinks.install:
            return super().submit(fn, *args, **kwargs)
        self.installs += 1
        if self.after_rename:
            temp, dest, shared = args
            return super().submit(fn, temp, dest, _SlowDecision(shared, self.started, self.delay))

        def slow(*inner: Any) -> Any:
            self.started.set()
            time.sleep(self.delay)
            return fn(*inner)

        return super().submit(slow, *args, **kwargs)


@pytest.fixture
def slow_install(request: pytest.FixtureRequest) -> SlowInstall:
    """The test makes it the running loop's default executor; the loop shuts it down."""
    return SlowInstall(delay=0.3, after_rename=request.param)


async def listdir(path: Path) -> list[str]:
    return sorted(p.name for p in await asyncio.to_thread(lambda: list(path.iterdir())))


async def _cancel_during_install(
    printer: PrinterConnection, executor: SlowInstall, dest: Path
) -> None:
    task = asyncio.create_task(printer.files.download_to("/downloads/files/local/n.gcode", dest))
    while not executor.started.is_set():
        assert not task.done(), task
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("slow_install", [False, True], indirect=True, ids=["before", "after"])
async def test_cancel_during_the_rename_keeps_the_old_dest(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, slow_install: SlowInstall
) -> None:
    asyncio.get_running_loop().set_default_executor(slow_install)
    sim.files.add("n.gcode", NEW)
    dest = tmp_path / "n.gcode"
    await asyncio.to_thread(dest.write_bytes, OLD)
    await _cancel_during_install(printer, slow_install, dest)
    assert slow_install.installs == 1
    assert await asyncio.to_thread(dest.read_bytes) == OLD
    assert await listdir(tmp_path) == ["n.gcode"]  # no temporary file, no backup


@pytest.mark.parametrize("slow_install", [False, True], indirect=True, ids=["before", "after"])
async def test_cancel_during_the_rename_leaves_no_dest_when_there_was_none(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, slow_install: SlowInstall
) -> None:
    asyncio.get_running_loop().set_default_executor(slow_install)
    sim.files.add("n.gcode", NEW)
    await _cancel_during_install(printer, slow_install, tmp_path / "n.gcode")
    assert await listdir(tmp_path) == []


@pytest.mark.parametrize("slow_install", [False, True], indirect=True, ids=["before", "after"])
async def test_an_uncancelled_slow_rename_replaces_dest(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path, slow_install: SlowInstall
) -> None:
    asyncio.get_running_loop().set_default_executor(slow_install)
    sim.files.add("n.gcode", NEW)
    dest = tmp_path / "n.gcode"
    await asyncio.to_thread(dest.write_bytes, OLD)
    assert await printer.files.download_to("/downloads/files/local/n.gcode", dest) == dest
    assert await asyncio.to_thread(dest.read_bytes) == NEW
    assert await listdir(tmp_path) == ["n.gcode"]  # the backup of the old file is gone


async def test_a_symlinked_dest_is_restored_as_a_link(
    printer: PrinterConnection, sim: Simulator, tmp_path: Path
) -> None:
    executor = SlowInstall(delay=0.3, after_rename=True)
    asyncio.get_running_loop().set_default_executor(executor)
    sim.files.add("n.gcode", NEW)
    target = tmp_path / "target.gcode"
    dest = tmp_path / "n.gcode"
    await asyncio.to_thread(target.write_bytes, OLD)
    await asyncio.to_thread(dest.symlink_to, target)
    await _cancel_during_install(printer, executor, dest)
    assert await asyncio.to_thread(dest.is_symlink)
    assert await asyncio.to_thread(dest.read_bytes) == OLD
    assert await listdir(tmp_path) == ["n.gcode", "target.gcode"]
