"""Security round 4 (issue 29), the data side, and issue 28 item 2's library part.

Server text that echoes our secrets, stored data that lies, hostile webhook bodies, the CLI's
login file, the URL-join cache. Each test fails on the code before the fix; the network
ones run against real loopback servers.
"""

from __future__ import annotations

import json
import secrets as pysecrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from yarl import URL

import oe_async
from oe_async import (
    AppConnection,
    BasicAuth,
    BearerAuth,
    PluginCommandError,
    PrinterHTTPError,
    redact,
)
from oe_async.testing import SECRET_MARKER, Simulator

from .canary import SecretWatch

EchoHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _echoed(request: web.Request) -> str:
    """The request's headers as an echoing server writes them, one per line."""
    return "\r\n".join(f"{name}: {value}" for name, value in request.headers.items())


@asynccontextmanager
async def echo_relay(handler: EchoHandler) -> AsyncIterator[URL]:
    """A loopback "relay" whose every answer comes from ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield URL(f"http://127.0.0.1:{runner.addresses[0][1]}/")
    finally:
        await runner.cleanup()


def _connection(url: URL, *, bearer: bool = False) -> AppConnection:
    auth: BasicAuth | BearerAuth = (
        BearerAuth(f"{SECRET_MARKER}-tok-{pysecrets.token_urlsafe(24)}")
        if bearer
        else BasicAuth(f"echo-user-{pysecrets.token_hex(4)}", f"pw-{pysecrets.token_urlsafe(18)}")
    )
    return AppConnection(
        url=url,
        auth=auth,
        app_token=f"{SECRET_MARKER}-app-{pysecrets.token_urlsafe(12)}",
        octoprint_api_key=f"opkey{pysecrets.token_hex(12)}",
        allow_insecure_loopback=True,
    )


def _secrets_of(conn: AppConnection) -> list[str]:
    auth = conn.auth
    values = [conn.octoprint_api_key or "", auth.header_value, auth.header_value.split()[1]]
    if isinstance(auth, BasicAuth):
        values += [auth.username, auth.password]
    return values


# ------------------------------------------------- 29.19 / 28.2: server text echoing secrets


@pytest.mark.parametrize("bearer", [False, True], ids=["basic", "bearer"])
@pytest.mark.parametrize("shape", ["moonraker", "octoprint", "html"])
async def test_an_answer_echoing_the_request_headers_holds_no_secret(
    sim: Simulator, secrets_never_leak: SecretWatch, bearer: bool, shape: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        text = f"Bad request. You sent:\r\n{_echoed(request)}\r\n"
        if shape == "moonraker":
            return web.json_response({"error": {"code": 400, "message": text}}, status=400)
        if shape == "octoprint":
            return web.json_response({"error": text}, status=400)
        return web.Response(status=400, text=f"<pre>{text}</pre>", content_type="text/html")

    async with echo_relay(handler) as url, sim.client() as oe:
        conn = _connection(url, bearer=bearer)
        secrets_never_leak.secrets.update(_secrets_of(conn))
        printer = oe.printer(conn)
        with pytest.raises(PrinterHTTPError) as info:
            await printer.get_json("/api/printer")
    err = info.value
    body = err.body.decode()
    for secret in _secrets_of(conn):
        for text in (body, err.message, str(err), repr(err), repr(err.server_message)):
            assert secret not in text
    assert "Authorization: **REDACTED**" in body
    assert "X-Api-Key: **REDACTED**" in body
    if shape != "html":
        json.loads(err.body)  # still JSON: quotes and escapes kept
        assert "Authorization: **REDACTED**" in err.message
        assert "User-Agent" in err.message  # the rest of the server's text stays


async def test_a_plugin_error_echoing_a_secret_hides_it(
    sim: Simulator, secrets_never_leak: SecretWatch
) -> None:
    """The envelope's ``Error`` (200 answer) and a raw endpoint's JSON error body."""

    async def handler(request: web.Request) -> web.Response:
        key = request.headers["X-Api-Key"]
        if "snapshot" in request.path:
            return web.json_response({"Error": f"camera refused key {key}"}, status=500)
        return web.json_response({"Status": 789, "Error": f"printer rejected key {key}"})

    async with echo_relay(handler) as url, sim.client() as oe:
        conn = _connection(url)
        secrets_never_leak.secrets.update(_secrets_of(conn))
        printer = oe.printer(conn)
        with pytest.raises(PluginCommandError) as info:
            await printer.plugin.status()
        with pytest.raises(PluginCommandError) as raw:
            await printer.webcam.snapshot(index=0)
    assert info.value.message == "printer rejected key **REDACTED**"
    assert raw.value.message == "camera refused key **REDACTED**"


async def test_the_unique_host_of_the_url_is_hidden_wherever_it_appears() -> None:
    conn = AppConnection(
        url="https://app-q7Zk2pUniqueId.octoeverywhere.com",
        auth=BasicAuth("user-abcdef", "pw-123456789"),
    )
    text = "proxy app-q7zk2puniqueid.octoeverywhere.com refused user-abcdef"
    assert (
        redact(text, secrets=conn) == "proxy **REDACTED**.octoeverywhere.com refused **REDACTED**"
    )
    body = json.dumps({"error": "no route to APP-Q7ZK2PUNIQUEID.octoeverywhere.com"}).encode()
    err = oe_async.decode_http_error(502, {}, body, secrets=["app-q7Zk2pUniqueId"])
    assert isinstance(err, PrinterHTTPError)
    assert b"Q7ZK2P" not in err.body.upper()
    assert "Q7ZK2P" not in err.message.upper()


class TestRedactText:
    """``oe_async.redact(text)``: the one place text is scrubbed (issue 28 item 2)."""

    B64 = "b2UtdXNlcjpzM2NyM3QtcGFzc3dvcmQ="

    @pytest.mark.parametrize(
        "text",
        [
            f"Authorization: Basic {B64}",
            f"authorization:Basic {B64}\nnext line",
            f'{{"Authorization": "Basic {B64}", "Host": "x"}}',
            f"{{'Authorization': 'Basic {B64}'}}",
            f'echo {{\\"Authorization\\": \\"Basic {B64}\\"}}',  # inside a raw JSON string
            f"Proxy-Authorization: Basic {B64}",
        ],
    )
    def test_an_authorization_value_goes_whole(self, text: str) -> None:
        shown = redact(text)
        assert self.B64 not in shown
        assert "Basic" not in shown  # the scheme and the credential, not only the scheme
        assert "**REDACTED**" in shown

    @pytest.mark.parametrize(
        ("text", "hidden"),
        [
            ('Authorization: Digest username="bob", response="6629fae4"', "6629fae4"),
            ("Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", "YIIGhg"),
            ("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015", "AKIDEXAMPLE"),
            ("Authorization: token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7"),
            ("Cookie: session=abc123; csrftoken=zzz999", "zzz999"),
            ("X-Auth-Token: 0123456789abcdef", "0123456789abcdef"),
            ("password 'correct horse battery'", "battery"),
        ],
    )
    def test_credentials_of_any_scheme(self, text: str, hidden: str) -> None:
        assert hidden not in redact(text)

    @pytest.mark.parametrize(
        "text",
        [
            "Authorization header is missing",
            "Basic authentication is required",
            "a plain sentence",
            "token expired",
        ],
    )
    def test_prose_stays_readable(self, text: str) -> None:
        assert redact(text) == text

    def test_known_secrets_of_a_connection(self) -> None:
        conn = AppConnection(
            url="https://app-abcdef123.octoeverywhere.com",
            auth=BearerAuth("tok_9f8e7d6c5b4a"),
            app_token="apptok-1234567",
            octoprint_api_key="OPKEY0987654321",
        )
        text = (
            "key OPKEY0987654321 / TOK_9F8E7D6C5B4A, app apptok-1234567, "
            "host app-abcdef123.octoeverywhere.com, quoted tok_9f8e7d6c5b4a"
        )
        shown = redact(text, secrets=conn)
        for secret in ("OPKEY", "9F8E7D", "9f8e7d", "apptok", "abcdef123"):
            assert secret not in shown
        assert redact({"msg": text}, secrets=["OPKEY0987654321"]) == {
            "msg": redact(text.replace("OPKEY0987654321", "**REDACTED**"))
        }
