"""examples/mjpeg_proxy.py in a real browser: headless Chromium over the DevTools protocol.

``make browser`` runs this module (it installs Debian's ``chromium`` if it is missing and sets
``OE_BROWSER_TESTS=1``); elsewhere it is skipped. Chromium is driven over its DevTools
WebSocket with aiohttp: no browser download, no extra package. It checks what only a browser
can tell: the ``<img>`` of the proxy's page decodes a picture and the picture changes, a
slow camera's first picture shows before its second one arrives, N tabs cost one upstream
stream, and closing them ends it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from oe_async.testing import Simulator

from .helpers import acquired_connections, load_example

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or ""
pytestmark = pytest.mark.skipif(
    os.environ.get("OE_BROWSER_TESTS") != "1" or not CHROMIUM,
    reason="browser tests run with `make browser` (needs Debian's chromium)",
)

#: Chromium as root in a container, with nothing that talks to the internet (this machine
#: refuses it: without the background-networking flags Chromium keeps trying).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
TABS = 4
LINGER = 0.5
proxy = load_example("mjpeg_proxy")

#: A fingerprint of the picture the page's <img> shows now (null until one decodes).
PICTURE = """(() => {
  const img = document.getElementById("webcam");
  if (!img || !img.complete || img.naturalWidth === 0) return null;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < pixels.length; i += 7) hash = (hash * 31 + pixels[i]) | 0;
  return `${canvas.width}x${canvas.height}:${hash}`;
})()"""


class DevTools:
    """A tiny Chrome DevTools Protocol client (flattened sessions) on an aiohttp WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = message.json()
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_json(message)
        async with asyncio.timeout(30):
            answer = await future
        assert "error" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class Tab:
    def __init__(self, devtools: DevTools, target: str, session: str) -> None:
        self.devtools = devtools
        self.target = target
        self.session = session

    @classmethod
    async def open(cls, devtools: DevTools, url: str) -> Tab:
        target = (await devtools.call("Target.createTarget", url=url))["targetId"]
        session = (await devtools.call("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        return cls(devtools, target, session)

    async def picture(self) -> str | None:
        result = await self.devtools.call(
            "Runtime.evaluate", self.session, expression=PICTURE, returnByValue=True
        )
        value = result["result"].get("value")
        return value if isinstance(value, str) else None

    async def wait_for_picture(self, other_than: str | None = None, bound: float = 20) -> str:
        """Poll until the page shows a decoded picture (a different one than ``other_than``)."""
        deadline = time.monotonic() + bound
        while True:
            picture = await self.picture()
            if picture is not None and picture != other_than:
                return picture
            if time.monotonic() > deadline:
                pytest.fail(f"no {'new ' if other_than else ''}picture within {bound} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.devtools.call("Target.closeTarget", targetId=self.target)


@pytest_asyncio.fixture
async def devtools(tmp_path: Path) -> AsyncIterator[DevTools]:
    chromium = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert chromium.stderr is not None
        url = None
        async with asyncio.timeout(60):
            while url is None:
                line = (await chromium.stderr.readline()).decode(errors="replace")
                assert line, "chromium exited before its DevTools endpoint was up"
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                url = found.group(1) if found else None
        drain = asyncio.create_task(chromium.stderr.read())  # never let the pipe fill up
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, max_msg_size=0) as ws,
        ):
            client = DevTools(ws)
            try:
                yield client
            finally:
                await client.close()
        drain.cancel()
    finally:
        if chromium.returncode is None:
            chromium.terminate()
        await chromium.wait()


@pytest_asyncio.fixture
async def site(sim: Simulator) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """The proxy on loopback; its own session, so its upstream connections can be counted."""
    async with aiohttp.ClientSession() as session:
        app = proxy.create_app(
            sim.app_connection(),
            app_id=sim.app_id,
            app_api_url=sim.app_api_url,
            allow_insecure_loopback=True,
            session=session,
            linger=LINGER,
        )
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/", session
        finally:
            await runner.cleanup()


async def until(condition: object, what: str, bound: float = 15.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_tabs_show_a_live_picture_from_one_upstream_stream(
    sim: Simulator, devtools: DevTools, site: tuple[str, aiohttp.ClientSession]
) -> None:
    sim.state.webcam.fps = 5
    url, session = site
    tabs = [await Tab.open(devtools, url) for _ in range(TABS)]
    for tab in tabs:
        first = await tab.wait_for_picture()  # the JPEG decodes...
        await tab.wait_for_picture(other_than=first)  # ...and the picture changes
    assert sim.webcam_streams == 1  # N tabs, one upstream stream
    assert sim.webcam_streams_open == 1
    assert acquired_connections(session) == 1
    for tab in tabs:
        await tab.close()
    # Closing the tabs ends the upstream stream (after the proxy's short linger).
    await until(lambda: acquired_connections(session) == 0, "the proxy to close the upstream")
    await until(lambda: sim.webcam_streams_open == 0, "the simulator's stream to end")
    assert sim.webcam_streams == 1


async def test_a_slow_cameras_first_picture_shows_before_the_second_arrives(
    sim: Simulator, devtools: DevTools, site: tuple[str, aiohttp.ClientSession]
) -> None:
    sim.state.webcam.fps = 0.1  # a picture now, the next one in 10 s
    url, _ = site
    started = time.monotonic()
    tab = await Tab.open(devtools, url)
    await tab.wait_for_picture(bound=6)  # well before the second picture is sent
    print(f"first picture after {time.monotonic() - started:.2f} s")
    assert sim.webcam_streams == 1
    await tab.close()
