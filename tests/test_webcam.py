"""Webcam frames, snapshots, renewal and the plugin webcam list against the simulator."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json

import pytest

import oe_async
from oe_async import PrinterConnection, ReconnectPolicy
from oe_async.testing import Simulator
from oe_async.testing.mjpeg_source import QUIRKS

from .helpers import acquired_connections

FAST = ReconnectPolicy(base_delay=0.0, max_delay=0.0, webcam_limit_delay=0.0)


def expected(sim: Simulator, count: int, start: int = 0) -> list[bytes]:
    return [sim.jpegs[(start + i) % len(sim.jpegs)] for i in range(count)]


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
    assert sim.requests_to("relay", "/webcam/")[0].authorization == sim.auth.header_value


async def test_max_fps_drops_surplus_frames(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.fps = 100
    sim.state.webcam.frames_per_stream = 60  # 0.6 s of stream
    async with printer.webcam.frames(max_fps=10) as frames:
        got = [frame async for frame in frames]
    assert 4 <= len(got) <= 9
    assert frames.skipped >= 45
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(got)]
    assert min(gaps) >= 0.1 - 0.005


async def test_renewal_across_three_stream_ends_is_continuous(
    printer: PrinterConnection, sim: Simulator
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
    assert len(sim.requests_to("relay", "/webcam/")) == 4
    assert acquired_connections(printer.session) == 0


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
    sim.state.webcam.max_opens = 1
    sim.state.webcam.window_seconds = 0.25
    policy = ReconnectPolicy(base_delay=0, max_delay=1, webcam_limit_delay=0.3)
    async with printer.webcam.frames(reconnect=policy) as frames:
        got = []
        async for frame in frames:
            got.append(frame)
            if len(got) == 6:
                break
    opens = sim.requests_to("relay", "/webcam/")
    assert len(opens) == 3  # ok, 609, ok after waiting
    assert opens[2].at - opens[1].at >= 0.3
    assert [f.index for f in got] == list(range(6))


async def test_609_retry_after_is_honoured(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.frames_per_stream = 1
    sim.state.webcam.fps = 0
    sim.state.webcam.max_opens = 1
    sim.state.webcam.window_seconds = 0.1
    sim.state.webcam.retry_after = 1
    policy = ReconnectPolicy(base_delay=0, max_delay=0.1, webcam_limit_delay=0.05)
    async with printer.webcam.frames(reconnect=policy) as frames:
        got = [await anext(frames), await anext(frames)]
    opens = sim.requests_to("relay", "/webcam/")
    assert opens[2].at - opens[1].at >= 1.0
    assert [f.index for f in got] == [0, 1]


async def test_609_without_reconnect_is_raised(printer: PrinterConnection, sim: Simulator) -> None:
    sim.state.webcam.max_opens = 0
    with pytest.raises(oe_async.WebcamLimitError):
        async with printer.webcam.frames() as frames:
            await anext(frames)


async def test_permanent_errors_end_the_stream(printer: PrinterConnection, sim: Simulator) -> None:
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
    assert len(sim.requests_to("relay", "/webcam/")) == 2  # no retry of a 604
    assert acquired_connections(printer.session) == 0


async def test_temporary_errors_give_up_after_max_failures(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.printer_online = False
    with pytest.raises(oe_async.PrinterOfflineError):
        async with printer.webcam.frames(
            reconnect=ReconnectPolicy(max_failures=3, base_delay=0)
        ) as frames:
            await anext(frames)
    assert len(sim.requests_to("relay", "/webcam/")) == 3


async def test_a_stream_without_reconnect_simply_ends(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.frames_per_stream = 3
    sim.state.webcam.fps = 0
    got = [f async for f in printer.webcam.frames()]
    assert len(got) == 3
    assert acquired_connections(printer.session) == 0


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


async def test_a_missing_plugin_webcam_is_a_plugin_error(printer: PrinterConnection) -> None:
    with pytest.raises(oe_async.PluginCommandError, match="no webcam at index 7"):
        async with printer.webcam.frames(index=7) as frames:
            await anext(frames)
    with pytest.raises(oe_async.PluginCommandError):
        await printer.webcam.snapshot(index=7)


async def test_oversized_frames_are_an_mjpeg_error(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.webcam.large = True
    with pytest.raises(oe_async.MJPEGError, match="max_frame_size"):
        async with printer.webcam.frames(max_frame_size=10_000) as frames:
            await anext(frames)
    assert acquired_connections(printer.session) == 0


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
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        frame = await printer.webcam.snapshot(from_stream=True)
        assert frame.data == sim.jpegs[0]
        assert acquired_connections(printer.session) == 0

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
    printer: PrinterConnection, sim: Simulator
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
        assert acquired_connections(printer.session) == 0


async def test_breaking_a_plain_async_for_releases_the_connection(
    printer: PrinterConnection, sim: Simulator
) -> None:
    async for _ in printer.webcam.frames():
        break
    gc.collect()
    assert acquired_connections(printer.session) == 0
