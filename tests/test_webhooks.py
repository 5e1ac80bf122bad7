"""Notification webhooks: the App API calls, the payload model, the receiver."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
import pytest
import pytest_asyncio
from aiohttp import web
from syrupy.assertion import SnapshotAssertion
from yarl import URL

import oe_async
from oe_async import EventType, PrinterConnection, WebhookEvent, WebhookReceiver
from oe_async.testing import Simulator

EXAMPLE = (Path(__file__).parent / "fixtures" / "webhook_payload_spec_example.json").read_bytes()


class Receiver:
    def __init__(self, secret_key: str | None) -> None:
        self.events: list[WebhookEvent] = []
        self.receiver = WebhookReceiver(self.events.append, secret_key=secret_key)
        self.url = URL()

    async def start(self) -> None:
        app = web.Application()
        self.receiver.attach(app, "/hooks/octoeverywhere")
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self.runner, sock).start()
        self.url = URL(f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/octoeverywhere")


@pytest_asyncio.fixture
async def receiver(sim: Simulator) -> AsyncIterator[Receiver]:
    r = Receiver(sim.state.webhook.secret_key)
    await r.start()
    yield r
    await r.runner.cleanup()


class TestPayload:
    def test_the_example_decodes(self, snapshot: SnapshotAssertion) -> None:
        event = WebhookEvent.parse(EXAMPLE)
        assert event.event_type is EventType.PRINT_PROGRESS
        assert event.progress == 42.5
        assert event.z_offset_mm == 0.04
        assert event.extra == {"FutureField": {"Added": "later"}}
        assert "whsec-do-not-print-me" not in repr(event)
        assert attrs.asdict(event, filter=lambda a, _: a.name != "secret_key") == snapshot

    def test_unknown_event_types_survive(self) -> None:
        event = WebhookEvent.parse({"EventType": 99, "PrinterId": "p"})
        assert int(event.event_type) == 99
        assert event.event_type.name == "UNKNOWN_99"
        assert not event.event_type.known
        assert EventType(99) == 99
        assert EventType.TEST_NOTIFICATION.known

    def test_event_types_are_1_to_16(self) -> None:
        assert [int(e) for e in EventType] == list(range(1, 17))

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "not JSON"),
            (b"[1]", "object"),
            (b'{"PrinterId": "x"}', "EventType"),
            (b'{"EventType": "1"}', "EventType"),
        ],
    )
    def test_bad_bodies(self, body: bytes, message: str) -> None:
        with pytest.raises(oe_async.InvalidArgumentError, match=message):
            WebhookEvent.parse(body)

    def test_odd_value_types_are_kept_not_fatal(self) -> None:
        event = WebhookEvent.parse({"EventType": 6, "Progress": "42%", "PlatformErrorCode": 17})
        assert event.progress is None
        assert event.extra == {"Progress": "42%"}
        assert event.platform_error_code == "17"


class TestApi:
    async def test_set_test_delete(
        self, printer: PrinterConnection, sim: Simulator, receiver: Receiver
    ) -> None:
        url = str(receiver.url) + "?tenantId=abc123&printerRef=p%2042"
        await printer.app_api.set_notification_webhook(
            url, [EventType.PRINT_STARTED, 3, EventType.PRINT_STARTED]
        )
        assert sim.state.webhook.url == url  # verbatim, query included
        assert sim.state.webhook.event_types == [1, 3]
        assert await printer.app_api.test_notification_webhook() == 200
        await receiver.receiver.drain()
        assert [e.event_type for e in receiver.events] == [EventType.TEST_NOTIFICATION]
        await printer.app_api.delete_notification_webhook()
        assert sim.state.webhook.url is None
        request = sim.requests_to("app_api", "*/SetNotificationWebhook")[0]
        assert request.headers["AppToken"] == sim.app_token

    async def test_all_events_by_default(self, printer: PrinterConnection, sim: Simulator) -> None:
        await printer.app_api.set_notification_webhook("https://hooks.example.com/oe")
        assert sim.state.webhook.event_types == []

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://hooks.example.com/x", "https"),
            ("/relative", "absolute"),
            ("", "non-empty"),
            ("ftp://x.example.com", "https"),
        ],
    )
    async def test_url_is_validated_before_sending(
        self, printer: PrinterConnection, sim: Simulator, url: str, message: str
    ) -> None:
        with pytest.raises(oe_async.InvalidArgumentError, match=message):
            await printer.app_api.set_notification_webhook(url)
        assert sim.requests == []

    async def test_event_types_are_validated(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        for bad in ([0], ["1"], [True]):
            with pytest.raises(oe_async.InvalidArgumentError, match="event_types"):
                await printer.app_api.set_notification_webhook("https://hooks.example.com/oe", bad)  # type: ignore[arg-type]
        assert sim.requests == []

    async def test_http_webhooks_need_loopback_and_the_client_opt_in(self, sim: Simulator) -> None:
        async with sim.client(allow_insecure_loopback=True) as oe:
            await oe.printer(sim.app_connection()).app_api.set_notification_webhook(
                "http://127.0.0.1:9/x"
            )
        assert sim.state.webhook.url == "http://127.0.0.1:9/x"

    async def test_api_errors(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.revoke()
        with pytest.raises(oe_async.AppConnectionRevokedError):
            await printer.app_api.test_notification_webhook()


class TestReceiver:
    async def test_a_delivered_event_reaches_the_callback_typed(
        self, printer: PrinterConnection, sim: Simulator, receiver: Receiver
    ) -> None:
        await printer.app_api.set_notification_webhook(str(receiver.url))
        status = await sim.deliver_webhook(
            2, FileName="benchy.gcode", DurationSec=3600, NewField=[1]
        )
        assert status == 200
        await receiver.receiver.drain()
        event = receiver.events[0]
        assert event.event_type is EventType.PRINT_COMPLETE
        assert event.file_name == "benchy.gcode"
        assert event.duration_sec == 3600.0
        assert event.extra == {"NewField": [1]}
        assert event.secret_key == sim.state.webhook.secret_key

    async def test_filtered_events_are_not_delivered(
        self, printer: PrinterConnection, sim: Simulator, receiver: Receiver
    ) -> None:
        await printer.app_api.set_notification_webhook(str(receiver.url), [EventType.PRINT_FAILED])
        assert await sim.deliver_webhook(1) is None
        assert await sim.deliver_webhook(3) == 200

    async def test_an_unknown_event_type_survives_end_to_end(
        self, printer: PrinterConnection, sim: Simulator, receiver: Receiver
    ) -> None:
        await printer.app_api.set_notification_webhook(str(receiver.url))
        assert await sim.deliver_webhook(77) == 200
        await receiver.receiver.drain()
        assert int(receiver.events[0].event_type) == 77

    async def test_a_wrong_secret_key_is_rejected(
        self, printer: PrinterConnection, sim: Simulator, receiver: Receiver
    ) -> None:
        await printer.app_api.set_notification_webhook(str(receiver.url))
        sim.state.webhook.secret_key = "an-impostor"
        assert await sim.deliver_webhook(1) == 403
        assert receiver.events == []
        assert receiver.receiver.rejected == 1

    async def test_bad_requests(self, receiver: Receiver) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(receiver.url, data=b"nope") as resp:
                assert resp.status == 400
            async with session.post(receiver.url, data=b"x" * 70_000) as resp:
                assert resp.status == 413
        assert receiver.events == []

    async def test_the_answer_does_not_wait_for_a_slow_callback(self) -> None:
        release = asyncio.Event()
        handled: list[WebhookEvent] = []

        async def slow(event: WebhookEvent) -> None:
            await release.wait()
            handled.append(event)

        receiver = WebhookReceiver(slow, allow_unsigned=True)
        app = web.Application()
        receiver.attach(app, "/h")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{sock.getsockname()[1]}/h", data=EXAMPLE) as resp,
            ):
                assert resp.status == 200
            assert handled == []
            release.set()
            await receiver.drain()
            assert len(handled) == 1
        finally:
            await runner.cleanup()

    async def test_close_cancels_pending_callbacks(self) -> None:
        receiver = WebhookReceiver(lambda e: asyncio.sleep(3600), allow_unsigned=True)
        app = web.Application()
        receiver.attach(app, "/h")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{sock.getsockname()[1]}/h", data=EXAMPLE) as resp,
        ):
            assert resp.status == 200
        await runner.cleanup()  # on_cleanup closes the receiver
        assert receiver._tasks == set()

    async def test_a_failing_callback_is_logged_with_its_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(event: WebhookEvent) -> None:
            raise RuntimeError("app bug")

        receiver = WebhookReceiver(broken, allow_unsigned=True)
        request_body = json.loads(EXAMPLE)
        await receiver._deliver(WebhookEvent.parse(request_body))
        assert any(
            "webhook callback failed" in r.getMessage() and r.exc_info for r in caplog.records
        )
