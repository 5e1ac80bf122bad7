"""One client, many printers: pollers, webcam streams and subscriptions at once (issues 14, 31).

The simulator runs in a separate process and serves every printer on a loopback host of its
own (``sim.add_printer()``: 127.1.x.y), with its own credentials; with ``--tls`` every host
is served over https with a certificate for its address from a certificate authority made
for the run (``python -m oe_async.testing --tls``), which the clients trust through an
``ssl.SSLContext``. Each phase then runs in a fresh process of its own (so its RSS is its
own), for ``--warmup`` seconds and then a measured window of ``--seconds``; with
``--together`` (the default with ``--tls``) all phases run at the same time, so the load of a
shared machine falls on each alike and their ratios compare like with like:

* ``--printers`` printer connections, each polling ``GET /api/printer`` every
  ``--interval`` seconds (start times spread over the first interval), with a 2 s timeout;
* ``--streams`` webcam ``frames()`` streams at the simulator's fps, on distinct printers;
* ``--subscriptions`` WebSocket ``subscribe()`` tasks on the OctoPrint push socket.

Phases (``--phases``):

* ``owned``: ``OctoEverywhere`` with the session it owns (the library's keep-alive, 70 s);
* ``capped``: the same with ``ConnectionBudget(max_idle=--max-idle)``;
* ``raw``: the same polls with raw aiohttp (``TCPConnector`` with the owned session's pool
  size and keep-alive, the same ``SSLContext``): the side-by-side baseline (polls only);
* ``raw-default``: raw aiohttp with aiohttp's defaults (15 s keep-alive; polls only);
* ``borrowed``: ``OctoEverywhere`` on a borrowed ``aiohttp.ClientSession()`` (defaults);
* ``small``: a borrowed pool of 20 with 50 streams and 100 printers (how fast the refused
  streams get the clear error).

Each phase first polls every printer once (opening its connection) and measures RSS with
every connection idle, then the CPU of the idle loop (``--baseline`` s), then starts the
pollers. It prints polls, failures, p50/p99 latency, client CPU (a fraction of one core, and
per poll above the idle loop's), **new connections per poll** in the window (counted at the
event loop: every ``create_connection``), RSS and RSS per printer connection idle and while
polling, open file descriptors and the worst event-loop lag.

Defaults, plain http: 1,000 printers every 5 s + 300 streams + 100 subscriptions, phases
owned, borrowed, small (targets: 0 starved, 0 failed, p99 < 250 ms, < 0.6 core, RSS < 250
MiB). With ``--tls``: 1,000 printers every 30 s (Home Assistant's interval), polls only,
phases owned, raw, capped, a 40 s warm-up and a 60 s window (about 2 minutes a phase); target:
at most 1 % new connections per poll on the owned session.

    .venv/bin/python benchmarks/scale.py [--quick]
    .venv/bin/python benchmarks/scale.py --tls [--printers 1000 --interval 30 --seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LoopLag, rss_bytes, simulator_process

from oe_async import (
    AppConnection,
    ConnectionBudget,
    ConnectionPoolExhaustedError,
    OctoEverywhere,
    OctoEverywhereError,
    PrinterConnection,
    RetryPolicy,
)

POLL_TIMEOUT = 2.0
STATUS = "/api/printer"
MiB = 1024 * 1024
#: The owned session's keep-alive, given to the raw aiohttp baseline too.
KEEPALIVE = ConnectionBudget().keepalive
#: Phases that poll with raw aiohttp (no streams or subscriptions).
RAW = ("raw", "raw-default")
PHASES = ("owned", "capped", "raw", "raw-default", "borrowed", "small")

Poll = Callable[[], Awaitable[object]]


class CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the connections it opens (aiohttp opens every one here)."""

    opened = 0

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        CountingLoop.opened += 1
        return await super().create_connection(*args, **kwargs)


class Figures:
    def __init__(self, streams: int) -> None:
        self.latencies: list[float] = []
        self.poll_failures: dict[str, int] = {}
        self.frames = [0] * streams
        self.first_frame: list[float | None] = [None] * streams
        self.ended = [False] * streams  # the stream ended with an error
        self.refused: list[float] = []  # seconds until ConnectionPoolExhaustedError
        self.stream_errors: dict[str, int] = {}
        self.messages = 0
        self.measuring = False  # after the warm-up (start-up burst excluded)


async def poller(poll: Poll, interval: float, figs: Figures, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(random.uniform(0, interval))
    next_at = loop.time()
    while not stop.is_set():
        began = loop.time()
        try:
            await poll()
            if figs.measuring:
                figs.latencies.append(loop.time() - began)
        except (OctoEverywhereError, aiohttp.ClientError, TimeoutError) as err:
            name = type(err).__name__
            figs.poll_failures[name] = figs.poll_failures.get(name, 0) + 1
        next_at += interval
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


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def client_context(announced: dict[str, Any]) -> ssl.SSLContext | None:
    pem = announced.get("ca_pem")
    return ssl.create_default_context(cadata=pem) if pem else None


def raw_polls(session: aiohttp.ClientSession, conns: list[AppConnection]) -> list[Poll]:
    timeout = aiohttp.ClientTimeout(total=POLL_TIMEOUT)

    def make(conn: AppConnection) -> Poll:
        url = conn.url / STATUS.lstrip("/")
        headers = {"Authorization": conn.auth.header_value}

        async def poll() -> object:
            async with session.get(url, headers=headers, timeout=timeout) as resp:
                resp.raise_for_status()
                return await resp.json()

        return poll

    return [make(conn) for conn in conns]


async def run_phase(
    name: str, announced: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    conns = [AppConnection.from_dict(c) for c in announced["printers"][: args.printers]]
    context = client_context(announced)
    streams = 0 if name in RAW else args.streams
    subscriptions = 0 if name in RAW else args.subscriptions
    figs = Figures(streams)
    gc.collect()
    rss_before = rss_bytes()
    fds_before = open_fds()
    session: aiohttp.ClientSession | None = None
    oe: OctoEverywhere | None = None
    printers: list[PrinterConnection] = []
    if name in RAW:
        keepalive = {} if name == "raw-default" else {"keepalive_timeout": KEEPALIVE}
        limit = {} if name == "raw-default" else {"limit": 100, "limit_per_host": 0}
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context or True, **limit, **keepalive)
        )
        polls = raw_polls(session, conns)
    else:
        if name == "borrowed":
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context or True))
        elif name == "small":
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context or True, limit=20)
            )
        oe = OctoEverywhere(
            announced["app_id"],
            session=session,
            app_api_url=announced["app_api_url"],
            allow_insecure_loopback=context is None,
            retry=RetryPolicy(attempts=2, base_delay=0.2),
            ssl_context=context if session is None else None,
            connections=ConnectionBudget(max_idle=args.max_idle) if name == "capped" else None,
        )
        printers = [oe.printer(conn) for conn in conns]
        polls = [
            (lambda p=p: p.get_json(STATUS, timeout=POLL_TIMEOUT))  # type: ignore[misc]
            for p in printers
        ]
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(10)  # a small burst: max_idle's peak stays near the cap

    async def first(poll: Poll) -> None:
        async with gate:
            with contextlib.suppress(OctoEverywhereError, aiohttp.ClientError, TimeoutError):
                await poll()

    # Every printer's connection opened once, then all idle: RSS and fds per idle connection.
    await asyncio.gather(*(first(poll) for poll in polls))
    gc.collect()
    rss_idle = rss_bytes()
    fds_idle = open_fds()
    lag = LoopLag(interval=args.lag_interval)
    # What the process burns with nothing to do but the loop-lag ticker: taken off the
    # per-poll figure (at a poll every 30 s per printer it would otherwise dominate).
    async with lag.running():
        cpu0, wall0 = time.process_time(), loop.time()
        await asyncio.sleep(args.baseline)
        baseline = (time.process_time() - cpu0) / (loop.time() - wall0)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    subs = []

    def on_message(_: aiohttp.WSMessage) -> None:
        figs.messages += 1

    lag = LoopLag(interval=args.lag_interval)
    async with lag.running():
        tasks += [asyncio.create_task(poller(poll, args.interval, figs, stop)) for poll in polls]
        tasks += [asyncio.create_task(streamer(printers[i], figs, i)) for i in range(streams)]
        subs.extend(
            printers[streams + i].websocket.subscribe("/sockjs/websocket", on_message)
            for i in range(subscriptions)
        )
        await asyncio.sleep(args.warmup)
        startup_lag = lag.worst
        lag.worst = 0.0
        figs.measuring = True
        opened0 = CountingLoop.opened
        cpu0, wall0 = time.process_time(), loop.time()
        await asyncio.sleep(args.seconds)
        cpu = time.process_time() - cpu0
        wall = loop.time() - wall0
        opened = CountingLoop.opened - opened0
        polls_done = len(figs.latencies) + sum(figs.poll_failures.values())
        rss_polling = rss_bytes()
        fds_polling = open_fds()
        first_frames = [f for f in figs.first_frame if f is not None]
        stop.set()
        for sub in subs:
            await sub.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if oe is not None:
        await oe.close()
    if session is not None:
        await session.close()
    lat = sorted(figs.latencies)
    streaming = [f for f in figs.frames if f]
    # Starved: no frame, and no error to say why (a refused stream got the clear error).
    starved = sum(1 for i, f in enumerate(figs.frames) if f == 0 and not figs.ended[i])
    count = max(1, len(conns))
    return {
        "phase": name,
        "printers": len(conns),
        "polls": len(lat),
        "poll_failures": figs.poll_failures,
        "p50_ms": 1000 * statistics.median(lat) if lat else None,
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else None,
        "new_connections": opened,
        "new_per_poll": opened / max(1, polls_done),
        "streams": streams,
        "streams_running": len(streaming),
        "starved": starved,
        "refused": len(figs.refused),
        "refused_after_s": (min(figs.refused), max(figs.refused)) if figs.refused else None,
        "stream_errors": figs.stream_errors,
        "fps_mean": (statistics.mean(streaming) / (args.seconds + args.warmup))
        if streaming
        else 0.0,
        "subscriptions": subscriptions,
        "ws_messages": figs.messages,
        "cpu_cores": cpu / wall,
        "baseline_cores": baseline,
        "cpu_us_per_poll": 1e6 * max(0.0, cpu - baseline * wall) / max(1, polls_done),
        "rss_mib": rss_polling / MiB,
        "rss_idle_kib_per_printer": (rss_idle - rss_before) / 1024 / count,
        "rss_polling_kib_per_printer": (rss_polling - rss_before) / 1024 / count,
        "fds_idle": fds_idle - fds_before,
        "fds_polling": fds_polling - fds_before,
        "worst_lag_ms": 1000 * lag.worst,
        "startup_lag_ms": 1000 * startup_lag,
        "all_streaming_after_s": max(first_frames) if first_frames else None,
    }


def show(r: dict[str, Any]) -> None:
    print(f"\n== {r['phase']} ({r['printers']:,} printers) ==")
    print(
        f"polls {r['polls']:,}  failures {r['poll_failures'] or 0}  "
        f"p50 {r['p50_ms'] or 0:.1f} ms  p99 {r['p99_ms'] or 0:.1f} ms  "
        f"new connections {r['new_connections']:,} ({100 * r['new_per_poll']:.2f} % of polls)"
    )
    if r["streams"]:
        refused = r["refused_after_s"]
        print(
            f"streams running {r['streams_running']}  starved {r['starved']}  "
            f"refused with ConnectionPoolExhaustedError {r['refused']}"
            + (f" (after {refused[0]:.1f}-{refused[1]:.1f} s)" if refused else "")
            + f"  other stream errors {r['stream_errors'] or 0}  mean fps {r['fps_mean']:.1f}"
        )
    if r["subscriptions"]:
        print(f"WebSocket messages {r['ws_messages']:,}")
    print(
        f"client CPU {r['cpu_cores']:.3f} core ({r['cpu_us_per_poll']:.0f} us per poll over the "
        f"{r['baseline_cores']:.3f} core of an idle loop)  "
        f"RSS {r['rss_mib']:.0f} MiB; per printer connection {r['rss_idle_kib_per_printer']:.1f} "
        f"KiB idle, {r['rss_polling_kib_per_printer']:.1f} KiB polling; fds {r['fds_idle']} idle, "
        f"{r['fds_polling']} polling  worst loop lag {r['worst_lag_ms']:.0f} ms"
    )
    after = r["all_streaming_after_s"]
    print(
        f"start-up (excluded above): worst loop lag {r['startup_lag_ms']:.0f} ms"
        + (f", last stream's first frame after {after:.1f} s" if after is not None else "")
    )


def child(args: argparse.Namespace) -> None:
    """Run one phase in this process and print its figures as one JSON line."""
    announced = json.loads(Path(args.announcement).read_text())
    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        result = runner.run(run_phase(args.child, announced, args))
    print(json.dumps(result))


def start_child(name: str, announcement: Path, args: argparse.Namespace) -> subprocess.Popen[str]:
    phase_args = vars(args).copy()
    if name == "small":
        phase_args.update(streams=50, subscriptions=0, printers=min(100, args.printers))
    argv = [sys.executable, __file__, "--child", name, "--announcement", str(announcement)]
    for key in (
        "printers",
        "streams",
        "subscriptions",
        "interval",
        "seconds",
        "warmup",
        "baseline",
    ):
        argv += [f"--{key.replace('_', '-')}", str(phase_args[key])]
    argv += ["--max-idle", str(args.max_idle)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def finish_child(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"a phase failed (exit status {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def ratios(results: dict[str, dict[str, Any]]) -> None:
    owned = results.get("owned")
    if owned is None:
        return
    for name in RAW:
        raw = results.get(name)
        if raw is None:
            continue
        same_load = owned["streams"] == 0 and owned["subscriptions"] == 0
        cpu = owned["cpu_us_per_poll"] / raw["cpu_us_per_poll"]
        print(
            f"\nowned / {name}: CPU per poll {cpu:.2f}x"
            + ("" if same_load else " (owned also ran streams: not the same load)")
            + f", p50 {(owned['p50_ms'] or 0) / (raw['p50_ms'] or 1):.2f}x"
            + f", RSS per idle connection {owned['rss_idle_kib_per_printer']:.0f} vs "
            f"{raw['rss_idle_kib_per_printer']:.0f} KiB, new connections per poll "
            f"{100 * owned['new_per_poll']:.2f} % vs {100 * raw['new_per_poll']:.2f} %"
        )
    capped = results.get("capped")
    if capped is not None:
        print(
            f"max_idle={capped['max_idle']}: RSS {capped['rss_mib']:.0f} vs "
            f"{owned['rss_mib']:.0f} MiB, {capped['fds_polling']} vs {owned['fds_polling']} "
            f"fds, new connections per poll {100 * capped['new_per_poll']:.1f} % vs "
            f"{100 * owned['new_per_poll']:.2f} %, CPU per poll "
            f"{capped['cpu_us_per_poll'] / owned['cpu_us_per_poll']:.2f}x"
        )


def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    extra = ["--printers", str(args.printers), "--webcam-fps", str(args.fps)]
    if args.tls:
        extra.append("--tls")
    with simulator_process(*extra) as app, tempfile.TemporaryDirectory() as tmp:
        announcement = Path(tmp) / "announcement.json"
        announcement.write_text(json.dumps(app))
        print(
            f"{'https' if args.tls else 'plain http'}: {args.printers:,} printers polling every "
            f"{args.interval:g} s, {args.streams} webcam streams at {args.fps:g} fps, "
            f"{args.subscriptions} subscriptions; {args.warmup:g} s warm-up, {args.seconds:g} s "
            f"measured per phase, each phase in its own process (fd limit {soft} -> {hard})"
        )
        results: dict[str, dict[str, Any]] = {}
        if args.together:
            # Side by side in time: a shared machine's load falls on every phase alike.
            procs = {name: start_child(name, announcement, args) for name in args.phases}
            running = procs.items()
        else:
            running = ((name, start_child(name, announcement, args)) for name in args.phases)
        for name, proc in running:
            result = finish_child(proc)
            result["max_idle"] = args.max_idle
            results[name] = result
            show(result)
    ratios(results)
    owned = results.get("owned")
    if owned is None:
        return
    if args.tls:
        ok = owned["new_per_poll"] <= 0.01 and not owned["poll_failures"]
        print(
            f"\nowned-session target over TLS (<= 1 % new connections per poll, 0 failed): "
            f"{'met' if ok else 'NOT met'}"
        )
        return
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


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tls", action="store_true", help="serve and poll over https")
    parser.add_argument("--printers", type=int, default=1000)
    parser.add_argument("--interval", type=float, help="seconds between polls (5; --tls: 30)")
    parser.add_argument("--streams", type=int, help="webcam streams (300; --tls: 0)")
    parser.add_argument("--subscriptions", type=int, help="subscriptions (100; --tls: 0)")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, help="measured, after warm-up (30; --tls: 60)")
    parser.add_argument("--warmup", type=float, help="not measured (6; --tls: the interval + 10)")
    parser.add_argument("--max-idle", type=int, help="the capped phase's max_idle (printers/10)")
    parser.add_argument(
        "--phases",
        help=f"comma-separated, of {', '.join(PHASES)} "
        "(default owned,borrowed,small; --tls: owned,raw,capped)",
    )
    parser.add_argument(
        "--baseline", type=float, default=3.0, help="seconds of idle loop measured first"
    )
    parser.add_argument(
        "--lag-interval", type=float, help="loop-lag ticker period (0.01 s; --tls: 0.05 s)"
    )
    parser.add_argument(
        "--together",
        action=argparse.BooleanOptionalAction,
        help="run the phases at the same time, each in its own process (default with --tls)",
    )
    parser.add_argument("--quick", action="store_true", help="100 printers, 30 streams, 10 s")
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--announcement", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    tls = ns.tls
    defaults: dict[str, Any] = {
        "interval": 30.0 if tls else 5.0,
        "streams": 0 if tls else 300,
        "subscriptions": 0 if tls else 100,
        "seconds": 60.0 if tls else 30.0,
    }
    if ns.quick:
        ns.printers = 100
        defaults.update(streams=0 if tls else 30, subscriptions=0 if tls else 10, seconds=10.0)
        if tls:
            defaults["interval"] = 5.0
    for key, value in defaults.items():
        if getattr(ns, key) is None:
            setattr(ns, key, value)
    if ns.together is None:
        ns.together = tls
    if ns.lag_interval is None:
        ns.lag_interval = 0.05 if tls else 0.01
    if ns.warmup is None:
        ns.warmup = ns.interval + 10 if tls else 6.0
    if ns.max_idle is None:
        ns.max_idle = max(1, ns.printers // 10)
    phases = ns.phases or ("owned,raw,capped" if tls else "owned,borrowed,small")
    ns.phases = [p.strip() for p in phases.split(",") if p.strip()]
    for name in ns.phases:
        if name not in PHASES:
            parser.error(f"unknown phase {name!r}: choose from {', '.join(PHASES)}")
    return ns


if __name__ == "__main__":
    parsed = parse()
    if parsed.child:
        child(parsed)
    else:
        main(parsed)
