"""Shared webcam streams: N consumers of one camera vs N streams of their own.

A camera in a child process sends ~100 KB JPEG parts at 15 fps to every connection (one
thread each, paced by the clock; ``/stats`` says how many streams it is serving). For 1, 5,
20 and 100 consumers this process reads the camera through ``printer.webcam.frames()``:
``shared=True`` (one upstream stream for all) and side by side ``shared=False`` (a stream
each), and reports the upstream streams open, the frames each consumer got per second and
the client's CPU (this process, a share of one core). The consumers only count frames, so
the CPU is the library's.

Targets: 20 shared consumers cost at most 1.5x the CPU of one, on 1 upstream stream.

    .venv/bin/python benchmarks/shared_streams.py [--seconds 5] [--fps 15] [--rounds 3]
        [--counts 1,5,20,100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from oe_async import AppConnection, BasicAuth, OctoEverywhere
from oe_async.testing.mjpeg_source import build_part, load_jpegs

AUTH = BasicAuth("bench", "bench-password")
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n"
    b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
)

# ---------------------------------------------------------------- the camera (child process)


class Camera:
    """Paced MJPEG to every connection; ``GET /stats`` answers how many streams are open."""

    def __init__(self, fps: float) -> None:
        _, large = load_jpegs()
        self.part = build_part(large, frozenset(), number=0, timestamp=0.0)
        self.interval = 1.0 / fps
        self.lock = threading.Lock()
        self.open = 0
        self.served = 0

    def serve_one(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(4096)
                if not data:
                    return
                request += data
            if request.split(b" ", 2)[1] == b"/stats":
                with self.lock:
                    body = json.dumps({"open": self.open, "served": self.served}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
                return
            with self.lock:
                self.open += 1
                self.served += 1
            try:
                conn.sendall(HEAD)
                due = time.monotonic()
                while True:
                    conn.sendall(self.part)
                    due += self.interval
                    time.sleep(max(0.0, due - time.monotonic()))
            finally:
                with self.lock:
                    self.open -= 1

    def run(self) -> None:
        with socket.create_server(("127.0.0.1", 0), backlog=512) as server:
            print(server.getsockname()[1], flush=True)
            while True:
                conn, _ = server.accept()
                threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()


@contextlib.contextmanager
def camera_process(fps: float) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", f"--fps={fps}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- the client


async def stats(session: aiohttp.ClientSession, base: str) -> dict[str, int]:
    async with session.get(base + "/stats") as resp:
        result: dict[str, int] = await resp.json()
        return result


async def measure(port: int, consumers: int, *, shared: bool, seconds: float) -> dict[str, float]:
    """Run ``consumers`` consumers for ``seconds`` after a warm-up; what it cost."""
    base = f"http://127.0.0.1:{port}"
    connection = AppConnection(
        url=base, auth=AUTH, app_token="bench", id="bench", allow_insecure_loopback=True
    )
    counts = [0] * consumers
    async with (
        aiohttp.ClientSession() as probe,
        OctoEverywhere("bench", allow_insecure_loopback=True) as oe,
    ):
        printer = oe.printer(connection)

        async def consume(i: int) -> None:
            async with printer.webcam.frames(
                "/stream",
                reconnect=True,
                **({"shared": True, "linger": 0} if shared else {}),  # type: ignore[arg-type]
            ) as frames:
                async for _ in frames:
                    counts[i] += 1

        tasks = [asyncio.create_task(consume(i)) for i in range(consumers)]
        deadline = time.monotonic() + 30
        while min(counts) < 3:  # every consumer has frames flowing
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumers did not start: {counts}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        before = list(counts)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        got = [after - b for after, b in zip(counts, before, strict=True)]
        upstreams = (await stats(probe, base))["open"]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "upstreams": upstreams,
        "fps_mean": statistics.mean(got) / wall,
        "fps_min": min(got) / wall,
        "cpu": cpu / wall * 100,
    }


async def run(counts: list[int], seconds: float, fps: float, rounds: int) -> None:
    runs: dict[tuple[bool, int], list[dict[str, float]]] = {}
    with camera_process(fps) as port:
        for i in range(rounds):
            cases = [(shared, count) for count in counts for shared in (True, False)]
            for shared, count in cases if i % 2 == 0 else reversed(cases):
                result = await measure(port, count, shared=shared, seconds=seconds)
                runs.setdefault((shared, count), []).append(result)
                await asyncio.sleep(0.5)  # let the camera notice the streams that ended
    results = {
        case: {key: statistics.median(r[key] for r in values) for key in values[0]}
        for case, values in runs.items()
    }
    one = results[True, counts[0]]["cpu"]
    print(
        f"~100 KB frames at {fps:g} fps; {seconds:g} s measured per case after a warm-up; "
        f"median of {rounds} rounds (order alternating)"
    )
    print(
        f"{'consumers':>9}  {'mode':8} {'upstreams':>9} {'fps each (mean/min)':>20} "
        f"{'client CPU':>10} {'vs 1 shared':>11}"
    )
    for count in counts:
        for shared in (True, False):
            r = results[shared, count]
            print(
                f"{count:>9}  {'shared' if shared else 'separate':8} {r['upstreams']:>9.0f} "
                f"{r['fps_mean']:>11.1f} / {r['fps_min']:<6.1f} {r['cpu']:>9.1f}% "
                f"{r['cpu'] / one:>10.2f}x"
            )
    if (True, 20) in results:
        r = results[True, 20]
        ok = r["cpu"] <= 1.5 * one and r["upstreams"] == 1
        print(
            f"\n20 shared consumers: {r['cpu'] / one:.2f}x the CPU of one, "
            f"{r['upstreams']:.0f} upstream stream (target <= 1.5x, 1): {'met' if ok else 'MISSED'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--counts", default="1,5,20,100")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            Camera(args.fps).run()
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    asyncio.run(run([int(c) for c in args.counts.split(",")], args.seconds, args.fps, args.rounds))


if __name__ == "__main__":
    main()
