"""A Bambu Lab printer through the relay's MQTT: ``BambuPrinter(printer.mqtt, serial)``.

A façade over :attr:`oe_async.PrinterConnection.mqtt` for one kind of printer: the report
and request topics of its serial number, a full report asked for on every (re)connect, the
partial reports merged into a typed :class:`oe_async.BambuReport`, and the print commands::

    bambu = BambuPrinter(printer.mqtt, serial)
    async with bambu.connect() as session:
        async for report in session.reports():
            print(report.gcode_state, report.mc_percent, report.nozzle_temper)

or in the background, with availability events, for an integration::

    watch = bambu.watch(on_report, on_state=on_state)
    await watch.pause()

The serial number is the printer's (``get-connection-info`` of the plugin API has it); it
is never shown in a repr, a log line or an error message.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Self

from .bambu import (
    BambuCommand,
    BambuReport,
    BambuState,
    check_serial,
    print_command,
    pushall_command,
    report_topic,
    request_topic,
)
from .errors import InvalidArgumentError, UnsupportedOnPlatformError
from .mqtt import MQTT, MQTTSubscription
from .mqtt_packets import MQTTMessage
from .mqtt_session import MQTTSession
from .plugin_api import PluginAPI
from .retry import ReconnectPolicy
from .subscription import StateHandler, SubscriptionState, call_handler

__all__ = ["BambuPrinter", "BambuSession", "BambuWatch", "ReportCallback"]

#: ``on_report(report)``, sync or async, for each merged report.
ReportCallback = Callable[[BambuReport], Awaitable[None] | None]


class _BambuCommands(metaclass=abc.ABCMeta):
    """What a session and a watch share: the merged report and the printer's commands.

    The commands go to ``device/<serial>/request``; a subclass says how (``_publish``).
    """

    def __init__(self, serial: str) -> None:
        self._serial = serial
        self._sequence = secrets.randbelow(900_000_000)
        self._state = BambuState()

    @property
    def report(self) -> BambuReport | None:
        """The printer's state after the last report (None before the first)."""
        return self._state.report

    @abc.abstractmethod
    async def _publish(self, payload: Mapping[str, Any], qos: int) -> None:
        """Send ``payload`` as JSON to the request topic."""

    def _next_sequence_id(self) -> str:
        # Below 1,000,000,000, where the plugin's own command ids start: the printer echoes
        # ids on the shared report topic, so ours must never match a plugin command's.
        self._sequence = self._sequence % 999_999_999 + 1
        return str(self._sequence)

    async def pushall(self) -> None:
        """Ask the printer for its whole state (it answers on the report topic)."""
        await self._publish(pushall_command(self._next_sequence_id()), 0)

    async def pause(self, *, qos: int = 0) -> None:
        """Pause the current print."""
        await self.print_command("pause", qos=qos)

    async def resume(self, *, qos: int = 0) -> None:
        """Resume a paused print."""
        await self.print_command("resume", qos=qos)

    async def stop(self, *, qos: int = 0) -> None:
        """Stop (cancel) the current print."""
        await self.print_command("stop", qos=qos)

    async def print_command(self, command: BambuCommand, *, qos: int = 0) -> None:
        """Send ``{"print": {"command": command}}`` (``pause``, ``resume`` or ``stop``).

        QoS 0 is what the plugin itself uses; ``qos=1`` waits until the printer's broker
        (through the relay) acknowledged the command.
        """
        await self._publish(print_command(command, self._next_sequence_id()), qos)

    async def command(self, payload: Mapping[str, Any], *, qos: int = 0) -> None:
        """Send any command object, e.g. ``{"system": {"command": "ledctrl", ...}}``.

        A ``sequence_id`` is added to its inner object when it has none.

        Raises:
            InvalidArgumentError: ``payload`` is not one object holding one object.

        """
        if not isinstance(payload, Mapping) or len(payload) != 1:
            raise InvalidArgumentError("a Bambu Lab command is one object, e.g. {'print': {...}}")
        ((module, body),) = payload.items()
        if not isinstance(body, Mapping):
            raise InvalidArgumentError("a Bambu Lab command's inner value must be an object")
        if "sequence_id" not in body:
            body = {"sequence_id": self._next_sequence_id(), **body}
        await self._publish({module: body}, qos)


class BambuPrinter:
    """A Bambu Lab printer through the relay's MQTT. No I/O until ``connect()``/``watch()``.

    Args:
        mqtt: the printer's MQTT feature, ``printer.mqtt``.
        serial: the printer's serial number.
        connect_options: what :meth:`oe_async.MQTT.connect` takes, for every connection
            (``keepalive``, ``connect_timeout``...).

    Raises:
        InvalidArgumentError: a serial number that cannot be a topic level.

    """

    def __init__(self, mqtt: MQTT, serial: str, **connect_options: Any) -> None:
        self._mqtt = mqtt
        self._serial = check_serial(serial)
        self._options = connect_options

    def __repr__(self) -> str:
        return "<BambuPrinter device/***>"

    @classmethod
    async def discover(cls, mqtt: MQTT, plugin: PluginAPI, **connect_options: Any) -> BambuPrinter:
        """The printer behind ``printer``, its serial number asked of the plugin.

        ``bambu = await BambuPrinter.discover(printer.mqtt, printer.plugin)``: one
        ``get-connection-info`` call (:meth:`oe_async.PluginAPI.connection_info`), then no
        I/O until ``connect()``/``watch()``. ``connect_options`` as for the constructor.

        Raises:
            UnsupportedOnPlatformError: the plugin reports no serial number (not a Bambu Lab
                or Elegoo Centauri Carbon 2 printer).

        And what every plugin call raises.

        """
        info = await plugin.connection_info()
        if not info.serial_number:
            raise UnsupportedOnPlatformError(
                "the printer reports no serial number: it is not a Bambu Lab printer"
            )
        return cls(mqtt, info.serial_number, **connect_options)

    @property
    def report_topic(self) -> str:
        """``device/<serial>/report``."""
        return report_topic(self._serial)

    @property
    def request_topic(self) -> str:
        """``device/<serial>/request``."""
        return request_topic(self._serial)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[BambuSession]:
        """A session subscribed to the reports, a full report asked for.

        ``async with bambu.connect() as session: async for report in session.reports()``.
        Raises what :meth:`oe_async.MQTT.connect` and :meth:`oe_async.MQTTSession.subscribe` raise.
        """
        async with self._mqtt.connect(**self._options) as session:
            await session.subscribe(self.report_topic)
            bambu = BambuSession(session, self._serial)
            await bambu.pushall()
            yield bambu

    def watch(
        self,
        on_report: ReportCallback,
        *,
        on_state: StateHandler | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> BambuWatch:
        """Follow the printer in the background: ``on_report`` gets each merged report.

        A full report is asked for after every (re)connect; ``on_state`` gets the
        availability events (see :meth:`oe_async.MQTT.subscribe`). A report that is not a JSON
        object stops the watch (``wait()`` raises :class:`oe_async.UnexpectedResponseError`).
        """
        return BambuWatch(
            self._mqtt,
            self._serial,
            on_report,
            on_state=on_state,
            reconnect=reconnect,
            connect_options=self._options,
        )


class BambuSession(_BambuCommands):
    """A Bambu Lab printer over one MQTT session (from :meth:`BambuPrinter.connect`)."""

    def __init__(self, session: MQTTSession, serial: str) -> None:
        super().__init__(serial)
        self._session = session

    def __repr__(self) -> str:
        return f"<BambuSession {self._session!r}>"

    @property
    def session(self) -> MQTTSession:
        """The MQTT session underneath."""
        return self._session

    async def reports(self) -> AsyncIterator[BambuReport]:
        """Each merged report, as the printer sends them, until the session ends.

        It reads the session's messages: messages on other topics (if you subscribed to
        more) are skipped; read ``session.messages()`` yourself to see them.

        Raises:
            UnexpectedResponseError: a report that is not a JSON object.
            and what :meth:`oe_async.MQTTSession.messages` raises.

        """
        topic = report_topic(self._serial)
        async for message in self._session.messages():
            if message.topic == topic:
                report = self._state.update(message.json())
                if report is not None:
                    yield report

    async def _publish(self, payload: Mapping[str, Any], qos: int) -> None:
        await self._session.publish(request_topic(self._serial), payload, qos=qos)


class BambuWatch(_BambuCommands):
    """A Bambu Lab printer followed in the background (from :meth:`BambuPrinter.watch`)."""

    def __init__(
        self,
        mqtt: MQTT,
        serial: str,
        on_report: ReportCallback,
        *,
        on_state: StateHandler | None,
        reconnect: ReconnectPolicy | None,
        connect_options: dict[str, Any],
    ) -> None:
        if not callable(on_report):
            raise InvalidArgumentError("on_report must be a callable")
        super().__init__(serial)
        self._on_report = on_report
        self._subscription = mqtt.subscribe(
            report_topic(serial),
            self._on_message,
            on_state=on_state,
            on_connect=self._on_connect,
            reconnect=reconnect,
            **connect_options,
        )

    def __repr__(self) -> str:
        return f"<BambuWatch {self._subscription!r}>"

    @property
    def subscription(self) -> MQTTSubscription:
        """The subscription underneath (state, error, connects...)."""
        return self._subscription

    @property
    def state(self) -> SubscriptionState:
        """The subscription's state (map it to availability)."""
        return self._subscription.state

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (see :meth:`oe_async.MQTTSubscription.wait_connected`)."""
        await self._subscription.wait_connected(timeout)

    async def wait(self) -> None:
        """Wait for the watch to stop; raise what stopped it."""
        await self._subscription.wait()

    async def close(self) -> None:
        """Stop following the printer (idempotent)."""
        await self._subscription.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_connect(self, session: MQTTSession) -> None:
        await session.publish(
            request_topic(self._serial), pushall_command(self._next_sequence_id())
        )

    async def _on_message(self, message: MQTTMessage) -> None:
        if message.topic != report_topic(self._serial):
            return
        report = self._state.update(message.json())
        if report is not None:
            await call_handler(self._on_report, report)

    async def _publish(self, payload: Mapping[str, Any], qos: int) -> None:
        await self._subscription.publish(request_topic(self._serial), payload, qos=qos)
