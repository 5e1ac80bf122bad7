"""The examples in examples/ work against the simulator."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

import oe_async
from oe_async import EventType, WebhookEvent
from oe_async.testing import Simulator

from .helpers import EXAMPLES, load_example

ha = load_example("ha_style_integration")
receiver_example = load_example("webhook_receiver")


@pytest_asyncio.fixture
async def shared_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def coordinator(sim: Simulator, session: aiohttp.ClientSession) -> Any:
    return ha.OctoEverywhereCoordinator(
        session,
        {"connection": sim.app_connection().to_dict()},
        app_id=sim.app_id,
        app_api_url=sim.app_api_url,
        allow_insecure_loopback=True,
    )


async def test_first_refresh_with_the_printer_offline_is_retry_later(
    sim: Simulator, shared_session: aiohttp.ClientSession
) -> None:
    sim.state.printer_online = False
    coord = coordinator(sim, shared_session)
    with pytest.raises(ha.ConfigEntryNotReady) as excinfo:
        await coord.async_config_entry_first_refresh()
    assert excinfo.value.retry_after == 30
    assert not coord.reauth_requested
    sim.state.printer_online = True
    await coord.async_refresh()
    sensor = ha.PrinterStateSensor(coord)
    assert sensor.available
    assert sensor.native_value == "printing"
    await coord.async_shutdown()
    assert not shared_session.closed


async def test_a_temporary_relay_error_uses_retry_after(
    sim: Simulator, shared_session: aiohttp.ClientSession
) -> None:
    coord = coordinator(sim, shared_session)
    await coord.async_config_entry_first_refresh()
    sim.fail(602, path="/octoeverywhere-command-api/status", headers={"Retry-After": "120"})
    await coord.async_refresh()
    assert not ha.PrinterStateSensor(coord).available
    assert coord.next_refresh.total_seconds() == 120
    await coord.async_shutdown()


async def test_revoked_requests_reauthorisation(
    sim: Simulator, shared_session: aiohttp.ClientSession
) -> None:
    coord = coordinator(sim, shared_session)
    await coord.async_config_entry_first_refresh()
    sim.revoke()
    await coord.async_refresh()
    assert coord.reauth_requested
    assert coord.next_refresh is None  # polling stops
    with pytest.raises(ha.ConfigEntryAuthFailed):
        await coordinator(sim, shared_session).async_config_entry_first_refresh()
    await coord.async_shutdown()
    assert not shared_session.closed


async def test_supporter_perks_raise_a_repair_issue(
    sim: Simulator, shared_session: aiohttp.ClientSession
) -> None:
    coord = coordinator(sim, shared_session)
    sim.state.supporter = False
    await coord.async_refresh()
    assert coord.repair_issue.endswith(f"appid={sim.app_id}")
    await coord.async_shutdown()


async def test_diagnostics_contain_no_secret(
    sim: Simulator, shared_session: aiohttp.ClientSession
) -> None:
    coord = coordinator(sim, shared_session)
    await coord.async_config_entry_first_refresh()
    sim.revoke()
    await coord.async_refresh()
    text = repr(coord.diagnostics())
    for secret in sim.secrets():
        assert secret not in text
    assert "Simulated Printer" in text
    await coord.async_shutdown()


async def test_the_ha_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    await ha.main()
    out = capsys.readouterr().out
    assert "reauth requested: True" in out
    assert "shared session still open: True" in out


async def test_the_webhook_receiver_example(sim: Simulator, printer: Any) -> None:
    events: list[WebhookEvent] = []
    app = receiver_example.make_app(sim.state.webhook.secret_key, events.append)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        await printer.app_api.set_notification_webhook(
            f"http://127.0.0.1:{sock.getsockname()[1]}/octoeverywhere/webhook"
        )
        assert await sim.deliver_webhook(6, Progress=50, FileName="a.gcode") == 200
        assert await printer.app_api.test_notification_webhook() == 200
    finally:
        await runner.cleanup()  # waits for, or cancels, the callbacks
    assert [e.event_type for e in events] == [EventType.PRINT_PROGRESS, EventType.TEST_NOTIFICATION]


def test_the_webhook_receiver_example_requires_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(receiver_example.SECRET_ENV, raising=False)
    with pytest.raises(SystemExit) as exited:
        receiver_example.parse_args([])
    assert exited.value.code == 2
    assert "SecretKey is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        receiver_example.parse_args(["--secret-key", "  "])
    with pytest.raises(SystemExit):
        receiver_example.parse_args(["--secret-key", "s3cret-key", "--allow-unsigned"])
    assert receiver_example.parse_args(["--secret-key", "s3cret-key"]).secret_key == "s3cret-key"
    unsigned = receiver_example.parse_args(["--allow-unsigned"])
    assert unsigned.allow_unsigned
    assert unsigned.secret_key is None
    monkeypatch.setenv(receiver_example.SECRET_ENV, "from-the-environment")
    assert receiver_example.parse_args([]).secret_key == "from-the-environment"
    with pytest.raises(oe_async.InvalidArgumentError, match="empty"):
        receiver_example.make_app("")
    with pytest.raises(oe_async.InvalidArgumentError, match="allow_unsigned"):
        receiver_example.make_app(None)


async def test_the_webhook_receiver_example_refuses_to_start_without_a_secret() -> None:
    """Run as the docstring shows, with no SecretKey anywhere: it exits at once (it used to
    serve, accepting any payload)."""
    env = {k: v for k, v in os.environ.items() if k != receiver_example.SECRET_ENV}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "webhook_receiver.py"),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("the example started serving without a SecretKey")
    assert proc.returncode == 2
    assert b"SecretKey is required" in err


async def test_the_webhook_receiver_example_checks_the_secret_key(
    sim: Simulator, printer: Any
) -> None:
    events: list[WebhookEvent] = []
    app = receiver_example.make_app("not-the-simulators-key", events.append)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        await printer.app_api.set_notification_webhook(
            f"http://127.0.0.1:{sock.getsockname()[1]}/octoeverywhere/webhook"
        )
        assert await sim.deliver_webhook(1) == 403
    finally:
        await runner.cleanup()
    assert events == []
