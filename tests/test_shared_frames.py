"""Shared webcam streams: many consumers of one camera, one upstream stream (issue 27.1)."""

from __future__ import annotations

import asyncio
import gc
import time

import aiohttp
import pytest

import oe_async
from oe_async import FrameStream, OctoEverywhere, PrinterConnection, ReconnectPolicy
from oe_async.testing import Simulator

from .helpers import acquired_connections, eventually

FAST = ReconnectPolicy(base_delay=0.0, max_delay=0.0, webcam_limit_delay=0.0)
STREAM_TASK = "oe_async shared webcam stream"
#: Seconds close() may take on a loaded machine (what it must not wait for is an hour).
PROMPT = 10.0


def stream_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == STREAM_TASK and not t.done()]


async def firsts(streams: list[FrameStream]) -> list[oe_async.Frame]:
    """Every stream's first frame, all asked for at once (so they join the same stream)."""
    return await asyncio.gather(*(anext(frames) for frames in streams))


async def take(frames: FrameStream, count: int) -> list[oe_async.Frame]:
    got = []
    async for frame in frames:
        got.append(frame)
        if len(got) == count:
            break
    return got


async def test_many_consumers_share_one_upstream_stream(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    joined = asyncio.Event()
    streams = [printer.webcam.frames(shared=True, linger=0) for _ in range(5)]

    async def watch(frames: FrameStream) -> list[oe_async.Frame]:
        async with frames:
            first = await anext(frames)
            if all(s.consumers == 5 for s in streams):
                joined.set()
            await joined.wait()
            return [first, *await take(frames, 9)]

    results = await asyncio.gather(*(watch(frames) for frames in streams))
    assert sim.webcam_streams == 1  # one upstream for five consumers
    for got in results:
        assert len(got) == 10
        assert all(frame.data in sim.jpegs for frame in got)
        indices = [frame.index for frame in got]
        assert indices == sorted(set(indices))  # in order, each frame once
    assert all(frames.state == "closed" for frames in streams)
    assert acquired_connections(oe) == 0
    assert stream_tasks() == []


async def test_a_slow_consumer_skips_frames_and_never_holds_up_the_others(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0  # as fast as the connection allows
    async with (
        printer.webcam.frames(shared=True, linger=0) as slow,
        printer.webcam.frames(shared=True, linger=0, buffer=3) as fast,
    ):
        first = await anext(slow)  # slow has joined; now it takes nothing for a while
        got = await take(fast, 300)
        assert len(got) == 300  # not held up by the slow consumer's full buffer
        late = [await anext(slow) for _ in range(2)]
        assert slow.dropped >= 250  # it can see how much it missed
        assert late[0].index > first.index + 250  # and what it gets is recent
        assert late[1].index > late[0].index
    assert sim.webcam_streams == 1


async def test_a_consumer_joining_a_running_stream_starts_at_its_next_frame(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    async with printer.webcam.frames(shared=True, linger=0) as early:
        await take(early, 5)
        async with printer.webcam.frames(shared=True, linger=0) as late:
            frame = await anext(late)
            assert frame.index >= 5
            assert late.consumers == 2
            assert early.consumers == 2
        assert early.consumers == 1
    assert sim.webcam_streams == 1


async def test_the_last_consumer_leaving_ends_the_upstream_at_once(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    async with printer.webcam.frames(shared=True, linger=0) as frames:
        await anext(frames)
        assert acquired_connections(oe) == 1
    assert frames.state == "closed"
    assert acquired_connections(oe) == 0
    assert stream_tasks() == []
    await eventually(lambda: sim.webcam_streams_open == 0, "the simulator's stream to end")


async def test_linger_rides_out_a_reload_and_then_ends_the_stream(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    # The first viewer's linger outlasts any stall of a loaded machine; the last one's
    # (the reload's) is short, so the test sees the stream end.
    async with printer.webcam.frames(shared=True, linger=3600) as frames:
        await anext(frames)
    assert acquired_connections(oe) == 1  # lingering for a page reload
    async with printer.webcam.frames(shared=True, linger=0.5) as again:
        await anext(again)
    assert sim.webcam_streams == 1  # the reload reused the lingering stream
    await eventually(lambda: acquired_connections(oe) == 0, "the linger to run out")
    await eventually(lambda: not stream_tasks(), "the stream task to end")


async def test_closing_the_client_cancels_the_linger(sim: Simulator) -> None:
    sim.state.webcam.fps = 50
    async with aiohttp.ClientSession() as session:
        async with sim.client(session=session) as oe:
            printer = oe.printer(sim.app_connection())
            async with printer.webcam.frames(shared=True, linger=3600) as frames:
                await anext(frames)
            assert len(stream_tasks()) == 1
            started = time.monotonic()
        assert time.monotonic() - started < PROMPT  # not the linger's hour
        assert stream_tasks() == []
        assert acquired_connections(session) == 0


async def test_closing_the_client_ends_every_consumer(sim: Simulator) -> None:
    sim.state.webcam.fps = 20
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        streams = [printer.webcam.frames(shared=True, reconnect=True) for _ in range(3)]
        for frames in streams:
            await anext(frames)

        async def watch(frames: FrameStream) -> None:
            async for _ in frames:
                pass

        watchers = [asyncio.create_task(watch(frames)) for frames in streams]
        await oe.close()
        results = await asyncio.gather(*watchers, return_exceptions=True)
    assert all(isinstance(r, oe_async.ClientClosedError) for r in results), results
    assert stream_tasks() == []


async def test_renewals_are_shared_and_indices_stay_continuous(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 100
    sim.state.webcam.frames_per_stream = 5
    streams = [printer.webcam.frames(shared=True, reconnect=FAST, linger=0) for _ in range(3)]

    async def twelve(frames: FrameStream) -> list[oe_async.Frame]:
        async with frames:  # the last one out stops the stream before it runs further
            return await take(frames, 12)

    results = await asyncio.gather(*(twelve(frames) for frames in streams))
    # Each consumer saw 12 frames across at least two renewals; the streams were opened
    # for all three at once, not three times over (3 for frames 0-14, and at most one
    # renewal under way when the last consumer left).
    assert all(len(got) == 12 for got in results)
    assert all([f.index for f in got] == sorted({f.index for f in got}) for got in results)
    assert len(sim.requests_to("relay", "*/webcam/*")) <= 4
    assert all(frames.reconnects >= 1 for frames in streams)


async def test_an_error_reaches_every_consumer_once(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    streams = [printer.webcam.frames(shared=True, reconnect=FAST, linger=0) for _ in range(3)]
    first = await firsts(streams)
    assert {f.index for f in first} == {0}
    sim.revoke()  # the open stream goes on; its renewal gets a 604
    sim.state.webcam.frames_per_stream = 0  # the stream ends at its next frame

    async def drain(frames: FrameStream) -> BaseException | None:
        try:
            async for _ in frames:
                pass
        except oe_async.OctoEverywhereError as err:
            return err
        return None

    errors = await asyncio.gather(*(drain(frames) for frames in streams))
    assert all(isinstance(e, oe_async.AppConnectionRevokedError) for e in errors), errors
    for frames in streams:  # once: the iteration is over afterwards
        with pytest.raises(StopAsyncIteration):
            await anext(frames)
        assert frames.state == "closed"
    assert len(sim.requests_to("relay", "*/webcam/*")) == 2  # one stream, one refused renewal
    assert acquired_connections(oe) == 0


async def test_a_609_back_off_is_shared_and_seen_by_every_consumer(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 2
    sim.state.webcam.max_opens = 1
    sim.state.webcam.window_seconds = 3600  # the renewal is refused, however slow the machine
    policy = ReconnectPolicy(base_delay=0, max_delay=1, webcam_limit_delay=0.4)
    streams = [printer.webcam.frames(shared=True, reconnect=policy, linger=0) for _ in range(3)]
    await firsts(streams)
    await eventually(lambda: streams[0].state == "waiting", "the 609 back-off")
    # The limit is lifted before the back-off can end (the poll that saw the wait is due
    # long before it, on the same loop), and the stream after it never ends: one open more.
    sim.state.webcam.max_opens = None
    sim.state.webcam.frames_per_stream = None
    assert all(frames.waiting_for_webcam_limit for frames in streams)
    assert all(frames.resume_at is not None for frames in streams)
    results = await asyncio.gather(*(take(frames, 2) for frames in streams))
    assert all(len(got) == 2 for got in results)
    opens = sim.requests_to("relay", "*/webcam/*")
    assert len(opens) == 3  # ok, 609, ok after waiting: once for all three consumers
    assert opens[2].at - opens[1].at >= 0.4
    for frames in streams:
        await frames.aclose()


async def backed_off(
    printer: PrinterConnection, sim: Simulator, delay: float
) -> tuple[ReconnectPolicy, float, int]:
    """Two viewers get a 609 back-off of ``delay`` s and leave during it.

    Returns the policy, when the back-off ends and how many opens there were.
    """
    sim.state.webcam.fps = 0
    sim.state.webcam.frames_per_stream = 1
    sim.state.webcam.max_opens = 1
    sim.state.webcam.window_seconds = 3600  # the renewal is refused, however slow the machine
    policy = ReconnectPolicy(base_delay=0, max_delay=1, webcam_limit_delay=delay)
    streams = [printer.webcam.frames(shared=True, reconnect=policy) for _ in range(2)]
    await firsts(streams)
    await eventually(lambda: streams[0].waiting_for_webcam_limit, "the 609 back-off")
    resume_at = streams[0].resume_at
    assert resume_at is not None
    opens = len(sim.requests_to("relay", "*/webcam/*"))
    for frames in streams:
        await frames.aclose()
    # Nobody is watching: the stream is over at once (even with the default linger), so
    # nothing is left that could open the webcam when the back-off ends.
    assert stream_tasks() == []
    sim.state.webcam.max_opens = None
    return policy, resume_at, opens


async def test_consumers_leaving_during_a_609_back_off_cause_no_opens(
    printer: PrinterConnection, sim: Simulator
) -> None:
    # An hour's back-off: the viewer coming back sees the wait, however slow the machine.
    policy, resume_at, opens = await backed_off(printer, sim, 3600)
    async with printer.webcam.frames(shared=True, reconnect=policy, linger=0) as again:
        first = asyncio.ensure_future(anext(again))
        await eventually(lambda: again.state != "connecting", "the viewer to join")
        # It waits out what is left of the back-off before opening.
        assert again.state == "waiting"
        assert again.waiting_for_webcam_limit
        assert again.resume_at == resume_at
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert stream_tasks() == []  # it left during the wait: over at once again
    assert len(sim.requests_to("relay", "*/webcam/*")) == opens  # nothing opened meanwhile


async def test_a_viewer_coming_back_opens_when_the_609_back_off_is_over(
    printer: PrinterConnection, sim: Simulator
) -> None:
    policy, resume_at, opens = await backed_off(printer, sim, 0.5)
    async with printer.webcam.frames(shared=True, reconnect=policy, linger=0) as again:
        await anext(again)
    reopened = sim.requests_to("relay", "*/webcam/*")[opens]
    assert reopened.at >= resume_at  # not one open before the back-off was over


async def test_cancelling_a_consumer_while_it_waits_leaves_the_stream(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 0.01  # the next frame is 100 s away: the consumer waits for it
    frames = printer.webcam.frames(shared=True, linger=0)
    await anext(frames)
    waiting = asyncio.create_task(anext(frames))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert frames.state == "closed"
    assert acquired_connections(oe) == 0
    await eventually(lambda: not stream_tasks(), "the stream task to end")
    with pytest.raises(StopAsyncIteration):
        await anext(frames)


async def test_dropping_a_consumer_without_closing_it_leaves_the_stream(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    async for _ in printer.webcam.frames(shared=True, linger=0):
        break
    gc.collect()
    assert acquired_connections(oe) == 0
    await eventually(lambda: not stream_tasks(), "the stream task to end")


async def test_max_fps_is_per_consumer(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 100
    async with (
        # Room for every frame while the test reads the other consumer (a loaded machine
        # may take a second): it must get each one.
        printer.webcam.frames(shared=True, linger=0, buffer=1000) as every,
        printer.webcam.frames(shared=True, linger=0, max_fps=10) as few,
    ):
        await anext(every)
        first = await anext(few)
        slow = [first, *await take(few, 5)]
        fast = await take(every, 20)
    # 10 fps, not 100: a schedule with one frame of slack (a burst after a stall passes two
    # frames at once), so n frames span at least n - 2 intervals of 0.1 s.
    span = slow[-1].received_at - slow[0].received_at
    assert span >= (len(slow) - 2) * 0.1 - 0.005, [f.received_at for f in slow]
    assert few.skipped >= 20
    assert every.skipped == 0
    assert every.dropped == 0
    assert [f.index for f in fast] == list(range(fast[0].index, fast[0].index + 20))


async def test_different_cameras_and_the_opt_out_do_not_share(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 50
    async with (
        printer.webcam.frames(index=0, shared=True, linger=0) as zero,
        printer.webcam.frames(index=1, shared=True, linger=0) as one,
        printer.webcam.frames(index=0) as own,  # shared=False: a stream of its own
    ):
        for frames in (zero, one, own):
            await anext(frames)
        assert (zero.consumers, one.consumers, own.consumers) == (1, 1, 1)
        assert (zero.transform, one.transform) == ("flipv rotate=90", "none")
    plugin = sim.requests_to("relay", "/octoeverywhere-command-api/webcam/stream")
    assert sorted(r.query for r in plugin) == ["index=0", "index=0", "index=1"]


async def test_without_reconnect_every_consumer_sees_the_end(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.fps = 20
    sim.state.webcam.frames_per_stream = 4
    # Room for all four: a consumer the loaded machine holds up must still see each one.
    streams = [printer.webcam.frames(shared=True, buffer=4) for _ in range(2)]
    await firsts(streams)

    async def rest_of(frames: FrameStream) -> list[oe_async.Frame]:
        return [frame async for frame in frames]

    rest = await asyncio.gather(*(rest_of(frames) for frames in streams))
    assert all(len(got) == 3 for got in rest)
    assert all(frames.state == "closed" for frames in streams)
    assert sim.webcam_streams == 1


async def test_bad_shared_arguments(printer: PrinterConnection, sim: Simulator) -> None:
    for kwargs, message in [
        ({"shared": True, "buffer": 0}, "buffer"),
        ({"shared": True, "buffer": 1.5}, "buffer"),
        ({"shared": True, "linger": -1}, "linger"),
        ({"shared": True, "linger": float("inf")}, "linger"),
        ({"shared": True, "max_fps": 0}, "max_fps"),
        ({"buffer": 3}, "shared"),
        ({"linger": 1}, "shared"),
    ]:
        with pytest.raises(oe_async.InvalidArgumentError, match=message):
            printer.webcam.frames(**kwargs)  # type: ignore[arg-type]
    assert sim.requests == []


async def test_a_shared_stream_of_a_closed_client_is_a_client_closed_error(
    sim: Simulator,
) -> None:
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
    frames = printer.webcam.frames(shared=True)
    with pytest.raises(oe_async.ClientClosedError):
        await anext(frames)
    assert stream_tasks() == []
