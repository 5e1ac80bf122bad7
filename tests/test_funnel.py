"""The request funnel: URL joining, pinned headers, error translation, retries, cancellation."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from yarl import URL

import oe_async
from oe_async import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhere,
    PrinterConnection,
    PrinterHTTPError,
    RequestTimeoutError,
    RetryPolicy,
)
from oe_async._http import join_url
from oe_async.testing import Simulator

from .helpers import acquired_connections, eventually

NO_RETRY = RetryPolicy.never()


class TestJoinUrl:
    base = oe_async.AppConnection(
        url="https://app-x.octoeverywhere.com", auth=oe_async.BearerAuth("t"), app_token="a"
    ).url

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/api/version", "https://app-x.octoeverywhere.com/api/version"),
            ("api/version", "https://app-x.octoeverywhere.com/api/version"),
            (
                "/api/files?recursive=true",
                "https://app-x.octoeverywhere.com/api/files?recursive=true",
            ),
            (
                "/downloads/files/local/my part.gcode",
                "https://app-x.octoeverywhere.com/downloads/files/local/my%20part.gcode",
            ),
            ("a:b.gcode", "https://app-x.octoeverywhere.com/a:b.gcode"),
            ("https://app-x.octoeverywhere.com/x", "https://app-x.octoeverywhere.com/x"),
        ],
    )
    def test_joins_beneath_the_base(self, path: str, expected: str) -> None:
        assert str(join_url(self.base, path)) == expected

    def test_keeps_a_base_path_prefix(self) -> None:
        assert (
            str(join_url(URL("http://10.0.0.5/octoprint/"), "/api/job"))
            == "http://10.0.0.5/octoprint/api/job"
        )

    @pytest.mark.parametrize(
        "path", ["//evil.example/x", "https://evil.example/x", "http://app-x.octoeverywhere.com/x"]
    )
    def test_refuses_other_origins(self, path: str) -> None:
        with pytest.raises(InvalidArgumentError):
            join_url(self.base, path)


async def test_paths_params_and_methods(printer: PrinterConnection, sim: Simulator) -> None:
    body = await printer.get_json("echo/a b", params={"x": "1"})
    assert body == {
        "method": "GET",
        "path": "/echo/a b",
        "query": "x=1",
        "body_bytes": 0,
        "x_api_key": False,
    }
    async with printer.request("put", "/echo/put?y=2", data=b"12345") as resp:
        assert (await resp.json())["body_bytes"] == 5
    assert (await printer.post_json("/echo/post", {"k": "v"}))["method"] == "POST"


async def test_refuses_foreign_urls_before_sending(
    printer: PrinterConnection, sim: Simulator
) -> None:
    with pytest.raises(InvalidArgumentError, match="origin"):
        await printer.get_json("https://example.com/api/version")
    with pytest.raises(InvalidArgumentError, match="//"):
        await printer.get_json("//example.com/api/version")
    assert sim.requests == []


async def test_bad_arguments_are_refused_before_sending(
    printer: PrinterConnection, sim: Simulator
) -> None:
    with pytest.raises(InvalidArgumentError, match="method"):
        printer.request("GE T", "/api/version")
    with pytest.raises(InvalidArgumentError, match="json or data"):
        printer.request("POST", "/echo/x", json={}, data=b"x")
    with pytest.raises(InvalidArgumentError, match="timeout"):
        printer.request("GET", "/echo/x", timeout=0)
    assert sim.requests == []


async def test_printer_headers_are_pinned_to_the_relay(oe: OctoEverywhere, sim: Simulator) -> None:
    sim.state.octoprint_api_key = "op-key-1"
    printer = oe.printer(sim.app_connection(octoprint_api_key="op-key-1"))
    assert (await printer.get_json("/api/version"))["api"] == "0.1"
    await printer.app_api.info()
    assert sim.requests_to("relay")[0].headers["X-Api-Key"] == "op-key-1"
    app_api = sim.requests_to("app_api")[0]
    assert "X-Api-Key" not in app_api.headers
    assert "Authorization" not in app_api.headers
    assert "AppToken" not in sim.requests_to("relay")[0].headers


async def test_explicit_printer_headers_override_the_stored_key(
    oe: OctoEverywhere, sim: Simulator
) -> None:
    printer = oe.printer(sim.app_connection(octoprint_api_key="old"), headers={"x-api-key": "new"})
    await printer.get_json("/api/version")
    assert sim.requests[0].headers.getall("X-Api-Key") == ["new"]


def test_managed_headers_cannot_be_overridden(oe: OctoEverywhere, sim: Simulator) -> None:
    for name in ("Authorization", "AppToken", "Host"):
        with pytest.raises(InvalidArgumentError, match="managed"):
            oe.printer(sim.app_connection(), headers={name: "x"})
    with pytest.raises(InvalidArgumentError, match="control"):
        oe.printer(sim.app_connection(), headers={"X-Api-Key": "a\r\nb"})
    with pytest.raises(InvalidArgumentError, match="header name"):
        oe.printer(sim.app_connection(), headers={"Bad Name": "x"})


async def test_printer_errors_are_not_relay_errors(oe: OctoEverywhere, sim: Simulator) -> None:
    sim.state.octoprint_api_key = "required"
    printer = oe.printer(sim.app_connection())
    with pytest.raises(PrinterHTTPError) as excinfo:
        await printer.get_json("/api/version")
    assert excinfo.value.status == 403
    assert b"Invalid API key" in excinfo.value.body
    assert not isinstance(excinfo.value, oe_async.RelayError)
    async with printer.request("GET", "/api/version", raise_for_status=False) as resp:
        assert resp.status == 403


async def test_relay_codes_raise_even_without_raise_for_status(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.fail(609, path="/api/job")
    with pytest.raises(oe_async.WebcamLimitError):
        async with printer.request("GET", "/api/job", raise_for_status=False):
            pass


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (
            lambda s: setattr(s.state, "connection", "not_found"),
            oe_async.AppConnectionNotFoundError,
        ),
        (lambda s: setattr(s.state, "connection", "revoked"), oe_async.AppConnectionRevokedError),
        (lambda s: setattr(s.state, "supporter", False), oe_async.SupporterPerksRequiredError),
        (lambda s: setattr(s.state, "printer_online", False), oe_async.PrinterOfflineError),
    ],
)
async def test_relay_states(
    printer: PrinterConnection, sim: Simulator, setup: object, error: type
) -> None:
    setup(sim)  # type: ignore[operator]
    with pytest.raises(error):
        await printer.get_json("/api/job")


async def test_wrong_credentials_are_606(oe: OctoEverywhere, sim: Simulator) -> None:
    printer = oe.printer(sim.app_connection(auth=oe_async.BasicAuth("someone", "wrong")))
    with pytest.raises(oe_async.InvalidCredentialsError) as excinfo:
        await printer.get_json("/api/job")
    assert isinstance(excinfo.value, oe_async.ReauthorizationRequiredError)
    assert len(sim.requests) == 1  # 606 is never retried


async def test_bearer_auth(sim: Simulator) -> None:
    async with Simulator(auth="bearer") as bearer_sim, bearer_sim.client() as oe:
        await oe.printer(bearer_sim.app_connection()).get_json("/api/version")
        assert bearer_sim.requests[0].authorization == f"Bearer {bearer_sim.bearer_auth.token}"


async def test_connection_refused_is_a_communication_error(sim: Simulator) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with sim.client(retry=NO_RETRY) as oe:
        printer = oe.printer(sim.app_connection(url=f"http://127.0.0.1:{port}"))
        with pytest.raises(CommunicationError, match="cannot connect") as excinfo:
            await printer.get_json("/api/version")
    assert str(port) not in str(excinfo.value)
    assert excinfo.value.__suppress_context__  # aiohttp's message (with the host) is not chained


async def test_timeout_is_a_request_timeout_error(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.state.latency = 2.0
    with pytest.raises(RequestTimeoutError) as excinfo:
        await printer.get_json("/api/version", timeout=0.2, retry=NO_RETRY)
    assert isinstance(excinfo.value, TimeoutError)
    assert "GET /api/version timed out" in str(excinfo.value)


async def test_cancellation_is_not_wrapped_and_releases_the_connection(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    sim.state.latency = 5.0
    task = asyncio.create_task(printer.get_json("/api/version"))
    # Cancelled while its connection is out: the request reached the server.
    await eventually(lambda: sim.requests_to("relay", "/api/version"), "the GET is sent")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert acquired_connections(oe) == 0
    sim.state.latency = 0


async def test_early_exit_releases_the_connection(
    printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with printer.request("GET", "/api/version"):
            raise RuntimeError("boom")
    assert acquired_connections(oe) == 0


async def test_a_single_connection_pool_is_never_exhausted(sim: Simulator) -> None:
    """Black-box leak check: with one pooled connection, every exit path must give it back."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session,
        sim.client(session=session, retry=NO_RETRY) as oe,
    ):
        printer = oe.printer(sim.app_connection())
        for _ in range(3):
            sim.fail(601, path="/api/job", times=1)
            with pytest.raises(oe_async.PrinterOfflineError):
                await printer.get_json("/api/job")
            with pytest.raises(ValueError, match="x"):
                async with printer.request("GET", "/api/job"):
                    raise ValueError("x")
            async with asyncio.timeout(5):
                await printer.get_json("/api/version")


class TestRetries:
    async def test_get_is_retried_on_temporary_relay_codes(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(601, path="/api/job", times=2)
        assert (await printer.get_json("/api/job"))["state"] == "Printing"
        assert len(sim.requests_to("relay", "/api/job")) == 3

    async def test_gives_up_after_the_configured_attempts(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(602, path="/api/job")
        with pytest.raises(oe_async.PluginTimeoutError):
            await printer.get_json("/api/job")
        assert len(sim.requests_to("relay", "/api/job")) == 3

    async def test_post_is_not_retried_unless_the_caller_opts_in(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(601, path="/echo/*", times=1)
        with pytest.raises(oe_async.PrinterOfflineError):
            await printer.post_json("/echo/once", {"a": 1})
        assert len(sim.requests_to("relay", "/echo/once")) == 1
        sim.fail(601, path="/echo/*", times=1)
        assert (await printer.post_json("/echo/twice", {"a": 1}, idempotent=True))[
            "method"
        ] == "POST"
        assert len(sim.requests_to("relay", "/echo/twice")) == 2

    async def test_permanent_codes_are_never_retried(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(604, path="/api/job")
        with pytest.raises(oe_async.AppConnectionRevokedError):
            await printer.get_json("/api/job")
        assert len(sim.requests_to("relay", "/api/job")) == 1

    async def test_a_stream_body_is_never_resent(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def body():  # type: ignore[no-untyped-def]
            yield b"chunk"

        sim.fail(601, path="/echo/*", times=1)
        with pytest.raises(oe_async.PrinterOfflineError):
            async with printer.request("PUT", "/echo/stream", data=body()):
                pass
        assert len(sim.requests_to("relay", "/echo/stream")) == 1

    async def test_a_body_factory_is_replayed(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def body():  # type: ignore[no-untyped-def]
            yield b"chunk"

        sim.fail(601, path="/echo/*", times=1)
        async with printer.request("PUT", "/echo/stream", data=body) as resp:
            assert (await resp.json())["body_bytes"] == 5
        assert len(sim.requests_to("relay", "/echo/stream")) == 2
