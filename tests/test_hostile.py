"""Hostile servers: every misbehaviour ends in a clear library error, on time, cheaply.

Each case runs twice against :class:`oe_async.testing.hostile.HostileServer` (its own thread,
so the client loop's CPU is the client's alone):

1. untraced, for the figures: elapsed time against the configured timeout ``T`` (a timed
   case must end at ``T`` ±10%; any other within ``T``), event-loop CPU (< 1 s), and 0
   connections left acquired;
2. under ``tracemalloc``, for peak memory (which counts both the client and the server
   thread, so the bounds include what the server allocates to send).

``OE_HOSTILE_TIMEOUT`` sets ``T`` (0.5 s in ``make test``, 2 s in ``make reliability``).
"""

from __future__ import annotations

import os
import time
import tracemalloc
from typing import Any, Literal

import aiohttp
import attrs
import pytest

from oe_async import PrinterConnection, RetryPolicy
from oe_async._http import MAX_JSON_SIZE
from oe_async.errors import (
    CommunicationError,
    OctoEverywhereError,
    RequestTimeoutError,
    UnexpectedResponseError,
)
from oe_async.testing import Simulator
from oe_async.testing.hostile import Behaviour, HostileServer

from .helpers import acquired_connections

T = float(os.environ.get("OE_HOSTILE_TIMEOUT", "0.5"))
#: How long after the timeout a call may still end (a loaded machine, the pre-check first):
#: generous, since what it catches takes far longer (a million bytes dripped at 1,000/s is
#: 1,000 s when each byte restarts a read timeout).
SLACK = 5.0
MiB = 1024 * 1024
#: No retries: the configured timeout is then the whole budget of a call.
ONCE = RetryPolicy(attempts=1)


@attrs.frozen
class Case:
    label: str
    behaviour: Behaviour
    error: type[OctoEverywhereError]
    #: True: the call must end by the configured timeout, at T ±10%.
    timed: bool
    call: Literal["json", "download"] = "json"
    timeout: Literal["total", "sock_read", "sock_connect"] = "total"
    options: dict[str, Any] = attrs.field(factory=dict)
    memory: int = 8 * MiB

    def client_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        if self.timeout == "total":
            return aiohttp.ClientTimeout(total=seconds)
        return aiohttp.ClientTimeout(total=None, **{self.timeout: seconds})


CASES = [
    Case("10,000 headers", "many_headers", CommunicationError, timed=False),
    Case("1 MiB header line", "huge_header_line", CommunicationError, timed=False),
    Case(
        "gzip bomb (256 MiB of JSON)",
        "gzip_bomb",
        UnexpectedResponseError,
        timed=False,
        memory=MAX_JSON_SIZE + 8 * MiB,
    ),
    Case("1,000,000 one-byte chunks", "one_byte_chunks", UnexpectedResponseError, timed=False),
    Case(
        "1,000,000 one-byte chunks (download)",
        "one_byte_chunks",
        UnexpectedResponseError,
        timed=False,
        call="download",
        timeout="sock_read",
    ),
    Case(
        "1,000,000 one-byte chunks, dripped",
        "one_byte_chunks",
        RequestTimeoutError,
        timed=True,
        options={"chunk_rate": 1000},
    ),
    Case("body stops half-way", "stall_body", RequestTimeoutError, timed=True),
    Case(
        "body stops half-way (download)",
        "stall_body",
        RequestTimeoutError,
        timed=True,
        call="download",
        timeout="sock_read",
    ),
    Case("accepts, never answers", "silent", RequestTimeoutError, timed=True),
    Case(
        "listener never accepts",
        "no_accept",
        RequestTimeoutError,
        timed=True,
        timeout="sock_connect",
    ),
]


async def call(printer: PrinterConnection, case: Case) -> None:
    if case.call == "json":
        await printer.get_json("/api/job")
        return
    async with printer.files.download("/downloads/file.gcode") as stream:
        async for _ in stream:
            pass


@attrs.frozen
class Outcome:
    error: BaseException | None
    elapsed: float
    cpu: float
    acquired: int


async def run(sim: Simulator, case: Case, seconds: float) -> Outcome:
    """Run one case against a fresh server and client; time the call alone."""
    timeout = case.client_timeout(seconds)
    async with (
        HostileServer(case.behaviour, **case.options) as server,
        sim.client(retry=ONCE, timeout=timeout, stream_timeout=timeout) as oe,
    ):
        printer = oe.printer(sim.app_connection(url=server.url))
        error: BaseException | None = None
        started, cpu_started = time.monotonic(), time.thread_time()
        try:
            await call(printer, case)
        except Exception as err:
            error = err
        elapsed, cpu = time.monotonic() - started, time.thread_time() - cpu_started
        return Outcome(error, elapsed, cpu, acquired_connections(oe))


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
async def test_hostile_server_ends_in_a_clear_error(
    sim: Simulator, case: Case, reliability_report: dict[str, Any]
) -> None:
    outcome = await run(sim, case, T)
    tracemalloc.start()
    try:
        traced = await run(sim, case, min(T, 0.2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    reliability_report.setdefault("hostile", {})[case.label] = {
        "error": type(outcome.error).__name__,
        "message": str(outcome.error),
        "elapsed": outcome.elapsed,
        "timeout": T,
        "timed": case.timed,
        "cpu": outcome.cpu,
        "peak_bytes": peak,
        "memory_bound": case.memory,
        "acquired": outcome.acquired,
    }
    assert isinstance(outcome.error, case.error), repr(outcome.error)
    assert isinstance(traced.error, case.error), repr(traced.error)
    assert outcome.acquired == traced.acquired == 0
    assert outcome.cpu < 1.0
    assert peak < case.memory
    # The timeout ends the call: not before it, and not long after it (a hang would not end).
    if case.timed:
        assert 0.9 * T <= outcome.elapsed <= T + SLACK, outcome.elapsed
    else:
        assert outcome.elapsed <= T + SLACK, outcome.elapsed
