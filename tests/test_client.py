"""Session ownership, client lifecycle and cheap per-printer connections."""

from __future__ import annotations

import gc
import tracemalloc

import aiohttp
import pytest

from oe_async import InvalidArgumentError, OctoEverywhere, OctoEverywhereError
from oe_async.testing import Simulator


async def test_borrowed_session_is_not_closed_and_its_headers_are_untouched(sim: Simulator) -> None:
    async with aiohttp.ClientSession(headers={"X-Existing": "1"}) as session:
        before = dict(session.headers)
        async with sim.client(session=session) as oe:
            printer = oe.printer(sim.app_connection())
            await printer.get_json("/api/version")
            await printer.app_api.info()
            assert oe.session is session
        assert not session.closed
        assert dict(session.headers) == before
        # The secrets travelled per request, not through the session.
        assert all(sim.auth.header_value not in v for v in session.headers.values())
        relay = sim.requests_to("relay", "/api/version")
        assert relay[0].authorization == sim.auth.header_value
        assert relay[0].headers.get("X-Existing") == "1"  # the app's own defaults still apply


async def test_owned_session_is_closed_on_exit(sim: Simulator) -> None:
    async with sim.client() as oe:
        session = oe.session
        await oe.printer(sim.app_connection()).get_json("/api/version")
    assert session.closed
    assert oe.closed


async def test_sessions_lists_every_pool_without_creating_one(sim: Simulator) -> None:
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        await printer.get_json("/api/version")
        assert oe.sessions == (oe.session,)  # no stream yet: reading it made no streams pool
        assert oe.sessions == (oe.session,)
        async with printer.webcam.frames() as frames:
            await anext(frames)
        requests, streams = oe.sessions
        assert requests is oe.session
        assert streams is not requests
        assert streams.connector is not requests.connector  # a pool of its own
    assert oe.sessions == (requests, streams)  # still listed after close(), both closed
    assert requests.closed
    assert streams.closed
    async with aiohttp.ClientSession() as session, sim.client(session=session) as borrowing:
        printer = borrowing.printer(sim.app_connection())
        async with printer.webcam.frames() as frames:
            await anext(frames)
        assert borrowing.sessions == (session,)  # streams share the borrowed pool


async def test_close_is_idempotent_and_use_after_close_is_a_clear_error(sim: Simulator) -> None:
    oe = sim.client()
    printer = oe.printer(sim.app_connection())
    await printer.get_json("/api/version")
    await oe.close()
    await oe.close()
    with pytest.raises(OctoEverywhereError, match="closed"):
        await printer.get_json("/api/version")


async def test_closed_borrowed_session_is_a_clear_error(sim: Simulator) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    oe = sim.client(session=session)
    with pytest.raises(OctoEverywhereError, match="session given to OctoEverywhere is closed"):
        await oe.printer(sim.app_connection()).get_json("/api/version")
    with pytest.raises(OctoEverywhereError, match="session given to OctoEverywhere is closed"):
        async with oe:
            pass


async def test_session_is_created_lazily_without_context_manager(sim: Simulator) -> None:
    oe = sim.client()
    try:
        assert (await oe.printer(sim.app_connection()).get_json("/api/version"))["api"] == "0.1"
    finally:
        await oe.close()


async def test_thousands_of_printers_share_one_session_cheaply(sim: Simulator) -> None:
    async with sim.client() as oe:
        session = oe.session
        conn = sim.app_connection()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            printers = [oe.printer(conn) for _ in range(5000)]
            per_printer = (tracemalloc.get_traced_memory()[0] - before) / len(printers)
        finally:
            tracemalloc.stop()
        assert sim.requests == []  # creating a printer does no I/O
        assert all(p.session is session for p in printers)
        assert per_printer < 4096, f"{per_printer:.0f} bytes per PrinterConnection"
        await printers[-1].get_json("/api/version")
        assert session.connector is not None
        assert len(sim.requests) == 1


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="app_id"):
        OctoEverywhere("")
    with pytest.raises(InvalidArgumentError, match="app_api_url"):
        OctoEverywhere("app", app_api_url="http://octoeverywhere.com")
    with pytest.raises(InvalidArgumentError, match="timeout"):
        OctoEverywhere("app", timeout=-1)
    oe = OctoEverywhere("app")
    with pytest.raises(InvalidArgumentError, match="AppConnection"):
        oe.printer({"url": "https://x"})  # type: ignore[arg-type]


async def test_user_agent_names_the_app(sim: Simulator) -> None:
    async with sim.client() as oe:
        await oe.printer(sim.app_connection()).get_json("/api/version")
    ua = sim.requests[0].headers["User-Agent"]
    assert ua.startswith("oe-async/")
    assert sim.app_id in ua


def test_repr_shows_no_secret() -> None:
    oe = OctoEverywhere("my-app")
    assert repr(oe) == "<OctoEverywhere app_id='my-app' session=owned closed=False>"


async def test_feature_reprs_name_the_feature_and_the_funnel(sim: Simulator) -> None:
    async with sim.client() as oe:
        printer = oe.printer(sim.app_connection())
        funnel = "<Funnel printer 'Simulated Printer' ("
        features = {
            "AppAPI": printer.app_api,
            "Files": printer.files,
            "PluginAPI": printer.plugin,
            "Webcam": printer.webcam,
            "WebSockets": printer.websocket,
            "Gadget": printer.gadget,
        }
        for name, feature in features.items():
            text = repr(feature)
            assert text.startswith(f"<{name} of {funnel}"), text
            assert text.endswith(" route=relay>>"), text
