"""One client, many printers: pollers, webcam streams and subscriptions at once (issue 14).

The simulator runs in a separate process and serves every printer on a loopback host of its
own (``sim.add_printer()``: 127.1.x.y), with its own credentials. One ``OctoEverywhere``
client then runs, for ``--seconds`` (default 30):

* ``--printers`` (1,000) printer connections, each polling ``GET /api/printer`` every 5 s
  (start times spread over the first interval), with a 2 s timeout;
* ``--streams`` (300) webcam ``frames()`` streams at the simulator's 15 fps, on distinct
  printers;
* ``--subscriptions`` (100) WebSocket ``subscribe()`` tasks on the OctoPrint push socket.

and prints, for the owned session and for a borrowed ``aiohttp.ClientSession()`` with
aiohttp's defaults: starved streams (no frame at all), streams refused with
``ConnectionPoolExhaustedError`` (the clear error), poll failures, p50/p99 poll latency,
client CPU as a fraction of one core, RSS, RSS per printer connection and the worst
event-loop lag. A last phase borrows a deliberately small pool (``limit=20``) with 50 streams
and reports how fast the refused ones got the clear error.

Targets on a 2-core machine (owned session): 0 starved, 0 failed, p99 < 250 ms, < 0.6 of a
core, RSS < 250 MiB. Run: ``.venv/bin/python benchmarks/scale.py`` (``--quick`` for a small
smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LoopLag, rss_bytes, simulator_process

from oe_async import (
    AppConnection,
    ConnectionPoolExhaustedError,
    OctoEverywhere,
    OctoEverywhereError,
    PrinterConnection,
    RetryPolicy,
)

POLL_INTERVAL = 5.0
POLL_TIMEOUT = 2.0
MiB = 1024 * 1024


class Figures:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.poll_failures: dict[str, int] = {}
        self.frames: list[int] = []
        self.first_frame: list[float | None] = []
        self.ended: list[bool] = []  # the stream ended with an error
        self.refused: list[float] = []  # seconds until ConnectionPoolExhaustedError
        self.stream_errors: dict[str, int] = {}
        self.messages = 0
        self.measuring = False  # after the warm-up (start-up burst excluded)


async def poller(printer: PrinterConnection, figs: Figures, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(random.uniform(0, POLL_INTERVAL))
    next_at = loop.time()
    while not stop.is_set():
        began = loop.time()
        try:
            await printer.get_json("/api/printer", timeout=POLL_TIMEOUT)
            if figs.measuring:
                figs.latencies.append(loop.time() - began)
        except OctoEverywhereError as err:
            name = type(err).__name__
            figs.poll_failures[name] = figs.poll_failures.get(name, 0) + 1
        next_at += POLL_INTERVAL
        await asyncio.sleep(max(0.0, next_at - loop.time()))


async def streamer(printer: PrinterConnection, figs: Figures, index: int) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        async with printer.webcam.frames() as frames:
            async for _ in frames:
                if figs.first_frame[index] is None:
                    figs.first_frame[index] = loop.time() - began
                figs.frames[index] += 1
    except ConnectionPoolExhaustedError:
        figs.refused.append(loop.time() - began)
        figs.ended[index] = True
    except OctoEverywhereError as err:
        figs.ended[index] = True
        name = type(err).__name__
        figs.stream_errors[name] = figs.stream_errors.get(name, 0) + 1


async def run_phase(
    name: str,
    conns: list[dict[str, Any]],
    app: dict[str, Any],
    args: argparse.Namespace,
    session: aiohttp.ClientSession | None,
) -> dict[str, Any]:
    figs = Figures()
    figs.frames = [0] * args.streams
    figs.first_frame = [None] * args.streams
    figs.ended = [False] * args.streams
    gc.collect()
    rss_before = rss_bytes()
    oe = OctoEverywhere(
        app["app_id"],
        session=session,
        app_api_url=app["app_api_url"],
        allow_insecure_loopback=True,
        retry=RetryPolicy(attempts=2, base_delay=0.2),
    )
    printers = [oe.printer(AppConnection.from_dict(c)) for c in conns[: args.printers]]
    gc.collect()
    rss_printers = rss_bytes()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    subs = []

    def on_message(_: aiohttp.WSMessage) -> None:
        figs.messages += 1

    lag = LoopLag(interval=0.01)
    loop = asyncio.get_running_loop()
    async with lag.running():
        started = loop.time()
        tasks += [asyncio.create_task(poller(p, figs, stop)) for p in printers]
        tasks += [asyncio.create_task(streamer(printers[i], figs, i)) for i in range(args.streams)]
        for i in range(args.subscriptions):
            p = printers[args.streams + i]
            subs.append(p.websocket.subscribe("/sockjs/websocket", on_message))
        await asyncio.sleep(args.warmup)
        startup_lag = lag.worst
        lag.worst = 0.0
        figs.measuring = True
        cpu0, wall0 = time.process_time(), loop.time()
        await asyncio.sleep(args.seconds)
        first = [f for f in figs.first_frame if f is not None]
        cpu = time.process_time() - cpu0
        wall = loop.time() - wall0
        rss_peak = rss_bytes()
        stop.set()
        for sub in subs:
            await sub.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await oe.close()
    lat = sorted(figs.latencies)
    streaming = [f for f in figs.frames if f]
    # Starved: no frame, and no error to say why (a refused stream got the clear error).
    starved = sum(1 for i, f in enumerate(figs.frames) if f == 0 and not figs.ended[i])
    return {
        "phase": name,
        "polls": len(lat),
        "poll_failures": figs.poll_failures,
        "p50_ms": 1000 * statistics.median(lat) if lat else None,
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else None,
        "streams_running": len(streaming),
        "starved": starved,
        "refused": len(figs.refused),
        "refused_after_s": (min(figs.refused), max(figs.refused)) if figs.refused else None,
        "stream_errors": figs.stream_errors,
        "fps_mean": (statistics.mean(streaming) / (args.seconds + args.warmup))
        if streaming
        else 0.0,
        "ws_messages": figs.messages,
        "cpu_cores": cpu / wall,
        "rss_mib": rss_peak / MiB,
        "rss_per_printer_kib": (rss_printers - rss_before) / 1024 / max(1, len(printers)),
        "worst_lag_ms": 1000 * lag.worst,
        "startup_lag_ms": 1000 * startup_lag,
        "all_streaming_after_s": max(first) if first else None,
        "since": started,
    }


def show(result: dict[str, Any]) -> None:
    r = result
    print(f"\n== {r['phase']} ==")
    print(
        f"polls {r['polls']:,}  failures {r['poll_failures'] or 0}  "
        f"p50 {r['p50_ms'] or 0:.1f} ms  p99 {r['p99_ms'] or 0:.1f} ms"
    )
    refused = r["refused_after_s"]
    print(
        f"streams running {r['streams_running']}  starved {r['starved']}  "
        f"refused with ConnectionPoolExhaustedError {r['refused']}"
        + (f" (after {refused[0]:.1f}-{refused[1]:.1f} s)" if refused else "")
        + f"  other stream errors {r['stream_errors'] or 0}  mean fps {r['fps_mean']:.1f}"
    )
    print(
        f"WebSocket messages {r['ws_messages']:,}  client CPU {r['cpu_cores']:.2f} core  "
        f"RSS {r['rss_mib']:.0f} MiB ({r['rss_per_printer_kib']:.1f} KiB per printer "
        f"connection)  worst loop lag {r['worst_lag_ms']:.0f} ms"
    )
    after = r["all_streaming_after_s"]
    print(
        f"start-up (excluded above): worst loop lag {r['startup_lag_ms']:.0f} ms"
        + (f", last stream's first frame after {after:.1f} s" if after is not None else "")
    )


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = args.printers
    with simulator_process("--printers", str(need), "--webcam-fps", str(args.fps)) as app:
        conns = app["printers"]
        print(
            f"{args.printers:,} printers polling every {POLL_INTERVAL:g} s, {args.streams} "
            f"webcam streams at {args.fps:g} fps, {args.subscriptions} subscriptions, "
            f"{args.seconds:g} s per phase (fd limit {soft} -> {hard})"
        )
        results = [await run_phase("owned session", conns, app, args, None)]
        show(results[-1])
        async with aiohttp.ClientSession() as session:
            results.append(
                await run_phase(
                    "borrowed aiohttp.ClientSession() (defaults)", conns, app, args, session
                )
            )
        show(results[-1])
        small = argparse.Namespace(
            **{
                **vars(args),
                "streams": 50,
                "subscriptions": 0,
                "printers": 100,
                "seconds": 13.0,
            }
        )
        connector = aiohttp.TCPConnector(limit=20)
        async with aiohttp.ClientSession(connector=connector) as session:
            results.append(
                await run_phase("borrowed pool of 20, 50 streams", conns, app, small, session)
            )
        show(results[-1])
        owned = results[0]
        ok = (
            owned["starved"] == 0
            and not owned["poll_failures"]
            and not owned["stream_errors"]
            and owned["refused"] == 0
            and (owned["p99_ms"] or 0) < 250
            and owned["cpu_cores"] < 0.6
            and owned["rss_mib"] < 250
        )
        print(
            f"\nowned-session targets (0 starved/failed, p99 < 250 ms, < 0.6 core, RSS < 250 MiB): "
            f"{'met' if ok else 'NOT met'}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--printers", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured, after warm-up")
    parser.add_argument("--warmup", type=float, default=6.0, help="start-up burst, not measured")
    parser.add_argument("--quick", action="store_true", help="100 printers, 30 streams, 10 s")
    ns = parser.parse_args()
    if ns.quick:
        ns.printers, ns.streams, ns.subscriptions, ns.seconds = 100, 30, 10, 10.0
    asyncio.run(main(ns))
