"""Leak checks: start and cancel every streaming API over and over, then count what is left.

The simulator runs in a child process (``python -m oe_async.testing``), so this process's
file descriptors and memory are the client's alone. Each API gets ``OE_LEAK_CYCLES`` cycles
(50 in ``make test``, 1,000 in ``make reliability``) after 20 warm-up cycles; a cycle starts
the operation and cancels it at one of three points, in turn:

* after one loop iteration (while connecting),
* after 1 to 16 iterations (handshake, headers, first bytes),
* once data flows (a chunk sent or received, a frame, an open WebSocket).

Targets: 0 connections left acquired, 0 file descriptors gained, < 1 MiB of traced memory
growth (not counting what the harness itself keeps, e.g. captured log records: see
``HARNESS``), 0 "unclosed" warnings or loop error reports, 0 tasks left behind.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from oe_async import AppConnection, FrameStream, OctoEverywhere, PrinterConnection

from .helpers import EVENTUALLY, acquired_connections, open_fds

CYCLES = int(os.environ.get("OE_LEAK_CYCLES", "50"))
WARM_UP = 20
MiB = 1024 * 1024
#: The task that reads a shared webcam stream (ends with its last consumer: linger=0).
SHARED_STREAM = "oe_async shared webcam stream"

Operation = Callable[[PrinterConnection, asyncio.Event], Awaitable[None]]


async def forever() -> None:
    await asyncio.Event().wait()


async def upload(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    async def endless() -> AsyncIterator[bytes]:
        block = bytes(64 * 1024)
        while True:
            yield block
            flowing.set()

    await printer.files.upload("/api/files/local", endless(), filename="endless.gcode")


async def download(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    async with printer.files.download("/downloads/files/local/big.bin") as chunks:
        async for _ in chunks:
            flowing.set()
            await forever()


async def frames(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    async with printer.webcam.frames() as stream:
        async for _ in stream:
            flowing.set()


async def shared_frames(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    # Two consumers of one upstream, cancelled together: the last one leaving ends it.
    async def consume(stream: FrameStream) -> None:
        async with stream:
            async for _ in stream:
                flowing.set()

    streams = [printer.webcam.frames(shared=True, linger=0) for _ in range(2)]
    await asyncio.gather(*(consume(stream) for stream in streams))


async def websocket(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    async with printer.websocket.connect("/websocket") as ws:
        flowing.set()
        async for _ in ws:
            pass
        await forever()


async def subscription(printer: PrinterConnection, flowing: asyncio.Event) -> None:
    sub = printer.websocket.subscribe("/websocket", lambda message: None)
    try:
        await sub.wait_connected()
        flowing.set()
        await forever()
    finally:
        await sub.close()


OPERATIONS: dict[str, Operation] = {
    "upload": upload,
    "download": download,
    "frames": frames,
    "shared_frames": shared_frames,
    "websocket": websocket,
    "subscription": subscription,
}


@pytest_asyncio.fixture
async def remote_simulator() -> AsyncIterator[dict[str, Any]]:
    """The simulator in a child process; its announcement (URLs, App Connection)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "oe_async.testing",
        "--synthetic=big.bin=67108864",
        "--webcam-fps=0",
        "--keep-limit=0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the simulator process did not start"
        yield json.loads(line)
    finally:
        proc.terminate()
        await proc.wait()


async def one_cycle(printer: PrinterConnection, operation: Operation, i: int) -> None:
    flowing = asyncio.Event()
    task = asyncio.create_task(operation(printer, flowing))
    match i % 3:
        case 0:
            await asyncio.sleep(0)
        case 1:
            for _ in range(1 + i % 16):
                await asyncio.sleep(0)
        case _:
            waiter = asyncio.create_task(flowing.wait())
            done, _ = await asyncio.wait(
                {task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            assert flowing.is_set(), f"cycle {i}: nothing flowed ({done})"
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:  # pragma: no cover - the operations never finish on their own
        raise AssertionError(f"cycle {i} finished instead of being cancelled")


async def settled_fds(baseline: int) -> int:
    """Open descriptors, waiting up to EVENTUALLY seconds for closes still in flight."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + EVENTUALLY
    count = await open_fds()
    while count > baseline and loop.time() < give_up:
        await asyncio.sleep(0.05)
        count = await open_fds()
    return count


#: What the test harness itself keeps while the cycles run, not the client's memory: log
#: records captured by pytest (DEBUG, and asyncio debug mode's slow-callback reports), the
#: creation tracebacks asyncio debug mode stores on every handle and task, and the report.
HARNESS = (
    "*/logging/*",
    "*/_pytest/*",
    "*/traceback.py",
    "*/linecache.py",
    "*/asyncio/format_helpers.py",
    "*/tests/conftest.py",
    "*/tests/canary.py",
    tracemalloc.__file__,
)


def harness_free(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces([tracemalloc.Filter(False, pattern) for pattern in HARNESS])


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_start_cancel_cycles_leak_nothing(
    name: str, remote_simulator: dict[str, Any], reliability_report: dict[str, Any]
) -> None:
    operation = OPERATIONS[name]
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    unraisable: list[str] = []
    previous_handler = loop.get_exception_handler()
    previous_hook = sys.unraisablehook
    loop.set_exception_handler(lambda _loop, context: reports.append(str(context.get("message"))))
    sys.unraisablehook = lambda hook_args: unraisable.append(repr(hook_args.exc_value))
    connection = AppConnection.from_dict(remote_simulator["app_connection"])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with OctoEverywhere(
                remote_simulator["app_id"],
                app_api_url=remote_simulator["app_api_url"],
                allow_insecure_loopback=True,
            ) as oe:
                printer = oe.printer(connection)
                for i in range(WARM_UP):
                    await one_cycle(printer, operation, i)
                gc.collect()
                tasks_before = len(asyncio.all_tasks())
                fds_before = await settled_fds(await open_fds())
                tracemalloc.start()
                before = harness_free(tracemalloc.take_snapshot())
                try:
                    for i in range(CYCLES):
                        await one_cycle(printer, operation, i)
                    gc.collect()
                    after = harness_free(tracemalloc.take_snapshot())
                    memory_growth = sum(
                        stat.size_diff for stat in after.compare_to(before, "filename")
                    )
                finally:
                    tracemalloc.stop()
                acquired = acquired_connections(oe)
                fds_gained = await settled_fds(fds_before) - fds_before
                tasks_left = len(asyncio.all_tasks()) - tasks_before
                # A task the warm-up left running would hide in tasks_before.
                streams_left = [
                    t for t in asyncio.all_tasks() if t.get_name() == SHARED_STREAM and not t.done()
                ]
            gc.collect()
            unclosed = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    finally:
        loop.set_exception_handler(previous_handler)
        sys.unraisablehook = previous_hook
    problems = unclosed + [r for r in reports if "nclosed" in r] + unraisable

    reliability_report.setdefault("leaks", {})[name] = {
        "cycles": CYCLES,
        "acquired": acquired,
        "fds_gained": fds_gained,
        "memory_growth": memory_growth,
        "unclosed": len(problems),
        "tasks_left": tasks_left,
        "loop_reports": reports,
    }
    assert acquired == 0
    assert fds_gained <= 0
    assert memory_growth < MiB
    assert problems == []
    assert reports == []
    assert tasks_left <= 0
    assert streams_left == []
