"""Webcam frames, snapshots, renewal and the plugin webcam list against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

import oe_async
from oe_async import OctoEverywhere, PrinterConnection, ReconnectPolicy, RetryPolicy
from oe_async.testing import Simulator
from oe_async.testing.hostile import HostileServer
from oe_async.testing.mjpeg_source import QUIRKS, build_part, chunked

from .helpers import RawResponder, acquired_connections, eventually

FAST = ReconnectPolicy(base_delay=0.0, max_delay=0.0, webcam_limit_delay=0.0)
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def expected(sim: Simulator, count: int, start: int = 0) -> list[bytes]:
    return [sim.jpegs[(start + i) % len(sim.jpegs)] for i in range(count)]


def refuse_the_next_open(sim: Simulator) -> None:
    """The next webcam open gets a 609, however long the one before took (a loaded machine)."""
    sim.state.webcam.max_opens = 1
    sim.state.webcam.window_seconds = 3600


async def lift_the_limit_once_waiting(sim: Simulator, frames: oe_async.FrameStream) -> None:
    """Let opens through as soon as ``frames`` waits out a 609, before the wait can end.

    The poll that sees the wait is due before the back-off's end (same loop, a 10 ms poll
    against a back-off of 0.3 s and more), so the open after the wait is the first let
    through, however slow the machine.
    """
    await eventually(lambda: frames.waiting_for_webcam_limit, "the 609 back-off")
    sim.state.webcam.max_opens = None


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
async def test_every_simulated_quirk_yields_every_frame_bit_exact(
    printer: PrinterConnection, sim: Simulator, quirk: str
) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 12
    async with printer.webcam.frames(f"/webcam/?action=stream&quirks={quirk}") as frames:
        got = [frame async for frame in frames]
    assert [f.data for f in got] == expected(sim, 12)
    assert [f.index for f in got] == list(range(12))
    assert all(f.data.startswith(b"\xff\xd8") and f.data.endswith(b"\xff\xd9") for f in got)


async def test_all_quirks_at_once(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 9
    compatible = QUIRKS - {"lf", "crlf_first", "glued", "bare", "no_length"}
    quirks = ",".join(sorted(compatible))
    async with printer.webcam.frames(f"/webcam/?action=stream&quirks={quirks}") as frames:
        got = [frame async for frame in frames]
    assert [f.data for f in got] == expected(sim, 9)
    assert all(f.timestamp is not None for f in got)


async def test_frames_carry_the_transform_and_are_authenticated(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.transform = "flipV,rotate90"
    sim.state.webcam.frames_per_stream = 2
    async with printer.webcam.frames() as frames:
        got = [frame async for frame in frames]
    assert {f.transform for f in got} == {"flipV,rotate90"}
    assert sim.requests_to("relay", "*/webcam/*")[0].authorization == sim.auth.header_value


async def test_max_fps_drops_surplus_frames(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 100
    sim.state.webcam.frames_per_stream = 60  # 0.6 s of stream
    async with printer.webcam.frames(max_fps=10) as frames:
        got = [frame async for frame in frames]
    assert len(got) >= 4
    assert len(got) + frames.skipped == 60  # each frame delivered or counted as dropped
    # The cap is a schedule with one frame of slack (a burst after a stall passes two frames
    # at once): n frames span at least n - 2 intervals. On an idle machine 6-7 frames arrive
    # over the 0.6 s; a loaded one stretches the stream, and the cap must hold all the same.
    span = got[-1].received_at - got[0].received_at
    assert span >= (len(got) - 2) * 0.1 - 0.005, [f.received_at for f in got]


async def test_renewal_across_three_stream_ends_is_continuous(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 5
    async with printer.webcam.frames(reconnect=FAST) as frames:
        got = []
        async for frame in frames:
            got.append(frame)
            if len(got) == 18:
                break
        assert frames.reconnects == 3
    assert [f.index for f in got] == list(range(18))
    assert [f.data for f in got] == [sim.jpegs[i % 5] for i in range(18)]  # each stream restarts
    assert len(sim.requests_to("relay", "*/webcam/*")) == 4
    assert acquired_connections(oe) == 0


async def test_renewal_by_the_stream_time_limit(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 50
    sim.state.webcam.stream_seconds = 0.15
    async with printer.webcam.frames(reconnect=FAST) as frames:
        got = []
        async for frame in frames:
            got.append(frame)
            if len(got) == 30:
                break
        assert frames.reconnects >= 2
    assert [f.index for f in got] == list(range(30))


async def test_609_backs_off_instead_of_storming(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 3
    refuse_the_next_open(sim)
    policy = ReconnectPolicy(base_delay=0, max_delay=1, webcam_limit_delay=0.3)
    async with printer.webcam.frames(reconnect=policy) as frames:
        lift = asyncio.create_task(lift_the_limit_once_waiting(sim, frames))
        got = []
        async for frame in frames:
            got.append(frame)
            if len(got) == 6:
                break
        await lift
    opens = sim.requests_to("relay", "*/webcam/*")
    assert len(opens) == 3  # ok, 609, ok after waiting
    assert opens[2].at - opens[1].at >= 0.3
    assert [f.index for f in got] == list(range(6))


async def test_609_retry_after_is_honoured(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.frames_per_stream = 1
    sim.state.webcam.fps = 0
    refuse_the_next_open(sim)
    sim.state.webcam.retry_after = 1
    policy = ReconnectPolicy(base_delay=0, max_delay=0.1, webcam_limit_delay=0.05)
    async with printer.webcam.frames(reconnect=policy) as frames:
        lift = asyncio.create_task(lift_the_limit_once_waiting(sim, frames))
        got = [await anext(frames), await anext(frames)]
        await lift
    opens = sim.requests_to("relay", "*/webcam/*")
    assert opens[2].at - opens[1].at >= 1.0
    assert [f.index for f in got] == [0, 1]


async def test_609_without_reconnect_is_raised(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.max_opens = 0
    with pytest.raises(oe_async.WebcamLimitError):
        async with printer.webcam.frames() as frames:
            await anext(frames)


async def test_permanent_errors_end_the_stream(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 4
    got = []
    with pytest.raises(oe_async.AppConnectionRevokedError):
        async with printer.webcam.frames(reconnect=FAST) as frames:
            async for frame in frames:
                got.append(frame)
                if len(got) == 4:
                    sim.revoke()
    assert len(got) == 4
    assert len(sim.requests_to("relay", "*/webcam/*")) == 2  # no retry of a 604
    assert acquired_connections(oe) == 0


async def test_temporary_errors_give_up_after_max_failures(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.printer_online = False
    with pytest.raises(oe_async.PrinterOfflineError):
        async with printer.webcam.frames(
            reconnect=ReconnectPolicy(max_failures=3, base_delay=0)
        ) as frames:
            await anext(frames)
    assert len(sim.requests_to("relay", "*/webcam/*")) == 3


async def test_a_stream_without_reconnect_simply_ends(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.frames_per_stream = 3
    sim.state.webcam.fps = 0
    got = [f async for f in printer.webcam.frames()]
    assert len(got) == 3
    assert acquired_connections(oe) == 0


async def test_read_timeout_is_per_read(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 0.5  # one frame every 2 s
    with pytest.raises(oe_async.RequestTimeoutError):
        async with printer.webcam.frames(read_timeout=0.3) as frames:
            await anext(frames)  # frame 0 arrives at once
            await anext(frames)


async def test_frames_by_plugin_index(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.frames_per_stream = 2
    sim.state.webcam.fps = 0
    async with printer.webcam.frames(index=1) as frames:
        got = [f async for f in frames]
    assert len(got) == 2
    request = sim.requests_to("relay", "/octoeverywhere-command-api/webcam/stream")[0]
    assert request.query == "index=1"


async def test_bad_frames_arguments(printer: PrinterConnection, sim: Simulator) -> None:
    for kwargs, message in [
        ({"max_fps": 0}, "max_fps"),
        ({"index": -1}, "index"),
        ({"index": 1, "path": "/x"}, "path or index"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"reconnect": "yes"}, "reconnect"),
    ]:
        with pytest.raises(oe_async.InvalidArgumentError, match=message):
            printer.webcam.frames(**kwargs)  # type: ignore[arg-type]
    assert sim.requests == []


async def test_a_missing_plugin_webcam_is_a_plugin_error(
    printer: PrinterConnection, sim: Simulator
) -> None:
    # The plugin answers a printer without that camera with HTTP 200 and {"Status": 754}.
    sim.state.webcam.webcams = []
    with pytest.raises(oe_async.PluginCommandFailedError) as excinfo:
        async with printer.webcam.frames() as frames:
            await anext(frames)
    assert excinfo.value.plugin_status == 754
    with pytest.raises(oe_async.PluginCommandFailedError):
        await printer.webcam.snapshot()


async def test_oversized_frames_are_an_mjpeg_error(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.large = True
    with pytest.raises(oe_async.MJPEGError, match="max_frame_size"):
        async with printer.webcam.frames(max_frame_size=10_000) as frames:
            await anext(frames)
    assert acquired_connections(oe) == 0


class TestSnapshot:
    async def test_snapshot_url(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.state.webcam.transform = "flipH"
        frame = await printer.webcam.snapshot()
        assert frame.data in sim.jpegs
        assert frame.transform == "flipH"
        assert frame.content_type == "image/jpeg"

    async def test_snapshot_by_index(self, printer: PrinterConnection, sim: Simulator) -> None:
        assert (await printer.webcam.snapshot(index=0)).data in sim.jpegs
        assert sim.requests_to("relay")[0].path == "/octoeverywhere-command-api/webcam/snapshot"

    async def test_first_frame_of_a_stream(
        self, printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
    ) -> None:
        frame = await printer.webcam.snapshot(from_stream=True)
        assert frame.data == sim.jpegs[0]
        assert acquired_connections(oe) == 0

    async def test_snapshot_size_cap(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.state.webcam.large = True
        with pytest.raises(oe_async.MJPEGError, match="larger than"):
            await printer.webcam.snapshot(max_size=10_000)


class TestWebcamList:
    async def test_decodes_the_list(self, printer: PrinterConnection) -> None:
        cams = await printer.plugin.webcams()
        assert cams.default_index == 0
        assert cams.default is not None
        assert cams.default.name == "Nozzle cam"
        assert (cams.default.flip_v, cams.default.rotation) == (True, 90)
        assert [c.name for c in cams.webcams] == ["Nozzle cam", "Room"]

    async def test_one_bad_entry_does_not_fail_the_list(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.webcam.webcams = [
            {"Name": "ok"},
            {"Name": "bad", "Rotation": "sideways"},
            {"Name": "ok2"},
        ]
        cams = await printer.plugin.webcams()
        assert [c.name for c in cams.webcams] == ["ok", "ok2"]

    async def test_plugin_failure_status(self, printer: PrinterConnection, sim: Simulator) -> None:
        body = json.dumps({"Status": 788, "Error": "Webcams are not supported"}).encode()
        sim.fail(200, path="/octoeverywhere-command-api/webcam/list", body=body)
        with pytest.raises(oe_async.UnsupportedOnPlatformError, match="not supported") as excinfo:
            await printer.plugin.webcams()
        assert excinfo.value.plugin_status == 788


async def test_500_open_cancel_cycles_leave_nothing_behind(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 200
    for i in range(500):

        async def watch() -> None:
            async with printer.webcam.frames(reconnect=FAST) as frames:
                async for _ in frames:
                    await asyncio.sleep(3600)

        task = asyncio.create_task(watch())
        while sim.webcam_streams <= i:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert acquired_connections(oe) == 0


async def test_breaking_a_plain_async_for_releases_the_connection(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    async for _ in printer.webcam.frames():
        break
    gc.collect()
    assert acquired_connections(oe) == 0


# ---------------------------------------------------------------- max_fps on a schedule


async def _rate(printer: PrinterConnection, max_fps: float | None, seconds: float) -> float:
    """Delivered frames per second over ``seconds`` of a running stream (after the start)."""
    async with printer.webcam.frames(max_fps=max_fps) as frames:
        got = []
        async for frame in frames:
            got.append(frame.received_at)
            if got[-1] - got[0] >= seconds:
                break
    # Frames delivered per second between the first and last delivery.
    return (len(got) - 1) / (got[-1] - got[0])


@pytest.mark.parametrize(("max_fps", "expected"), [(15, 15.0), (14, 14.0), (10, 10.0), (30, 15.0)])
async def test_max_fps_delivers_min_of_source_rate_and_cap(
    printer: PrinterConnection, sim: Simulator, max_fps: float, expected: float
) -> None:
    sim.state.webcam.fps = 15
    rate = await _rate(printer, max_fps, 3.0)
    print(f"15 fps source, max_fps={max_fps}: {rate:.2f} fps delivered")
    # Within 5% of min(source, max_fps), plus one frame of measurement slack over 3 s.
    assert abs(rate - expected) <= expected * 0.05 + 1 / 3.0


async def test_skipped_counts_while_streaming(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 100
    async with printer.webcam.frames(max_fps=10) as frames:
        seen = []
        async for _ in frames:
            seen.append(frames.skipped)
            if len(seen) == 5:
                break
        assert frames.skipped > 0
        assert seen[-1] > seen[2] > 0  # read during the stream, not only after it


async def test_a_consumer_sees_the_609_back_off(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 2
    refuse_the_next_open(sim)
    policy = ReconnectPolicy(base_delay=0, max_delay=1, webcam_limit_delay=0.5)
    states: list[tuple[str, bool, bool]] = []
    async with printer.webcam.frames(reconnect=policy) as frames:
        assert frames.state == "connecting"

        async def watch() -> None:
            while True:
                states.append(
                    (frames.state, frames.waiting_for_webcam_limit, frames.resume_at is not None)
                )
                if frames.waiting_for_webcam_limit:  # seen before the wait can end (0.5 s)
                    sim.state.webcam.max_opens = None
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        try:
            count = 0
            async for _ in frames:
                assert frames.state == "streaming"
                count += 1
                if count == 4:
                    break
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert frames.last_error is None  # frames flow again
    assert ("waiting", True, True) in states
    assert frames.state == "closed"
    assert frames.resume_at is None


# ---------------------------------------------------------------- transform format


@pytest.mark.parametrize("index", [0, 1])
async def test_frame_transform_agrees_with_the_webcam_list(
    printer: PrinterConnection, sim: Simulator, index: int
) -> None:
    sim.state.webcam.frames_per_stream = 1
    webcams = await printer.plugin.webcams()
    camera = webcams.webcams[index]
    async with printer.webcam.frames(index=index) as frames:
        frame = await anext(frames)
    snapshot = await printer.webcam.snapshot(index=index)
    for got in (frame, snapshot):
        assert (got.flip_h, got.flip_v, got.rotation) == (
            camera.flip_h,
            camera.flip_v,
            camera.rotation,
        )
    assert frame.transform == ("flipv rotate=90" if index == 0 else "none")


# ---------------------------------------------------------------- snapshot deadline and options


async def _dripping_server(interval: float) -> tuple[web.AppRunner, str]:
    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = 1_000_000
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(b"x")
                await asyncio.sleep(interval)
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", drip)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("from_stream", [False, True])
async def test_a_dripping_snapshot_ends_at_its_deadline(sim: Simulator, from_stream: bool) -> None:
    runner, url = await _dripping_server(0.05)
    try:
        async with sim.client(timeout=1.0) as oe:
            printer = oe.printer(sim.app_connection(url=url))
            started = time.monotonic()
            with pytest.raises(oe_async.RequestTimeoutError, match="deadline"):
                await printer.webcam.snapshot(from_stream=from_stream)  # the client's default
            # At the deadline, not never (a byte every 50 ms keeps a read timeout at bay for
            # the 14 h the 1 MB takes); the upper bounds leave slack for a busy machine.
            assert 0.9 <= time.monotonic() - started < 5
            started = time.monotonic()
            with pytest.raises(oe_async.RequestTimeoutError):
                await printer.webcam.snapshot(from_stream=from_stream, timeout=0.3)
            assert 0.25 <= time.monotonic() - started < 5
            assert acquired_connections(oe) == 0
    finally:
        await runner.cleanup()


async def test_snapshot_takes_retry_and_timeout(printer: PrinterConnection, sim: Simulator) -> None:
    sim.fail(601, path="*/webcam/*", times=1)
    frame = await printer.webcam.snapshot(retry=FAST_RETRY, timeout=5)
    assert frame.data.startswith(b"\xff\xd8")
    sim.fail(601, path="*/webcam/*", times=1)
    with pytest.raises(oe_async.PrinterOfflineError):
        await printer.webcam.snapshot(retry=RetryPolicy.never())
    with pytest.raises(oe_async.InvalidArgumentError):
        await printer.webcam.snapshot(timeout=-1)


# ---------------------------------------------------------------- chunk floods


async def test_a_chunk_flood_ends_quickly(sim: Simulator) -> None:
    async with (
        HostileServer("one_byte_chunks", chunks=1_100_000) as server,
        sim.client() as oe,
    ):
        printer = oe.printer(sim.app_connection(url=server.url))
        cpu_started = time.thread_time()
        with pytest.raises(oe_async.UnexpectedResponseError, match="chunk flood"):
            await printer.webcam.snapshot()
        cpu = time.thread_time() - cpu_started
        print(f"snapshot() against 1.1 MB in one-byte chunks: {cpu:.3f} s CPU")
        assert cpu < 0.5  # was 2.5 s without the guard
        assert acquired_connections(oe) == 0


# A stream's CPU is bounded per byte instead (issue 29.4): frames() takes what aiohttp has
# buffered in one read, so tiny HTTP chunks cost what aiohttp's own parsing of them costs.

#: The packaged frame under 4,096 bytes: one-byte chunks of it passed the old per-frame
#: chunk count (4,096 chunks), at ~2.6 us of CPU per byte.
SMALL_FRAME = 0
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


async def test_a_camera_sending_one_byte_chunks_streams(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 8
    async with printer.webcam.frames("/webcam/?action=stream&quirks=tiny_chunks") as frames:
        got = [frame async for frame in frames]  # was: "chunk flood" at the second frame
    assert [f.data for f in got] == expected(sim, 8)


async def _cpu_per_byte(
    reads: list[Callable[[], Awaitable[int]]], size: int, rounds: int = 3
) -> list[float]:
    """Each reader's least client CPU (this thread) per body byte in us, taking turns."""
    best = [math.inf] * len(reads)
    for _ in range(rounds):
        for i, read in enumerate(reads):
            started = time.thread_time()
            assert await read() == size
            best[i] = min(best[i], time.thread_time() - started)
    return [cpu / size * 1e6 for cpu in best]


async def test_one_byte_chunks_cost_what_aiohttp_itself_spends(sim: Simulator) -> None:
    frame = sim.jpegs[SMALL_FRAME]
    parts = b"".join(build_part(frame, frozenset(), number=i, timestamp=0.0) for i in range(80))
    count = len(parts)
    async with (
        RawResponder(STREAM_HEAD, chunked(parts, 1)) as server,
        aiohttp.ClientSession() as session,
        sim.client(session=session) as oe,
    ):
        printer = oe.printer(sim.app_connection(url=server.url))

        async def ours() -> int:
            async with printer.webcam.frames() as frames:
                got = [f async for f in frames]
            assert [f.data for f in got] == [frame] * 80
            return count

        async def bare_aiohttp() -> int:
            size = 0
            async with session.get(server.url) as resp:
                while chunk := await resp.content.readany():
                    size += len(chunk)
            return size

        ours_us, floor_us = await _cpu_per_byte([ours, bare_aiohttp], count)
    print(
        f"{count:,} bytes in one-byte chunks: frames() {ours_us:.2f} us CPU/byte, "
        f"aiohttp's own readany() {floor_us:.2f} us/byte ({ours_us / floor_us:.2f}x)"
    )
    # Was 2.6-3.1 us per byte, ~2.4x aiohttp's own cost: one await per HTTP chunk.
    assert ours_us < 1.6 * floor_us
