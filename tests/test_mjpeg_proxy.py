"""examples/mjpeg_proxy.py re-serves the simulator's webcam to a browser-like client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp import web

from oe_async.mjpeg import MJPEGParser
from oe_async.testing import Simulator

from .helpers import load_example

proxy = load_example("mjpeg_proxy")


@pytest_asyncio.fixture
async def proxy_url(sim: Simulator) -> AsyncIterator[tuple[str, web.AppRunner]]:
    app = proxy.create_app(
        sim.app_connection(),
        app_id=sim.app_id,
        app_api_url=sim.app_api_url,
        allow_insecure_loopback=True,
    )
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", runner
    finally:
        await runner.cleanup()


async def test_stream_serves_valid_jpeg_parts(
    sim: Simulator, proxy_url: tuple[str, web.AppRunner]
) -> None:
    sim.state.webcam.fps = 50
    url, _ = proxy_url
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url + "/stream.mjpg") as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "multipart/x-mixed-replace"
        parser = MJPEGParser.from_content_type(resp.headers["Content-Type"])
        frames = []
        async for chunk in resp.content.iter_any():
            frames += parser.feed(chunk)
            if len(frames) >= 5:
                break
    assert all(f.data.startswith(b"\xff\xd8") and f.data.endswith(b"\xff\xd9") for f in frames)
    assert [f.data for f in frames[:5]] == [sim.jpegs[i % len(sim.jpegs)] for i in range(5)]
    assert all(f.content_type == "image/jpeg" for f in frames)


async def test_snapshot_is_one_jpeg(sim: Simulator, proxy_url: tuple[str, web.AppRunner]) -> None:
    url, _ = proxy_url
    async with aiohttp.ClientSession() as browser, browser.get(url + "/snapshot.jpg") as resp:
        assert resp.status == 200
        assert resp.content_type == "image/jpeg"
        body = await resp.read()
    assert body in sim.jpegs


async def test_snapshot_failure_is_a_503(
    sim: Simulator, proxy_url: tuple[str, web.AppRunner]
) -> None:
    sim.fail(601, path="*/webcam/*")
    url, _ = proxy_url
    async with aiohttp.ClientSession() as browser, browser.get(url + "/snapshot.jpg") as resp:
        assert resp.status == 503
        text = await resp.text()
    assert "offline" in text.lower() or "not connected" in text.lower()
    assert sim.auth.header_value not in text


#: "Promptly" on a loaded machine: seconds, against a 20 fps stream that never ends by itself.
PROMPT = 10.0


async def test_shutdown_ends_open_streams_promptly(
    sim: Simulator, proxy_url: tuple[str, web.AppRunner]
) -> None:
    sim.state.webcam.fps = 20
    url, runner = proxy_url
    async with aiohttp.ClientSession() as browser:
        resp = await browser.get(url + "/stream.mjpg")
        await resp.content.readany()  # the stream is flowing
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < PROMPT
        # The browser's stream ends (the server closes it) instead of hanging.
        async with asyncio.timeout(PROMPT):
            with contextlib.suppress(aiohttp.ClientPayloadError):
                while await resp.content.readany():
                    pass
        resp.release()
    assert sim.webcam_streams >= 1
