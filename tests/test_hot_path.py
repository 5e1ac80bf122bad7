"""The small-request path (issue 14.8): what it skips must not change what it does.

``get_json`` reads a small answer in place, keeps what each call sends per route
(``Call.sends``) and tracks its response in a plain set: these tests pin the behaviour
those shortcuts could change (JSON decoding, close, a new LAN address), and what a review
of it found (close during a back-off, a LAN fallback's deadline, a session's own ``auth=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from yarl import URL

from oe_async import (
    ClientClosedError,
    OctoEverywhere,
    RequestTimeoutError,
    RetryPolicy,
    UnexpectedResponseError,
)
from oe_async.testing import Simulator
from oe_async.testing.hostile import HostileServer

from .helpers import acquired_connections, eventually, recording_on_port_80

#: Seconds close() may take to end a call: generous for a loaded machine, far under its timeout.
PROMPT = 10.0
TEXT = {"name": "Benchy é ✓"}
BODIES: dict[str, tuple[bytes, Any]] = {
    "UTF-8": ('{"name": "Benchy é ✓"}'.encode(), TEXT),
    "UTF-8 with a BOM": (b"\xef\xbb\xbf" + '{"name": "Benchy é ✓"}'.encode(), TEXT),
    "UTF-16 with a BOM": ('{"name": "Benchy é ✓"}'.encode("utf-16"), TEXT),
    "UTF-16-LE without one": ('{"name": "Benchy é ✓"}'.encode("utf-16-le"), TEXT),
    "empty": (b"", None),
    "whitespace": (b" \r\n\t", None),
    "null": (b"null", None),
    "a number": (b"42", 42),
    "not JSON": (b"<html>busy</html>", UnexpectedResponseError),
    "invalid UTF-8": (b'{"name": "\xff"}', UnexpectedResponseError),
}


@contextlib.asynccontextmanager
async def lan_serving(body: bytes, *, chunked: bool) -> AsyncIterator[URL]:
    """A plain-http LAN printer answering ``body`` (with Content-Length, or chunked)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 7):
            await resp.write(body[i : i + 7])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield URL(f"http://127.0.0.1:{runner.addresses[0][1]}/")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("name", list(BODIES))
async def test_json_bodies_decode_the_same_on_both_read_paths(
    oe: OctoEverywhere, sim: Simulator, name: str, chunked: bool
) -> None:
    body, expected = BODIES[name]
    async with lan_serving(body, chunked=chunked) as lan:
        printer = oe.printer(sim.app_connection(), lan_url=lan, route="local")
        if expected is UnexpectedResponseError:
            with pytest.raises(UnexpectedResponseError, match="GET /api/job answered a body"):
                await printer.get_json("/api/job")
        else:
            assert await printer.get_json("/api/job") == expected


async def session_in(mode: str, stack: contextlib.AsyncExitStack) -> aiohttp.ClientSession | None:
    """None for an owned session, else a borrowed ``ClientSession`` that ``stack`` closes."""
    if mode == "owned":
        return None
    return await stack.enter_async_context(aiohttp.ClientSession())


@pytest.mark.parametrize("mode", ["owned", "borrowed"])
async def test_close_ends_a_small_answer_being_read(
    sim: Simulator, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The small-answer path holds its response where close() finds it, in both modes."""
    async with contextlib.AsyncExitStack() as stack:
        session = await session_in(mode, stack)
        server = await stack.enter_async_context(HostileServer("stall_body", stall_after=100))
        oe = sim.client(session=session)
        printer = oe.printer(sim.app_connection(url=server.url))
        caplog.set_level(logging.DEBUG, logger="oe_async")
        task = asyncio.create_task(printer.get_json("/api/job", timeout=60))
        # The funnel logs the status as it hands the response over (held in the same step);
        # the body then stalls half-way.
        await eventually(
            lambda: any(r.getMessage().endswith("GET /api/job -> 200") for r in caplog.records),
            "the headers are in",
        )
        assert not task.done()
        began = time.monotonic()
        await oe.close()
        done, _ = await asyncio.wait({task}, timeout=PROMPT)
        assert done, f"still reading {PROMPT:g} s after close() (the call's timeout is 60 s)"
        assert isinstance(task.exception(), ClientClosedError)
        assert time.monotonic() - began < PROMPT + 0.5
        if session is not None:
            assert acquired_connections(session) == 0


async def test_calls_made_before_a_new_lan_address_follow_it(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    """What a call sends per route is remembered; a new LAN address (Info API) renews it."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            old = await recording_on_port_80(stack)
            new = await recording_on_port_80(stack)
        except OSError as err:
            pytest.skip(f"needs port 80 on loopback addresses other than 127.0.0.1 ({err})")
        printer = oe.printer(
            sim.app_connection(local_ip=old.host),
            route="local",
            headers={"X-Api-Key": "lan-key"},
        )
        for _ in range(2):
            await printer.get_json("/api/job")
        sim.state.local_ip = new.host
        await printer.app_api.info()
        for _ in range(2):
            await printer.get_json("/api/job")
        assert [s.path for s in old.seen] == ["/api/job"] * 2
        assert [s.path for s in new.seen] == ["/api/job"] * 2
        assert all(s.headers["X-Api-Key"] == "lan-key" for s in new.seen)
        assert new.secret_headers_seen() == [("/api/job", "X-Api-Key")] * 2


# ---------------------------------------------------------------- found reviewing this path


@attrs.frozen(kw_only=True)
class SignalledBackOff(RetryPolicy):
    """Backs off a fixed ``base_delay`` (no jitter) and sets ``began`` as a back-off starts.

    The funnel sleeps right after it draws the delay, with no await in between: a test woken
    by ``began`` runs while the call is inside its back-off, whatever the machine's load.
    """

    began: asyncio.Event = attrs.field(factory=asyncio.Event, eq=False)

    def backoff(self, retry_number: int) -> float:
        self.began.set()
        return self.base_delay


@pytest.mark.parametrize("mode", ["owned", "borrowed"])
async def test_close_during_a_retry_back_off_ends_the_call(sim: Simulator, mode: str) -> None:
    """Owned: aiohttp's RuntimeError('Session is closed') escaped; borrowed: the retry went out."""
    async with contextlib.AsyncExitStack() as stack:
        session = await session_in(mode, stack)
        # A fixed 60 s back-off: close() must end it, not wait for it.
        retry = SignalledBackOff(attempts=3, base_delay=60, max_delay=60)
        oe = sim.client(session=session, retry=retry)
        printer = oe.printer(sim.app_connection())
        sim.fail(600, path="/api/job", origin="relay", times=1)
        # A deadline the back-off fits in (a retry that would not fit is never started).
        task = asyncio.create_task(printer.get_json("/api/job", timeout=300))
        await retry.began.wait()  # the first attempt failed; the call sleeps before the retry
        assert not task.done()
        await oe.close()
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(task, 30)  # long before the 60 s back-off ends
        assert len(sim.requests_to("relay", "/api/job")) == 1  # nothing sent after close()


async def test_a_lan_fallback_keeps_the_calls_deadline(sim: Simulator) -> None:
    """The relay attempt after a LAN timeout gets what is left, not the whole timeout again."""
    lan = await sim.start_lan()
    async with sim.client(retry=RetryPolicy.never()) as oe:
        printer = oe.printer(sim.app_connection(), lan_url=lan, route="prefer_local")
        await printer.get_json("/api/job")
        sim.state.latency = 10
        began = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await printer.get_json("/api/job", timeout=2)
        # 2 s honoured; 4 s when the relay attempt got the whole timeout again (as before).
        assert time.monotonic() - began < 3
        sim.state.latency = 0


@pytest.mark.parametrize("route", ["relay", "local"])
async def test_a_borrowed_sessions_default_auth_never_reaches_the_lan(
    sim: Simulator, route: str
) -> None:
    """A session-wide ``auth=`` takes the middleware path: pinned on the relay, cut on the LAN.

    The direct path raised aiohttp's ValueError on the relay (two Authorization sources) and
    sent the session owner's Basic credentials to the plain-http LAN.
    """
    lan = await sim.start_lan()
    with pytest.warns(DeprecationWarning, match="(?i)auth"):  # both deprecated in aiohttp 3.14
        session = aiohttp.ClientSession(auth=aiohttp.BasicAuth("owner", "owner-pw"))
    async with session, sim.client(session=session) as oe:
        printer = oe.printer(
            sim.app_connection(), route=route, lan_url=lan if route == "local" else None
        )
        assert (await printer.get_json("/api/version"))["api"]
    if route == "local":
        assert [r.headers.get("Authorization") for r in sim.requests_to("lan")] == [None]
    else:
        [seen] = sim.requests_to("relay", "/api/version")
        assert seen.headers["Authorization"] == sim.auth.header_value
