"""A WebSocket ping flood, with the hostile server in another process (issue 19, finding 1).

The server (tests/ws_hostile.py's hand-written WebSocket server) runs in a child process and
sends 500 KB of empty pings right after the upgrade, then one text message. The client
reads one message, either through ``printer.websocket.connect()`` (oe_async answers pings
itself, at most 50 a second, then ends the socket with ``UnexpectedResponseError``) or
through raw aiohttp's ``ws_connect()`` (which answers every ping). For each, side by side in
one run, it prints the longest the event loop went without running a 1 ms sleeper, and the
client's CPU time. The in-process test (tests/test_websocket_hostile.py) runs the server in
a thread, whose share of the GIL shows up as client stalls; here it cannot.

    .venv/bin/python benchmarks/ws_flood.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oe_async import AppConnection, BasicAuth, OctoEverywhere, OctoEverywhereError  # noqa: E402

SERVER = """
import asyncio, sys
from tests.ws_hostile import HostileWebSocket, ping, text
async def main():
    async with HostileWebSocket(on_open=ping(b"") * 250_000 + text("{}")) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


async def measure(work: Callable[[], Awaitable[Any]]) -> tuple[float, float, str]:
    loop = asyncio.get_running_loop()
    worst = 0.0
    stop = asyncio.Event()

    async def sleeper() -> None:
        nonlocal worst
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            worst = max(worst, now - last)
            last = now

    gc.collect()
    gc.disable()
    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0.01)
    cpu0 = time.process_time()
    try:
        await work()
        outcome = "a message"
    except OctoEverywhereError as err:
        outcome = type(err).__name__
    finally:
        cpu = time.process_time() - cpu0
        stop.set()
        await task
        gc.enable()
    return worst, cpu, outcome


async def main(rounds: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        conn = AppConnection(
            url=url,
            auth=BasicAuth("u", "p"),
            allow_insecure_loopback=True,
        )
        results: dict[str, list[tuple[float, float, str]]] = {"oe_async": [], "raw aiohttp": []}
        async with aiohttp.ClientSession() as session, OctoEverywhere("bench") as oe:
            printer = oe.printer(conn)

            async def via_oe() -> None:
                async with printer.websocket.connect("/websocket") as ws:
                    await ws.receive()

            async def via_raw() -> None:
                async with session.ws_connect(url + "websocket") as ws:
                    await ws.receive()

            for i in range(rounds):
                order = [("oe_async", via_oe), ("raw aiohttp", via_raw)]
                for name, work in order if i % 2 == 0 else reversed(order):
                    results[name].append(await measure(work))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print("500 KB of empty pings from a server in another process, then one message")
    for name, runs in results.items():
        lags = [1000 * r[0] for r in runs]
        cpus = [1000 * r[1] for r in runs]
        print(
            f"{name:12s} worst loop stall {min(lags):.1f}-{max(lags):.1f} ms "
            f"(median {statistics.median(lags):.1f}); CPU {min(cpus):.0f}-{max(cpus):.0f} ms; "
            f"ends with {runs[0][2]}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
