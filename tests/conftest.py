"""Shared fixtures: the public simulator plugin plus TLS material and a foreign origin."""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import logging
import os
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme
from blockbuster import BlockBuster, BlockBusterFunction
from hypothesis import settings

from oe_async import OctoEverywhere, PrinterConnection, RetryPolicy
from oe_async.testing import Simulator

from .canary import SecretWatch
from .helpers import RecordingServer

pytest_plugins = ["oe_async.testing.pytest_plugin"]

# Hypothesis profiles: "quick" in make test; "fuzz" (>= 100,000 examples per property) on
# demand with `pytest --hypothesis-profile=fuzz -m fuzz` or `make fuzz`.
settings.register_profile("quick", max_examples=150, deadline=None)
# The fuzz profile's deadline reports a hang: no example may take 5 s.
settings.register_profile("fuzz", max_examples=100_000, deadline=5000)
# A few minutes instead of hours, for a quick look before a long run.
settings.register_profile("fuzz-smoke", max_examples=2_000, deadline=5000)
settings.load_profile("quick")


#: ``OE_LOOP_DEBUG=1``: every test loop runs in asyncio debug mode and reports each callback
#: that holds the loop for more than SLOW_CALLBACK seconds; the slowest go to the report.
LOOP_DEBUG = os.environ.get("OE_LOOP_DEBUG") == "1"
SLOW_CALLBACK = 0.005


def _debug_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK
    return loop


#: Thread CPU time when the running callback started (set by the debug-mode Handle._run).
_CALLBACK_CPU_START = [0.0]

if LOOP_DEBUG:
    _handle_run = asyncio.events.Handle._run

    def _timed_run(self: asyncio.Handle) -> None:
        # asyncio reports a slow callback right after it returns: the thread CPU time since
        # this start is its CPU time, free of the time other processes held this core.
        _CALLBACK_CPU_START[0] = time.thread_time()
        _handle_run(self)

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]

    def pytest_configure(config: pytest.Config) -> None:
        config.option.asyncio_debug = True  # pytest-asyncio's --asyncio-debug

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {"debug": _debug_loop}


class _SlowCallbacks(logging.Handler):
    """Collects asyncio's "Executing <handle> took N seconds" debug-mode reports.

    Garbage-collector pauses land in whichever callback happened to allocate, so each
    report also carries the GC time inside its window: ``own`` is the callback's wall time
    without it. ``own_cpu`` is its thread CPU time without it: on a shared machine the wall
    time also counts the moments another process held the core, so ``own_cpu`` is the
    figure the < 50 ms target is judged on (both are reported).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.test = ""
        self.seen: list[dict[str, Any]] = []
        self.gc_pauses: collections.deque[tuple[float, float]] = collections.deque(maxlen=4096)
        self._gc_started = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        else:
            self.gc_pauses.append((self._gc_started, time.monotonic()))

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != "Executing %s took %.3f seconds" or not isinstance(record.args, tuple):
            return
        handle, seconds = record.args
        cpu = time.thread_time() - _CALLBACK_CPU_START[0]
        end = time.monotonic()
        start = end - float(seconds)
        # A collection may start while this runs (and append to the deque): sum a copy,
        # taken with the collector off.
        enabled = gc.isenabled()
        gc.disable()
        try:
            pauses = tuple(self.gc_pauses)
        finally:
            if enabled:
                gc.enable()
        in_gc = sum(max(0.0, min(end, stop) - max(start, begin)) for begin, stop in pauses)
        where = str(handle).split(" created at ")[0]
        self.seen.append(
            {
                "seconds": float(seconds),
                "gc": in_gc,
                "own": max(0.0, float(seconds) - in_gc),
                "cpu": cpu,
                "own_cpu": max(0.0, min(cpu, float(seconds)) - in_gc),
                "test_code": "/tests/" in where,
                "test": self.test,
                "handle": str(handle)[:300],
            }
        )


@pytest.fixture(scope="session")
def slow_callbacks(reliability_report: dict[str, Any]) -> Iterator[_SlowCallbacks]:
    handler = _SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    gc.callbacks.append(handler.on_gc)
    yield handler
    gc.callbacks.remove(handler.on_gc)
    logger.removeHandler(handler)
    if LOOP_DEBUG:
        library = [s for s in handler.seen if not s["test_code"]]
        pauses = [stop - begin for begin, stop in handler.gc_pauses]
        reliability_report["loop_debug"] = {
            "threshold": SLOW_CALLBACK,
            "reports": len(handler.seen),
            "slowest_gc_pause": max(pauses, default=0.0),
            "slowest_own": sorted(library, key=lambda s: s["own"], reverse=True)[:10],
            "slowest_own_cpu": sorted(library, key=lambda s: s["own_cpu"], reverse=True)[:10],
            "slowest_own_cpu_hostile": sorted(
                (s for s in library if "test_hostile" in s["test"]),
                key=lambda s: s["own_cpu"],
                reverse=True,
            )[:3],
            "slowest_with_gc": sorted(library, key=lambda s: s["seconds"], reverse=True)[:10],
            "slowest_test_code": sorted(
                (s for s in handler.seen if s["test_code"]),
                key=lambda s: s["seconds"],
                reverse=True,
            )[:5],
        }


@pytest.fixture(autouse=True)
def _name_slow_callbacks(request: pytest.FixtureRequest, slow_callbacks: _SlowCallbacks) -> None:
    slow_callbacks.test = request.node.nodeid


#: Where blocking calls are looked for: the library (with simulator and CLI) and the tests.
SCANNED = ["oe_async", "tests"]


@pytest.fixture(autouse=True)
def _no_memory_tracing_left_on() -> Iterator[None]:
    """Stop a ``tracemalloc`` trace a test left running (say, interrupted by pytest-timeout
    between ``start()`` and ``stop()``): a later test's ``start()`` would then be a no-op and
    its peak would count every allocation since (31 MiB "for a 100 MiB upload" that takes 2)."""
    yield
    if tracemalloc.is_tracing():
        tracemalloc.stop()


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """Fail any test whose event-loop thread makes a blocking call (open, stat, read, write,
    listdir, sleep...) from oe_async (library, simulator, CLI) or from the tests themselves:
    the calls Home Assistant flags. Executor threads are allowed to block.

    blockbuster watches the reads and writes but not ``open()`` itself: that is added here
    (``builtins.open`` and ``io.open``, which ``Path.open`` uses)."""
    guard = BlockBuster(SCANNED)
    for name in ("builtins.open", "io.open"):
        guard.functions[name] = (
            BlockBusterFunction(None, name, scanned_modules=SCANNED)
            # Wrapping an already-open pipe descriptor when asyncio starts a subprocess:
            # no file system access.
            .can_block_in("asyncio/unix_events.py", "_start")
            .can_block_in("subprocess.py", "__init__")
        )
    guard.activate()
    try:
        yield guard
    finally:
        guard.deactivate()


@pytest.fixture(autouse=True)
def secrets_never_leak(
    request: pytest.FixtureRequest, reliability_report: dict[str, Any]
) -> Iterator[SecretWatch]:
    """Fail any test after which a simulator secret shows up in a log record (any level,
    DEBUG for oe_async and aiohttp), an error message or repr, the repr of any library
    object, or a printer's diagnostics (see tests/canary.py).

    Property-based tests are not watched: their inputs are arbitrary, and Hypothesis also
    draws string constants found in this repository's source, SECRET_MARKER included, so
    a model echoing its own input (a webcam named after the marker) would read as a leak.
    No simulator secret is handed to the library in those tests.
    """
    if getattr(getattr(request.node, "obj", None), "is_hypothesis_test", False):
        yield SecretWatch()  # never entered: watches nothing
        return
    with SecretWatch() as watch:
        yield watch
    totals = reliability_report.setdefault("canary", {"tests": 0, "checked": {}, "leaks": 0})
    totals["tests"] += 1
    totals["leaks"] += len(watch.leaks)
    for kind, count in watch.checked.items():
        totals["checked"][kind] = totals["checked"].get(kind, 0) + count
    assert not watch.leaks, "secrets leaked:\n" + "\n".join(watch.leaks)


@pytest.fixture(scope="session")
def reliability_report() -> Iterator[dict[str, Any]]:
    """Figures tests record for `make reliability` (scripts/reliability.py).

    Merged into the JSON file named by ``OE_RELIABILITY_REPORT`` at the end of the session;
    without it the figures are only asserted, not written.
    """
    report: dict[str, Any] = {}
    yield report
    target = os.environ.get("OE_RELIABILITY_REPORT")
    if target and report:
        path = Path(target)
        merged = json.loads(path.read_text()) if path.exists() else {}
        merged.update(report)
        path.write_text(json.dumps(merged, indent=2))


#: Retries without waiting, so tests that exercise them stay fast.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


@pytest_asyncio.fixture
async def sim(oe_simulator: Simulator) -> Simulator:
    return oe_simulator


@pytest_asyncio.fixture
async def oe(sim: Simulator) -> AsyncIterator[OctoEverywhere]:
    async with sim.client(retry=FAST_RETRY) as client:
        yield client


@pytest_asyncio.fixture
async def printer(oe: OctoEverywhere, sim: Simulator) -> PrinterConnection:
    return oe.printer(sim.app_connection())


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "127.0.0.2", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest_asyncio.fixture
async def tls_session(client_ssl: ssl.SSLContext) -> AsyncIterator[aiohttp.ClientSession]:
    """A session that trusts the test CA (borrowed by clients under test)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl)) as s:
        yield s


@pytest_asyncio.fixture
async def foreign() -> AsyncIterator[RecordingServer]:
    """An unrelated origin on loopback that records what reaches it."""
    async with RecordingServer() as server:
        yield server
