"""Regression tests for the second security review (findings 1, 2, 8, 9 and 11).

Findings 10 (the CLI) and the webhook-receiver example of finding 8 are tested in
tests/test_cli.py and tests/test_examples.py. Every I/O test runs against real loopback
servers (aiohttp.web, raw sockets for exact framing); nothing of aiohttp is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from yarl import URL

from oe_async import (
    AppConnection,
    BasicAuth,
    InvalidArgumentError,
    OctoEverywhere,
    OctoEverywhereError,
    PortalError,
    RetryPolicy,
    WebhookEvent,
    WebhookReceiver,
    portal_url,
)
from oe_async.diagnostics import REDACTED, redact
from oe_async.testing import LoopbackResolver, Simulator

from .helpers import RecordingServer

EXAMPLE = (Path(__file__).parent / "fixtures" / "webhook_payload_spec_example.json").read_bytes()

GENUINE_RELAY = "https://app-g3nu1ne0123456789.octoeverywhere.com"
PASSWORD = "pw-R3AL-user-secret"
APP_TOKEN = "apptok-R3AL-user-secret"
#: What the portal appends to the return URL after a genuine flow.
GENUINE = {
    "success": "true",
    "id": "conn-genuine",
    "url": GENUINE_RELAY,
    "appApiToken": APP_TOKEN,
    "authBasicHttpUser": "user-genuine",
    "authBasicHttpPassword": PASSWORD,
    "printername": "Voron",
}


def appended(return_url: str, fields: dict[str, str], *, fragment: bool = False) -> str:
    """The return URL with the portal's fields appended, as the portal does it."""
    encoded = URL.build(query=fields).raw_query_string
    if fragment:
        return f"{return_url}#{encoded}"
    return f"{return_url}{'&' if '?' in return_url else '?'}{encoded}"


# ----------------------------------------------------------------------------------------
# Finding 1: the completion URL could hand real credentials to another host.


@pytest.fixture(scope="module")
def attacker_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for attacker.example and a client context trusting it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("attacker.example").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_an_attacker_relay_on_loopback_never_receives_the_credentials(
    attacker_tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """An https "relay" at attacker.example (a real TLS server on 127.0.0.1, reached through
    a resolver that sends every name to loopback) gets nothing, whatever the return URL's
    query says."""
    server_ctx, client_ctx = attacker_tls
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver(), ssl=client_ctx)
    async with (
        RecordingServer(ssl_context=server_ctx) as attacker,
        aiohttp.ClientSession(connector=connector) as session,
        OctoEverywhere("my-app", session=session, retry=RetryPolicy.never()) as oe,
    ):
        evil = f"https://attacker.example:{attacker.url.port}"
        hostile = [
            # The attacker's query, the portal's genuine fields in the fragment.
            appended(f"https://myapp.example/oe/done?url={evil}", GENUINE, fragment=True),
            # The same key twice in the query (the portal appends after the attacker's).
            appended(f"https://myapp.example/oe/done?url={evil}", GENUINE),
            # A lone relay URL on any https host.
            appended("https://myapp.example/oe/done", {**GENUINE, "url": evil}),
        ]
        refused = []
        for url in hostile:
            try:
                conn = AppConnection.from_completion_url(url)
            except PortalError as err:
                refused.append(str(err))
                continue
            with contextlib.suppress(OctoEverywhereError):
                await oe.printer(conn).get_json("/api/version")
        assert attacker.secret_headers_seen() == []
        assert attacker.seen == []
    assert len(refused) == len(hostile)
    for message in refused:
        assert "attacker" not in message
        assert PASSWORD not in message
    assert "url" in refused[0]
    assert "url" in refused[1]
    assert "octoeverywhere.com" in refused[2]


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://x.example/done?id=a&id=a", "id"),
        ("https://x.example/done?appApiToken=a&appapitoken=b", "appApiToken"),
        ("https://x.example/done#authBearerToken=a&authBearerToken=a", "authBearerToken"),
        ("https://x.example/done?authBasicHttpPassword=a#authbasichttppassword=b", "authBasic"),
        ("https://x.example/done?state=s1#state=s2", "state"),
        ("https://x.example/done?ur%6C=https://a.example&url=https://b.example", "url"),
    ],
)
def test_a_key_given_twice_is_a_portal_error_naming_the_key_not_the_value(
    url: str, key: str
) -> None:
    full = appended(url, {k: v for k, v in GENUINE.items() if k.lower() not in url.lower()})
    with pytest.raises(PortalError, match=key) as caught:
        AppConnection.from_completion_url(full)
    for value in ("a.example", "b.example", "s1", "s2", PASSWORD):
        assert value not in str(caught.value)


def test_the_same_value_in_the_query_and_the_fragment_is_accepted() -> None:
    url = appended(appended("https://myapp.example/done", GENUINE), GENUINE, fragment=True)
    assert AppConnection.from_completion_url(url).url == URL(GENUINE_RELAY + "/")


def test_the_return_urls_own_parameters_may_repeat() -> None:
    url = appended("https://myapp.example/done?tag=a&tag=b&tenant=1", GENUINE)
    assert AppConnection.from_completion_url(url).id == "conn-genuine"


@pytest.mark.parametrize(
    "relay",
    [
        "https://attacker.example",
        "https://octoeverywhere.com.attacker.example",
        "https://attackeroctoeverywhere.com",
        "https://octo\u0435verywhere.com",  # Cyrillic e: IDNA-encoded, never equal
        "https://app-x.octoeverywhere.co",
        "https://10.0.0.5",
        "https://192.168.1.20:8443",
    ],
)
def test_relay_urls_off_octoeverywhere_com_are_refused_everywhere(relay: str) -> None:
    stored = AppConnection(
        url=GENUINE_RELAY, auth=BasicAuth("u", PASSWORD), app_token=APP_TOKEN
    ).to_dict()
    with pytest.raises(InvalidArgumentError, match=r"octoeverywhere\.com") as direct:
        AppConnection(url=relay, auth=BasicAuth("u", PASSWORD), app_token=APP_TOKEN)
    with pytest.raises(InvalidArgumentError, match=r"octoeverywhere\.com"):
        AppConnection.from_dict({**stored, "url": relay})
    # The stored test opt-in reaches loopback only: flipping it in a tampered file does
    # not let the credentials reach another machine.
    with pytest.raises(InvalidArgumentError, match=r"octoeverywhere\.com"):
        AppConnection.from_dict({**stored, "url": relay, "allow_insecure_loopback": True})
    with pytest.raises(PortalError, match=r"octoeverywhere\.com"):
        AppConnection.from_completion_url(
            appended("https://a.example/d", {**GENUINE, "url": relay})
        )
    assert "attacker" not in str(direct.value)


@pytest.mark.parametrize(
    "relay",
    [
        "https://octoeverywhere.com",
        "https://app-x.octoeverywhere.com",
        "https://APP-X.OctoEverywhere.COM",
        "https://app-x.octoeverywhere.com.",
        "https://app-x.eu.octoeverywhere.com:8443",
    ],
)
def test_octoeverywhere_com_and_its_subdomains_are_accepted(relay: str) -> None:
    conn = AppConnection(url=relay, auth=BasicAuth("u", PASSWORD), app_token=APP_TOKEN)
    assert AppConnection.from_dict(conn.to_dict()) == conn


@pytest.mark.parametrize(
    "relay",
    ["https://127.0.0.1:8443", "http://127.0.0.1:8080", "https://[::1]:1", "https://127.0.0.2"],
)
def test_loopback_relays_need_the_explicit_test_opt_in(relay: str) -> None:
    with pytest.raises(InvalidArgumentError, match="allow_insecure_loopback"):
        AppConnection(url=relay, auth=BasicAuth("u", PASSWORD), app_token=APP_TOKEN)
    with pytest.raises(PortalError, match="allow_insecure_loopback"):
        AppConnection.from_completion_url(
            appended("https://a.example/d", {**GENUINE, "url": relay})
        )
    conn = AppConnection.from_completion_url(
        appended("https://a.example/d", {**GENUINE, "url": relay}), allow_insecure_loopback=True
    )
    assert conn.allow_insecure_loopback


async def test_the_simulator_over_https_opts_in_for_its_loopback_relay(
    server_ssl: ssl.SSLContext, tls_session: aiohttp.ClientSession
) -> None:
    async with Simulator(ssl=server_ssl) as sim:
        assert sim.relay_url.scheme == "https"
        conn = sim.app_connection()
        assert conn.allow_insecure_loopback
        stored = AppConnection.from_dict(json.loads(json.dumps(conn.to_dict())))
        async with sim.client(session=tls_session) as oe:
            assert (await oe.printer(stored).get_json("/api/version"))["api"] == "0.1"
        # A production-shaped override needs no opt-in.
        assert not sim.app_connection(url=GENUINE_RELAY).allow_insecure_loopback


class TestState:
    STATE = secrets.token_urlsafe(32)

    def start(self, state: str | None = None) -> str:
        """The return URL the portal will redirect to, as portal_url() passed it on."""
        url = portal_url("my-app", return_url="https://myapp.example/oe/done?tenant=7", state=state)
        return url.query["returnUrl"]

    def test_portal_url_puts_the_state_in_the_return_urls_query(self) -> None:
        ret = URL(self.start(self.STATE))
        assert ret.query["state"] == self.STATE
        assert ret.query["tenant"] == "7"
        assert ret.path == "/oe/done"

    @pytest.mark.parametrize("fragment", [False, True], ids=["query", "fragment"])
    def test_a_completion_with_the_flows_state_is_accepted(self, fragment: bool) -> None:
        done = appended(self.start(self.STATE), GENUINE, fragment=fragment)
        conn = AppConnection.from_completion_url(done, state=self.STATE)
        assert conn.url == URL(GENUINE_RELAY + "/")

    def test_a_missing_state_is_a_portal_error(self) -> None:
        done = appended(self.start(), GENUINE)  # a flow the app did not start
        with pytest.raises(PortalError, match="no state"):
            AppConnection.from_completion_url(done, state=self.STATE)
        with pytest.raises(PortalError, match="no state"):
            AppConnection.from_completion_url(
                appended(self.start(), {**GENUINE, "state": ""}), state=self.STATE
            )

    def test_a_wrong_state_is_a_portal_error_without_either_value(self) -> None:
        other = secrets.token_urlsafe(32)
        done = appended(self.start(other), GENUINE)
        with pytest.raises(PortalError, match="does not match") as caught:
            AppConnection.from_completion_url(done, state=self.STATE)
        assert other not in str(caught.value)
        assert self.STATE not in str(caught.value)

    def test_the_state_is_checked_before_anything_else(self) -> None:
        done = appended(self.start(secrets.token_urlsafe(32)), {"success": "false"})
        with pytest.raises(PortalError, match="does not match"):
            AppConnection.from_completion_url(done, state=self.STATE)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"state": "short"}, "16-512"),
            ({"state": "x" * 16 + " y"}, "16-512"),
            ({"state": "x" * 600}, "16-512"),
            ({"state": 12345678901234567890}, "16-512"),
            ({"state": STATE, "return_url": None}, "return_url"),
            ({"state": STATE, "return_url": "https://a.example/d?state=mine"}, "state"),
            ({"return_url": "https://a.example/d?url=https://attacker.example"}, "url"),
            ({"return_url": "https://a.example/d?ID=1&appApiToken=x"}, "appApiToken, id"),
        ],
    )
    def test_bad_portal_url_arguments(self, kwargs: dict[str, Any], message: str) -> None:
        kwargs.setdefault("return_url", "https://myapp.example/oe/done")
        with pytest.raises(InvalidArgumentError, match=message):
            portal_url("my-app", **kwargs)

    def test_a_bad_expected_state_is_an_invalid_argument(self) -> None:
        with pytest.raises(InvalidArgumentError, match="16-512"):
            AppConnection.from_completion_url(appended(self.start(), GENUINE), state="")


# ----------------------------------------------------------------------------------------
# Webhook receivers on loopback, and a raw HTTP client for exact framing.


class Hook:
    """A WebhookReceiver served by aiohttp.web on 127.0.0.1."""

    def __init__(self, receiver: WebhookReceiver, events: list[WebhookEvent]) -> None:
        self.receiver = receiver
        self.events = events
        self.url = URL()
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        self.receiver.attach(app, "/hook")
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self.runner, sock).start()
        self.url = URL(f"http://127.0.0.1:{sock.getsockname()[1]}/hook")


SECRET = "whsec-expected-0123456789"


@pytest_asyncio.fixture
async def hook() -> AsyncIterator[Hook]:
    events: list[WebhookEvent] = []
    h = Hook(WebhookReceiver(events.append, secret_key=SECRET), events)
    await h.start()
    yield h
    assert h.runner is not None
    await h.runner.cleanup()


def payload(size: int = 0, **fields: Any) -> bytes:
    """A valid webhook body carrying SECRET, padded with a field to ``size`` bytes."""
    data = {**json.loads(EXAMPLE), "SecretKey": SECRET, **fields}
    body = json.dumps(data).encode()
    if size > len(body):
        data["Padding"] = "p" * (size - len(body) - len(', "Padding": ""'))
        body = json.dumps(data).encode()
    return body


async def raw_post(url: URL, pieces: list[bytes], *, chunked: bool, pause: float = 0.05) -> int:
    """POST ``pieces`` as separate writes (a pause after each) and return the status.

    Content-Length framing, or chunked with one HTTP chunk per piece. The answer is read
    while the body is still being written, as a server may answer (413) before the end.
    """
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = [
        f"POST {url.path} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        "Content-Type: application/json",
        "Connection: close",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {sum(map(len, pieces))}",
    ]

    async def send() -> None:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        for piece in pieces:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            await writer.drain()
            await asyncio.sleep(pause)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    sending = asyncio.create_task(send())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        if not sending.done():
            sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1])


# ----------------------------------------------------------------------------------------
# Finding 2: a webhook body that arrives in more than one read.


async def test_a_webhook_in_two_content_length_pieces_is_accepted(hook: Hook) -> None:
    body = payload(2048)
    assert len(body) == 2048
    status = await raw_post(hook.url, [body[:1000], body[1000:]], chunked=False)
    assert status == 200
    await hook.receiver.drain()
    assert len(hook.events) == 1
    assert hook.events[0].extra["Padding"].startswith("ppp")


async def test_a_chunked_webhook_in_many_small_pieces_is_accepted(hook: Hook) -> None:
    body = payload(2048)
    pieces = [body[i : i + 64] for i in range(0, len(body), 64)]
    assert await raw_post(hook.url, pieces, chunked=True, pause=0.005) == 200
    await hook.receiver.drain()
    assert len(hook.events) == 1


async def test_a_chunked_body_past_the_cap_is_413_even_when_it_starts_as_valid_json(
    hook: Hook,
) -> None:
    """1.2 MB of JSON whitespace after a complete, valid payload: the whole body counts."""
    pieces = [payload()] + [b" " * 65536] * 19
    assert sum(map(len, pieces)) > 1_200_000
    assert await raw_post(hook.url, pieces, chunked=True, pause=0.01) == 413
    await hook.receiver.drain()
    assert hook.events == []
    assert hook.receiver.rejected == 1


async def test_a_content_length_body_over_the_cap_sent_in_pieces_is_413(hook: Hook) -> None:
    receiver = WebhookReceiver(lambda e: None, secret_key=SECRET, max_body=4096)
    small = Hook(receiver, [])
    await small.start()
    try:
        body = payload(5000)
        # The declared length alone is refused before reading.
        assert await raw_post(small.url, [body[:100], body[100:]], chunked=False) == 413
        # Chunked: only reading the whole body finds out.
        assert await raw_post(small.url, [body[:100], body[100:]], chunked=True) == 413
        exact = payload(4096)
        assert await raw_post(small.url, [exact[:10], exact[10:]], chunked=True) == 200
    finally:
        assert small.runner is not None
        await small.runner.cleanup()


# ----------------------------------------------------------------------------------------
# Finding 8: the webhook secret check failed open.


@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_secret_key_is_an_error(secret: str) -> None:
    with pytest.raises(InvalidArgumentError, match="secret_key is empty"):
        WebhookReceiver(lambda e: None, secret_key=secret)


def test_no_secret_must_be_an_explicit_choice() -> None:
    with pytest.raises(InvalidArgumentError, match="allow_unsigned=True"):
        WebhookReceiver(lambda e: None, secret_key=None)
    with pytest.raises(InvalidArgumentError, match="not both"):
        WebhookReceiver(lambda e: None, secret_key=SECRET, allow_unsigned=True)
    with pytest.raises(InvalidArgumentError, match="str"):
        WebhookReceiver(lambda e: None, secret_key=b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="allow_unsigned=True"):
        WebhookReceiver(lambda e: None)  # neither: no secret must be an explicit choice
    WebhookReceiver(lambda e: None, allow_unsigned=True)  # explicit: no warning


async def test_signed_and_explicitly_unsigned_receivers_on_loopback() -> None:
    signed_events: list[WebhookEvent] = []
    open_events: list[WebhookEvent] = []
    signed = Hook(WebhookReceiver(signed_events.append, secret_key=SECRET), signed_events)
    unsigned = Hook(WebhookReceiver(open_events.append, allow_unsigned=True), open_events)
    await signed.start()
    await unsigned.start()
    try:
        async with aiohttp.ClientSession() as session:
            for forged in ("", "forged", None):
                body = payload(SecretKey=forged)
                async with session.post(signed.url, data=body) as resp:
                    assert resp.status == 403
                async with session.post(unsigned.url, data=body) as resp:
                    assert resp.status == 200
            async with session.post(signed.url, data=payload()) as resp:
                assert resp.status == 200
        await signed.receiver.drain()
        await unsigned.receiver.drain()
        assert len(signed_events) == 1
        assert len(open_events) == 3
    finally:
        for h in (signed, unsigned):
            assert h.runner is not None
            await h.runner.cleanup()


# ----------------------------------------------------------------------------------------
# Finding 9: hostile payloads answer 400 with one quiet log line, never 500.

HOSTILE = {
    "nested 60,000 deep": b"[" * 60_000,
    "nested objects 5,000 deep": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "nested 40 deep in a field": b'{"EventType": 1, "X": ' + b"[" * 40 + b"]" * 40 + b"}",
    "a 5,000-digit number": b'{"EventType": 1, "Progress": ' + b"9" * 5_000 + b"}",
    # An EventType of 10**30 or -1 is delivered as an unknown event since round 4 (29.21).
    "a JSON array": b"[1, 2, 3]",
    "a JSON string": b'"hello"',
    "JSON null": b"null",
    "NaN": b"NaN",
    "invalid UTF-8": b'{"EventType": 1, "PrinterName": "\xff\xfe"}',
    "not JSON": b"\x00\x01\x02",
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_hostile_payload_is_400_with_one_quiet_log_line(
    hook: Hook, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        aiohttp.ClientSession() as session,
        session.post(hook.url, data=HOSTILE[name]) as resp,
    ):
        assert resp.status == 400, await resp.text()
        answer = await resp.json()
    assert answer["ok"] is False
    assert answer["error"]
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in records] == [f"webhook rejected with 400: {answer['error']}"]
    assert all(r.exc_info is None for r in caplog.records)
    assert hook.events == []


@pytest.mark.parametrize(
    ("field", "attribute", "raw"),
    [
        ("Progress", "progress", b"1" + b"0" * 400),  # an int past the float range
        ("DurationSec", "duration_sec", b"1e999"),  # infinity
        ("ZOffsetMM", "z_offset_mm", b"NaN"),
    ],
)
async def test_a_number_no_float_holds_is_kept_in_extra_not_a_500(
    hook: Hook, field: str, attribute: str, raw: bytes
) -> None:
    """Used to be a 500 with a traceback (OverflowError) for the first one."""
    body = payload()[:-1] + b', "' + field.encode() + b'": ' + raw + b"}"
    async with aiohttp.ClientSession() as session, session.post(hook.url, data=body) as resp:
        assert resp.status == 200
    await hook.receiver.drain()
    event = hook.events[0]
    assert field in event.extra
    assert getattr(event, attribute) is None


def test_parse_limits_nesting_for_decoded_objects_too() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        WebhookEvent.parse({"EventType": 1, "X": deep})
    ok: Any = 1
    for _ in range(31):
        ok = {"k": ok}
    assert WebhookEvent.parse({"EventType": 1, "X": ok}).extra["X"]


# ----------------------------------------------------------------------------------------
# Finding 11: redact() missed secrets.


class TestRedact:
    def test_the_connection_id_is_redacted_as_repr_hides_it(self) -> None:
        conn = AppConnection(
            url=GENUINE_RELAY, auth=BasicAuth("u", PASSWORD), app_token=APP_TOKEN, id="conn-42"
        )
        assert "conn-42" not in repr(conn)
        redacted = redact(conn.to_dict())
        assert "conn-42" not in repr(redacted)
        assert PASSWORD not in repr(redacted)
        assert "g3nu1ne" not in repr(redacted)
        for key in ("id", "ID", "connection_id", "connectionId", "AppConnectionId"):
            assert redact({key: "c-1"}) == {key: REDACTED}

    @pytest.mark.parametrize(
        "key",
        [
            "key",
            "Key",
            "KEY",
            "secret_key",
            "SecretKey",
            "private_key",
            "privateKey",
            "X-Api-Key",
            "APIKey",
            "access.key",
            "pwd",
            "user pwd",
        ],
    )
    def test_key_like_fields_are_redacted(self, key: str) -> None:
        assert redact({key: "s3cr3t"}) == {key: REDACTED}

    @pytest.mark.parametrize(
        "key",
        [
            "keyboard",
            "Keyboard",
            "keyboard_layout",
            "monkey",
            "hotkey",
            "turnkey",
            "keyring",
            "app_id",
            "appId",
            "printer_id",
            "PrintId",
            "idle",
            "uuid",
            "auth_type",
            "index",
        ],
    )
    def test_harmless_keys_stay_visible(self, key: str) -> None:
        assert redact({key: "visible"}) == {key: "visible"}

    def test_headers_as_a_list_of_pairs(self) -> None:
        headers = [
            ("Authorization", "Basic dXNlcjpwdw=="),
            ["Cookie", "session=abc"],
            ("AppToken", APP_TOKEN),
            ("Accept", "application/json"),
        ]
        assert redact({"headers": headers}) == {
            "headers": [
                ["Authorization", REDACTED],
                ["Cookie", REDACTED],
                ["AppToken", REDACTED],
                ["Accept", "application/json"],
            ]
        }
        assert redact(("Authorization", "Bearer t0k")) == ["Authorization", REDACTED]
        assert redact(["Accept", "Authorization"]) == ["Accept", "Authorization"]

    def test_urls_inside_free_text(self) -> None:
        text = (
            "failed at https://user:pw-SECRET@host.example/x?token=abc, then "
            "(http://app-uniq123.octoeverywhere.com/api/job) and ws://u:p2@10.0.0.5:81/ws."
        )
        shown = redact({"last_error": text})["last_error"]
        for secret in ("pw-SECRET", "user:", "token=abc", "uniq123", "p2@", "/api/job"):
            assert secret not in shown
        assert shown == (
            "failed at https://host.example, then (http://***.octoeverywhere.com) and "
            "ws://10.0.0.5:81."
        )
        assert redact("not a url: https://[::1") == f"not a url: {REDACTED}"
        assert redact("a plain sentence") == "a plain sentence"
