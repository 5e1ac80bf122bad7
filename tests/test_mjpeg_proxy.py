"""examples/mjpeg_proxy.py re-serves the simulator's webcam to browser-like clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
import pytest_asyncio
from aiohttp import web

from oe_async.mjpeg import MJPEGParser
from oe_async.testing import Simulator

from .helpers import acquired_connections, load_example

proxy = load_example("mjpeg_proxy")
NEXT_PART = b"\r\n--oe-async-frame\r\nContent-Type: image/jpeg\r\n\r\n"


@attrs.define
class Proxy:
    url: str
    runner: web.AppRunner
    #: The proxy's own aiohttp session (borrowed by its OctoEverywhere client): one pool, so
    #: ``acquired_connections(session)`` counts its upstream webcam streams.
    session: aiohttp.ClientSession


@pytest_asyncio.fixture
async def running(sim: Simulator) -> AsyncIterator[Proxy]:
    async with aiohttp.ClientSession() as session:
        app = proxy.create_app(
            sim.app_connection(),
            app_id=sim.app_id,
            app_api_url=sim.app_api_url,
            allow_insecure_loopback=True,
            session=session,
            linger=0,
        )
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield Proxy(f"http://127.0.0.1:{runner.addresses[0][1]}", runner, session)
        finally:
            await runner.cleanup()


async def read_until(resp: aiohttp.ClientResponse, done: object, bound: float = 10.0) -> bytes:
    """Read the body until ``done(body)`` is true (failing after a generous bound)."""
    body = b""
    async with asyncio.timeout(bound):
        while not done(body):  # type: ignore[operator]
            chunk = await resp.content.readany()
            assert chunk, "the stream ended"
            body += chunk
    return body


async def until(condition: object, what: str, bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_stream_serves_valid_jpeg_parts(sim: Simulator, running: Proxy) -> None:
    sim.state.webcam.fps = 50
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(running.url + "/stream.mjpg") as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "multipart/x-mixed-replace"
        assert resp.headers["Cache-Control"] == "no-store"
        parser = MJPEGParser.from_content_type(resp.headers["Content-Type"])
        frames = []
        async for chunk in resp.content.iter_any():
            frames += parser.feed(chunk)
            if len(frames) >= 5:
                break
    assert all(f.data.startswith(b"\xff\xd8") and f.data.endswith(b"\xff\xd9") for f in frames)
    assert all(f.data in sim.jpegs for f in frames)
    assert frames[0].data == sim.jpegs[0]
    assert all(f.content_type == "image/jpeg" for f in frames)


async def test_a_picture_is_complete_as_soon_as_it_arrives(sim: Simulator, running: Proxy) -> None:
    # One frame now, the next in 100 s: a browser must not need the second to show the first.
    sim.state.webcam.fps = 0.01
    async with aiohttp.ClientSession() as browser, browser.get(running.url + "/stream.mjpg") as r:
        first = sim.jpegs[0]
        # The next part's boundary and headers follow the picture: Chromium shows a part
        # once they arrive, so the picture shows without waiting for the next one.
        body = await read_until(r, lambda b: first + NEXT_PART in b)
    assert body == NEXT_PART.lstrip(b"\r\n") + first + NEXT_PART


async def test_viewers_share_one_upstream_stream(sim: Simulator, running: Proxy) -> None:
    sim.state.webcam.fps = 20
    async with aiohttp.ClientSession() as browser:
        responses = [await browser.get(running.url + "/stream.mjpg") for _ in range(4)]
        try:
            for resp in responses:  # every viewer gets pictures...
                assert resp.status == 200
                await read_until(resp, lambda b: b.count(b"\xff\xd9") >= 2)
            assert sim.webcam_streams == 1  # ...from one upstream stream
            assert acquired_connections(running.session) == 1
        finally:
            for resp in responses:
                resp.close()
    # They all left: the stream ends (the app is built with linger=0 here).
    await until(lambda: acquired_connections(running.session) == 0, "the upstream to close")


async def test_a_viewer_leaving_is_noticed_at_once(sim: Simulator, running: Proxy) -> None:
    sim.state.webcam.fps = 0.01  # the next frame, whose write would fail, is 100 s away
    async with aiohttp.ClientSession() as browser:
        resp = await browser.get(running.url + "/stream.mjpg")
        await read_until(resp, lambda b: sim.jpegs[0] in b)
        assert acquired_connections(running.session) == 1
        resp.close()
    await until(lambda: acquired_connections(running.session) == 0, "the viewer's share to end")


async def test_a_revoked_connection_is_an_http_error_before_any_multipart_header(
    sim: Simulator, running: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    sim.revoke()
    with caplog.at_level(logging.INFO):
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(running.url + "/stream.mjpg") as resp,
        ):
            assert resp.status == 503
            assert resp.content_type == "text/plain"
            text = await resp.text()
    assert "revoked" in text.lower() or "removed" in text.lower()
    assert sim.auth.header_value not in text
    assert_one_quiet_line(caplog)


async def test_a_revoke_mid_stream_ends_the_body_with_one_log_line(
    sim: Simulator, running: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    sim.state.webcam.fps = 50
    sim.state.webcam.frames_per_stream = 3  # the renewal after these is refused with a 604
    with caplog.at_level(logging.INFO):
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(running.url + "/stream.mjpg") as resp,
        ):
            await read_until(resp, lambda b: sim.jpegs[0] in b)
            sim.revoke()
            async with asyncio.timeout(10):
                with contextlib.suppress(aiohttp.ClientPayloadError):
                    while await resp.content.readany():
                        pass
    assert_one_quiet_line(caplog)


def assert_one_quiet_line(caplog: pytest.LogCaptureFixture) -> None:
    """Exactly one line from the proxy, and no traceback from anyone (aiohttp included)."""
    ours = [r for r in caplog.records if r.name == "mjpeg_proxy"]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if "Error handling request" in r.getMessage()]


async def test_the_page_shows_the_stream(running: Proxy) -> None:
    async with aiohttp.ClientSession() as browser, browser.get(running.url + "/") as resp:
        assert resp.content_type == "text/html"
        assert 'src="stream.mjpg"' in await resp.text()


async def test_snapshot_is_one_jpeg(sim: Simulator, running: Proxy) -> None:
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(running.url + "/snapshot.jpg") as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "image/jpeg"
        body = await resp.read()
    assert body in sim.jpegs


async def test_snapshot_failure_is_a_503(sim: Simulator, running: Proxy) -> None:
    sim.fail(601, path="*/webcam/*")
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(running.url + "/snapshot.jpg") as resp,
    ):
        assert resp.status == 503
        text = await resp.text()
    assert "offline" in text.lower() or "not connected" in text.lower()
    assert sim.auth.header_value not in text


#: "Promptly" on a loaded machine: seconds, against a 20 fps stream that never ends by itself.
PROMPT = 10.0


async def test_shutdown_ends_open_streams_promptly(sim: Simulator, running: Proxy) -> None:
    sim.state.webcam.fps = 20
    async with aiohttp.ClientSession() as browser:
        resp = await browser.get(running.url + "/stream.mjpg")
        await resp.content.readany()  # the stream is flowing
        started = time.monotonic()
        await running.runner.cleanup()
        assert time.monotonic() - started < PROMPT
        # The browser's stream ends (the server closes it) instead of hanging.
        async with asyncio.timeout(PROMPT):
            with contextlib.suppress(aiohttp.ClientPayloadError):
                while await resp.content.readany():
                    pass
        resp.release()
    assert sim.webcam_streams >= 1
