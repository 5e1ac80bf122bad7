"""The cameras: still images and the re-served MJPEG stream, through Home Assistant's views."""

import asyncio

from oe_async import MJPEGParser
from oe_async.mjpeg import boundary_from_content_type
from oe_async.testing import Simulator
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from homeassistant.components import camera
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .conftest import setup_entry

NOZZLE = "camera.simulated_printer_nozzle_cam"
ROOM = "camera.simulated_printer_room"


def is_jpeg(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8") and data.rstrip(b"\r\n").endswith(b"\xff\xd9")


async def test_still_image_comes_from_the_plugin_snapshot(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    image = await camera.async_get_image(hass, ROOM)
    assert image.content_type == "image/jpeg"
    assert is_jpeg(image.content)
    assert image.content in sim.jpegs
    [request] = sim.requests_to("relay", "/octoeverywhere-command-api/webcam/snapshot")
    assert request.query == "index=1"


async def test_still_image_through_the_camera_proxy(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    await setup_entry(hass, entry)
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy/{NOZZLE}")
    assert response.status == 200
    assert is_jpeg(await response.read())


async def test_still_image_failure_is_an_error_not_a_broken_image(
    hass: HomeAssistant, sim: Simulator, entry: MockConfigEntry
) -> None:
    await setup_entry(hass, entry)
    sim.fail(601, path="/octoeverywhere-command-api/webcam/snapshot")
    with pytest.raises(HomeAssistantError, match="offline"):
        await camera.async_get_image(hass, NOZZLE)


#: What follows every picture: the next part's boundary and headers (browsers show a part
#: once these arrive, so a picture shows without waiting for the next one).
NEXT_PART = b"\r\n--frameboundary\r\nContent-Type: image/jpeg\r\n\r\n"


async def read_raw(response: object, done: object) -> bytes:
    """The proxy's raw body until ``done(body)`` (with a generous bound)."""
    body = b""
    async with asyncio.timeout(10):
        while not done(body):  # type: ignore[operator]
            chunk = await response.content.readany()  # type: ignore[attr-defined]
            assert chunk, "the stream ended"
            body += chunk
    return body


async def read_frames(response: object, count: int) -> list[bytes]:
    """Parse ``count`` frames from the proxy's multipart stream."""
    boundary = boundary_from_content_type(response.headers["Content-Type"])  # type: ignore[attr-defined]
    assert boundary == b"frameboundary"
    parser = MJPEGParser(boundary)
    frames: list[bytes] = []
    async for chunk in response.content.iter_any():  # type: ignore[attr-defined]
        frames.extend(frame.data for frame in parser.feed(chunk))
        if len(frames) >= count:
            return frames
    pytest.fail(f"the stream ended after {len(frames)} frames")


async def test_mjpeg_stream_re_serves_the_webcam_frames(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    sim.state.webcam.fps = 50
    await setup_entry(hass, entry)
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{NOZZLE}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    frames = await read_frames(response, 6)
    assert all(is_jpeg(frame) for frame in frames)
    assert all(frame in sim.jpegs for frame in frames)
    [request] = sim.requests_to("relay", "/octoeverywhere-command-api/webcam/stream")
    assert request.query == "index=0"
    # The viewer leaves; unloading ends the shared stream that would linger for a reload
    # (the harness fails the test on a task or timer still running afterwards).
    response.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_a_picture_shows_as_soon_as_it_arrives(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    sim.state.webcam.fps = 0.01  # one picture now, the next in 100 s
    await setup_entry(hass, entry)
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{NOZZLE}")
    first = sim.jpegs[0]
    # The next part's headers follow the picture at once: a browser shows it now, not when
    # the next picture arrives.
    body = await read_raw(response, lambda b: first + NEXT_PART in b)
    assert body == NEXT_PART.lstrip(b"\r\n") + first + NEXT_PART
    response.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_viewers_of_a_camera_share_one_webcam_stream(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    sim.state.webcam.fps = 20
    await setup_entry(hass, entry)
    client = await hass_client()
    viewers = [await client.get(f"/api/camera_proxy_stream/{NOZZLE}") for _ in range(4)]
    for response in viewers:
        frames = await read_frames(response, 2)
        assert all(frame in sim.jpegs for frame in frames)
    # Four viewers, one OctoEverywhere stream (each used to open its own).
    assert len(sim.requests_to("relay", "/octoeverywhere-command-api/webcam/stream")) == 1
    assert sim.webcam_streams_open == 1
    for response in viewers[:3]:
        response.close()
    # A viewer coming back (a dashboard reload) while one still watches: the same stream.
    again = await client.get(f"/api/camera_proxy_stream/{NOZZLE}")
    await read_frames(again, 2)
    assert len(sim.requests_to("relay", "/octoeverywhere-command-api/webcam/stream")) == 1
    again.close()
    viewers[3].close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_mjpeg_stream_survives_the_relays_stream_limit(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    sim.state.webcam.fps = 50
    sim.state.webcam.frames_per_stream = 3  # the relay ends each stream after 3 frames
    await setup_entry(hass, entry)
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{NOZZLE}")
    frames = await read_frames(response, 10)
    assert all(is_jpeg(frame) for frame in frames)
    assert len(sim.requests_to("relay", "/octoeverywhere-command-api/webcam/stream")) >= 3
    response.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_mjpeg_stream_failing_at_once_is_a_bad_gateway(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    await setup_entry(hass, entry)
    sim.fail(604, path="/octoeverywhere-command-api/webcam/stream")
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{NOZZLE}")
    assert response.status == 502


async def test_unloading_ends_a_running_stream(
    hass: HomeAssistant,
    sim: Simulator,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    sim.state.webcam.fps = 20
    await setup_entry(hass, entry)
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{NOZZLE}")
    await read_frames(response, 2)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    # Closing the client ends the stream within a second: the response finishes.
    async with asyncio.timeout(5):
        async for _ in response.content.iter_any():
            pass
