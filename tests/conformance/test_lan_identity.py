"""The LAN identity check against the REAL plugin's ``GET /api/plugin/octoeverywhere``.

OctoPrint's OctoEverywhere plugin answers that path (``on_api_get``, ``is_api_protected``
False: no API key) with ``flask.jsonify(PluginVersion=..., PrinterId=...)``. Here the
plugin's own class answers it, in a real Flask request context, for a loopback server
playing the printer's LAN address; the relay (the simulator) passes the same plugin's
answer on byte for byte, as OctoEverywhere's relay does. Another instance of the plugin
class (a printer id of its own) plays another OctoPrint that took the address.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from oe_async import Route, RoutingOptions
from oe_async.testing import Simulator
from tests.helpers import EVENTUALLY

from .plugin_source import PluginSource

IDENTITY = "/api/plugin/octoeverywhere"
ROUTING = RoutingOptions(probe_timeout=EVENTUALLY)


class _Settings:
    """The part of OctoPrint's ``PluginSettings`` the plugin's id code uses (in memory)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, path: list[str]) -> Any:
        return self.values.get(path[0])

    def set(self, path: list[str], value: Any, *, force: bool = False) -> None:
        self.values[path[0]] = value

    def save(self, *, force: bool = False) -> None:
        pass


def _plugin() -> Any:
    """A real ``OctoeverywherePlugin`` with in-memory settings (blocking: off the loop)."""
    from octoprint_octoeverywhere import OctoeverywherePlugin  # noqa: PLC0415

    plugin = OctoeverywherePlugin()
    plugin._plugin_version = "conformance"
    plugin._settings = _Settings()
    assert plugin.is_api_protected() is False  # OctoPrint asks no API key for it
    return plugin


def _answer(plugin: Any) -> tuple[int, str, bytes]:
    """The plugin's answer to ``GET /api/plugin/octoeverywhere`` (blocking)."""
    import flask  # noqa: PLC0415 (the plugin's venv only)

    app = flask.Flask("octoprint-conformance")
    with app.test_request_context(IDENTITY, method="GET"):
        response = plugin.on_api_get(flask.request)
    return response.status_code, response.headers["Content-Type"], response.get_data()


Answer = Callable[[], tuple[int, str, bytes]]


async def _lan_server(answer: Answer, pool: ThreadPoolExecutor) -> tuple[web.AppRunner, URL]:
    """A loopback server answering the identity path with ``answer`` and ``/`` with 404."""

    async def identity(_request: web.Request) -> web.Response:
        status, content_type, body = await asyncio.get_running_loop().run_in_executor(pool, answer)
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    async def version(_request: web.Request) -> web.Response:
        return web.json_response({"api": "0.1", "server": "1.11.2"})

    app = web.Application()
    app.router.add_get(IDENTITY, identity)  # "/" is aiohttp's 404, like the simulator's
    app.router.add_get("/api/version", version)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, URL(f"http://127.0.0.1:{port}/")


@pytest_asyncio.fixture
async def plugins(
    plugin_source: PluginSource,  # extracts the plugin (skips without it)
    pool: ThreadPoolExecutor,
) -> AsyncIterator[tuple[Any, Any]]:
    loop = asyncio.get_running_loop()
    yield await loop.run_in_executor(pool, _plugin), await loop.run_in_executor(pool, _plugin)


@pytest.mark.parametrize("lan_plugin", ["same", "another"])
async def test_the_real_plugin_identity_decides_the_lan(
    plugins: tuple[Any, Any],
    pool: ThreadPoolExecutor,
    caplog: pytest.LogCaptureFixture,
    lan_plugin: str,
) -> None:
    printer_plugin, other_plugin = plugins
    loop = asyncio.get_running_loop()
    status, content_type, body = await loop.run_in_executor(pool, _answer, printer_plugin)
    printer_id = printer_plugin.EnsureAndGetPrinterId()
    assert (status, content_type.split(";")[0]) == (200, "application/json")
    assert printer_id.encode() in body
    at_lan = printer_plugin if lan_plugin == "same" else other_plugin
    runner, lan_url = await _lan_server(lambda: _answer(at_lan), pool)
    try:
        async with Simulator() as sim, sim.client() as oe:
            # The relay passes the printer's plugin answer on as it is.
            sim.fail(
                status,
                path=IDENTITY,
                origin="relay",
                body=body,
                headers={"Content-Type": content_type},
            )
            printer = oe.printer(sim.app_connection(), lan_url=lan_url, routing=ROUTING)
            assert (await printer.get_json("/api/version"))["api"] == "0.1"
            expected = Route.LAN if lan_plugin == "same" else Route.RELAY
            assert printer.route is expected
    finally:
        await runner.cleanup()
    ids = (printer_id, other_plugin.EnsureAndGetPrinterId())
    assert ids[0] != ids[1]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("oe_async"))
    assert not [i for i in ids if i in logged]
    if lan_plugin == "another":
        assert "another printer" in logged
