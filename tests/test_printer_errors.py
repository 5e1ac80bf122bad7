"""A printer's error keeps its message: whole bodies, recognised shapes, secrets redacted.

Moonraker's real error answers (tests/fixtures/moonraker/, recorded by scripts/moonraker-bench)
are served through the simulator's relay on 127.0.0.1 and read by the real funnel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import oe_async
from oe_async import PrinterConnection
from oe_async.testing import Simulator

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "moonraker"
INDEX = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
HTTP_ERRORS = [
    entry
    for entry in INDEX["fixtures"]
    if entry.get("transport") == "http" and entry.get("status", 0) >= 400
]
# Read at import time, not on the event loop.
BODIES = {
    entry["file"]: json.loads((FIXTURES / entry["file"]).read_text(encoding="utf-8"))
    for entry in HTTP_ERRORS
}


def _wire_body(entry: dict[str, Any]) -> tuple[Any, bytes]:
    """The fixture's decoded body and the compact bytes Moonraker sent."""
    data = BODIES[entry["file"]]
    return data, json.dumps(data).encode()


def test_the_recorded_error_fixtures_are_all_here() -> None:
    assert len(HTTP_ERRORS) >= 8
    # Most are over the old 1 KiB cap: json.loads(err.body) failed for them.
    assert sum(len(_wire_body(entry)[1]) > 1024 for entry in HTTP_ERRORS) >= 4


@pytest.mark.parametrize("entry", HTTP_ERRORS, ids=lambda entry: entry["file"])
async def test_moonraker_error_bodies_keep_their_message(
    printer: PrinterConnection, sim: Simulator, entry: dict[str, Any]
) -> None:
    data, body = _wire_body(entry)
    method, path = entry["request"].split(" ", 1)
    path = path.split("?", 1)[0]
    sim.fail(
        entry["status"],
        origin="relay",
        path=path,
        body=body,
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        async with printer.request(method, path):
            pass
    err = excinfo.value
    assert err.status == entry["status"]
    assert err.body == body  # whole: the tracebacks are 0.5-2 KB
    assert json.loads(err.body) == data
    expected = data["error"]["message"]
    assert err.message == expected
    assert err.server_message == expected
    assert str(err).endswith(f" to {method} {path}: {expected}")
    assert str(err).startswith(f"The printer answered HTTP {entry['status']} ")
    assert "Traceback" not in str(err)


async def test_klippy_not_connected_reads_as_moonraker_says(
    printer: PrinterConnection, sim: Simulator
) -> None:
    entry = next(e for e in HTTP_ERRORS if e["file"] == "error_klippy_not_connected_503.json")
    _, body = _wire_body(entry)
    sim.fail(503, origin="relay", path="/printer/restart", body=body)
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        await printer.post_json("/printer/restart", {})
    assert excinfo.value.message == "Klippy Host not connected"
    assert str(excinfo.value) == (
        "The printer answered HTTP 503 Service Unavailable to POST /printer/restart: "
        "Klippy Host not connected"
    )
    assert excinfo.value.temporary is True
    assert excinfo.value.needs_user_action is False


async def test_octoprint_error_shape(printer: PrinterConnection, sim: Simulator) -> None:
    sim.fail(409, origin="relay", path="/api/job", body=b'{"error": "Printer is not operational"}')
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        await printer.post_json("/api/job", {"command": "start"})
    assert excinfo.value.message == "Printer is not operational"
    assert str(excinfo.value).endswith("to POST /api/job: Printer is not operational")


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>500 Internal Server Error</h1></body></html>",
        b"plain text",
        b'{"error": {"code": 1}}',
        b'{"error": 42}',
        b'{"message": "not a recognised shape"}',
        b'["error"]',
        b"{" * 5000 + b"}" * 5000,  # hostile nesting: no RecursionError
        b"",
    ],
)
async def test_unrecognised_bodies_get_a_sentence_of_ours(
    printer: PrinterConnection, sim: Simulator, body: bytes
) -> None:
    sim.fail(500, origin="relay", path="/api/x", body=body)
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        await printer.get_json("/api/x")
    err = excinfo.value
    assert err.server_message is None
    assert err.message == "The printer answered HTTP 500 Internal Server Error to GET /api/x"
    assert str(err) == err.message
    assert err.body == body


async def test_a_printer_message_never_carries_secrets_or_urls(
    printer: PrinterConnection, sim: Simulator
) -> None:
    token = sim.bearer_auth.token
    password = sim.basic_auth.password
    message = (
        f"Refused {sim.relay_url}/api/files?apikey=abc for Bearer {token}; "
        f"password={password} X-Api-Key: 'k3y-{password}' \x1b[2J\r\nsecond line"
    )
    body = json.dumps({"error": {"code": 403, "message": message}}).encode()
    sim.fail(403, origin="relay", path="/api/files", body=body)
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        await printer.get_json("/api/files")
    err = excinfo.value
    for text in (err.message, str(err), repr(err)):
        assert token not in text
        assert password not in text
        assert "/api/files?apikey" not in text
        assert "\x1b" not in text
        assert "\n" not in text
    assert err.message.startswith("Refused http")
    assert "**REDACTED**" in err.message
    assert err.message.endswith("second line")


def test_a_long_message_is_shortened() -> None:
    body = json.dumps({"error": "x" * 10_000}).encode()
    err = oe_async.errors.decode_http_error(500, {}, body)
    assert isinstance(err, oe_async.PrinterHTTPError)
    assert len(err.message) == oe_async.errors.MAX_SERVER_MESSAGE
    assert err.message.endswith("…")
    assert err.body == body


def test_plugin_error_text_hides_secrets_too() -> None:
    err = oe_async.errors.plugin_error(752, "failed: token=abc123secret\nnext")
    assert err.message == "failed: token=**REDACTED**\nnext"  # otherwise as the plugin said


@pytest.mark.parametrize(
    "token",
    [
        "oe-sim-secret-tok-JNYvDjyJQQocIsZpeFFstEWpHbFgpnHL",  # no digit: slipped through once
        "abc12345x",
        "dGVzdDp0ZXN0",
    ],
)
async def test_a_bearer_or_basic_credential_is_hidden_with_or_without_digits(
    printer: PrinterConnection, sim: Simulator, token: str
) -> None:
    message = f"Bearer {token} and Basic {token} refused"
    body = json.dumps({"error": {"code": 403, "message": message}}).encode()
    sim.fail(403, origin="relay", path="/api/files", body=body)
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        await printer.get_json("/api/files")
    assert token not in excinfo.value.message
    assert "Bearer **REDACTED**" in excinfo.value.message


async def test_basic_authentication_in_prose_stays_readable(
    printer: PrinterConnection, sim: Simulator
) -> None:
    message = "Basic authentication is required"
    body = json.dumps({"error": {"code": 403, "message": message}}).encode()
    sim.fail(403, origin="relay", path="/api/files", body=body)
    with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
        await printer.get_json("/api/files")
    assert "Basic authentication is required" in excinfo.value.message
