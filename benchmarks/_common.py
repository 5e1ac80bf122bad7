"""Shared benchmark helpers: the simulator in its own process, timing, RSS, loop lag."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any


@contextlib.contextmanager
def simulator_process(*extra: str) -> Iterator[dict[str, Any]]:
    """Run ``python -m oe_async.testing`` in a child process; yield its announcement."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "oe_async.testing", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process did not start")
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class LoopLag:
    """Measure the worst event-loop lag: a ticker that should wake every ``interval``."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.worst = max(self.worst, loop.time() - start - self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopLag]:
        self._task = asyncio.create_task(self._tick())
        try:
            yield self
        finally:
            self._task.cancel()
            await asyncio.wait({self._task})


async def alternate(
    rounds: int, contenders: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, list[float]]:
    """Run each contender once per round, alternating order, and collect their figures."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for i in range(rounds):
        order = names if i % 2 == 0 else list(reversed(names))
        for name in order:
            results[name].append(await contenders[name]())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def now() -> float:
    return time.perf_counter()
