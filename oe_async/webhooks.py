"""Notification webhooks: event types, the payload model, and a receiver for aiohttp.web.

OctoEverywhere POSTs a JSON payload to the app's webhook URL for each event (see
``PrinterConnection.set_notification_webhook``). :meth:`WebhookEvent.parse` decodes it
leniently (keys are never removed upstream, new ones appear: unknown keys land in
``extra``); :class:`WebhookReceiver` is a ready-made handler that validates the body and the
``SecretKey``, answers at once and hands the event to your callback in a task it owns.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Self

import attrs
from aiohttp import web

from .errors import InvalidArgumentError

__all__ = ["EventType", "WebhookEvent", "WebhookReceiver"]

_LOGGER = logging.getLogger(__package__)

#: The largest webhook body accepted (payloads are small JSON objects).
MAX_BODY: Final = 64 * 1024
#: The deepest nesting of JSON arrays/objects accepted (real payloads are 1-2 levels deep).
MAX_DEPTH: Final = 32
#: EventType values are small positive integers (a 32-bit int on the server).
_MAX_EVENT_TYPE: Final = 2**31 - 1


class EventType(enum.IntEnum):
    """Webhook event types. Values never change; unknown future ones are kept as is."""

    PRINT_STARTED = 1
    PRINT_COMPLETE = 2
    PRINT_FAILED = 3
    PRINT_PAUSED = 4
    PRINT_RESUMED = 5
    PRINT_PROGRESS = 6
    GADGET_POSSIBLE_FAILURE_WARNING = 7
    GADGET_PAUSED_PRINT = 8
    ERROR = 9
    FIRST_LAYER_COMPLETE = 10
    FILAMENT_CHANGE_REQUIRED = 11
    USER_INTERACTION_REQUIRED = 12
    NON_SUPPORTER_NOTIFICATION_LIMIT = 13
    THIRD_LAYER_COMPLETE = 14
    BED_COOL_DOWN_COMPLETE = 15
    TEST_NOTIFICATION = 16

    @classmethod
    def _missing_(cls, value: object) -> EventType | None:
        """Keep a value this version does not know (``EventType(99).name == "UNKNOWN_99"``)."""
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None

    @property
    def known(self) -> bool:
        """False for a value newer than this version of oe_async."""
        return not self.name.startswith("UNKNOWN_")


#: Payload keys with fields of their own (everything else goes to ``extra``).
_FIELDS: Final = {
    "PrinterId": "printer_id",
    "SecretKey": "secret_key",
    "PrintId": "print_id",
    "EventType": "event_type",
    "PrinterName": "printer_name",
    "SnapshotUrl": "snapshot_url",
    "QuickViewUrl": "quick_view_url",
    "FileName": "file_name",
    "DurationSec": "duration_sec",
    "Progress": "progress",
    "TimeRemainingSec": "time_remaining_sec",
    "ZOffsetMM": "z_offset_mm",
    "CurrentLayer": "current_layer",
    "TotalLayers": "total_layers",
    "Error": "error",
    "PlatformErrorCode": "platform_error_code",
}
_NUMBERS: Final = frozenset(
    {
        "duration_sec",
        "progress",
        "time_remaining_sec",
        "z_offset_mm",
        "current_layer",
        "total_layers",
    }
)


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """One notification from OctoEverywhere. ``secret_key`` is never shown in ``repr``."""

    event_type: EventType
    printer_id: str | None = None
    secret_key: str | None = attrs.field(default=None, repr=False)
    print_id: str | None = None
    printer_name: str | None = None
    snapshot_url: str | None = None
    quick_view_url: str | None = None
    file_name: str | None = None
    duration_sec: float | None = None
    progress: float | None = None
    time_remaining_sec: float | None = None
    z_offset_mm: float | None = None
    current_layer: float | None = None
    total_layers: float | None = None
    error: str | None = None
    platform_error_code: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, body: bytes | str | Mapping[str, Any]) -> Self:
        """Decode a webhook body (JSON bytes/text or an already-decoded object).

        Raises :class:`oe_async.InvalidArgumentError` naming the problem: not JSON (invalid
        UTF-8, a number Python cannot parse...), nested deeper than :data:`MAX_DEPTH`, not an
        object, or no integer ``EventType`` in 1..2**31-1. Unknown keys are kept in
        ``extra``; so is a numeric field whose value is not a finite number.
        """
        data = _decode(body)
        raw_type = data.get("EventType")
        if isinstance(raw_type, bool) or not isinstance(raw_type, int):
            raise InvalidArgumentError("webhook body has no integer EventType")
        if not 1 <= raw_type <= _MAX_EVENT_TYPE:
            raise InvalidArgumentError("webhook body's EventType is out of range")
        fields: dict[str, Any] = {"event_type": EventType(raw_type)}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            name = _FIELDS.get(key)
            if name is None:
                extra[key] = value
            elif name == "event_type" or value is None:
                continue
            elif name in _NUMBERS:
                number = _finite(value)
                if number is None:
                    extra[key] = value  # unexpected type or value: keep it rather than fail
                else:
                    fields[name] = number
            else:
                try:
                    fields[name] = str(value)
                except ValueError:  # an int with more digits than Python converts to text
                    extra[key] = value
        return cls(**fields, extra=extra)


def _decode(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """The payload as a mapping, or InvalidArgumentError naming what is wrong."""
    if isinstance(body, bytes | str):
        try:
            data: Any = json.loads(body)
        except RecursionError:
            raise InvalidArgumentError("webhook body is nested too deeply") from None
        except UnicodeDecodeError:
            raise InvalidArgumentError("webhook body is not JSON (invalid UTF-8)") from None
        except ValueError:  # integers over Python's 4,300-digit limit included
            raise InvalidArgumentError("webhook body is not JSON") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise InvalidArgumentError("webhook body must be a JSON object")
    if _too_deep(data):
        raise InvalidArgumentError(
            f"webhook body is nested too deeply (more than {MAX_DEPTH} levels)"
        )
    return data


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, NaN, infinite, too large)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        return None
    return number if math.isfinite(number) else None


def _too_deep(data: Any) -> bool:
    """True when containers nest deeper than MAX_DEPTH (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


EventHandler = Callable[[WebhookEvent], Awaitable[None] | None]


class WebhookReceiver:
    """An aiohttp.web handler for OctoEverywhere webhooks.

    ::

        receiver = WebhookReceiver(on_event, secret_key=stored_secret)
        receiver.attach(app, "/octoeverywhere/webhook")  # also stops it on app cleanup

    It answers 200 as soon as the body is valid, then runs ``on_event`` (sync or async) in
    a task it owns: a slow callback never delays OctoEverywhere. Bad requests get 400 (not
    JSON, nested too deeply, not an object, no valid EventType), 413 (body over
    ``max_body``, 64 KiB, however it is framed) or 403 (``SecretKey`` does not match;
    compared in constant time), each logged as one INFO line without a traceback. A failing
    callback is logged with its traceback. :meth:`close` cancels callbacks still running.

    Args:
        on_event: called with each :class:`WebhookEvent`.
        secret_key: the ``SecretKey`` OctoEverywhere puts in every payload; any other is
            refused. Required: an empty one is an error.
        allow_unsigned: accept every payload without checking ``SecretKey`` (local
            experiments only: anyone who finds the URL can post events). Only with no
            ``secret_key``.
        max_body: the largest body accepted, in bytes.

    """

    def __init__(
        self,
        on_event: EventHandler,
        *,
        secret_key: str | None = None,
        allow_unsigned: bool = False,
        max_body: int = MAX_BODY,
    ) -> None:
        if not callable(on_event):
            raise InvalidArgumentError("on_event must be a callable")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise InvalidArgumentError("max_body must be a positive int (bytes)")
        if secret_key is None:
            if not allow_unsigned:
                raise InvalidArgumentError(
                    "WebhookReceiver needs secret_key (the SecretKey you expect), or "
                    "allow_unsigned=True to accept unsigned payloads explicitly"
                )
            self._secret: bytes | None = None
        elif not isinstance(secret_key, str):
            raise InvalidArgumentError("secret_key must be a str")
        elif not secret_key.strip():
            raise InvalidArgumentError(
                "secret_key is empty, so it would check nothing; pass the SecretKey you "
                "expect, or allow_unsigned=True to accept unsigned payloads"
            )
        elif allow_unsigned:
            raise InvalidArgumentError("pass either secret_key or allow_unsigned=True, not both")
        else:
            self._secret = secret_key.encode()
        self._on_event = on_event
        self._max_body = max_body
        self._tasks: set[asyncio.Task[None]] = set()
        self.received: int = 0
        self.rejected: int = 0

    def attach(self, app: web.Application, path: str) -> None:
        """Route POST ``path`` to this receiver and close it when the app shuts down."""
        app.router.add_post(path, self.handle)

        async def _cleanup(_: web.Application) -> None:
            await self.close()

        app.on_cleanup.append(_cleanup)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler."""
        if request.content_length is not None and request.content_length > self._max_body:
            return self._reject(413, "body too large")
        body = await self._read_body(request)
        if body is None:
            return self._reject(413, "body too large")
        try:
            event = WebhookEvent.parse(body)
        except InvalidArgumentError as err:
            return self._reject(400, str(err))
        if self._secret is not None:
            given = (event.secret_key or "").encode()
            if not hmac.compare_digest(given, self._secret):
                return self._reject(403, "SecretKey does not match")
        self.received += 1
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None once it passes ``max_body``.

        However it is framed (Content-Length or chunked) it may take many reads: one read
        returns only what has arrived so far.
        """
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(self._max_body + 1 - size):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _reject(self, status: int, reason: str) -> web.Response:
        self.rejected += 1
        # One quiet line: hostile traffic must not flood the log. `reason` is ours, never
        # a value from the payload.
        _LOGGER.info("webhook rejected with %d: %s", status, reason)
        return web.json_response({"ok": False, "error": reason}, status=status)

    async def _deliver(self, event: WebhookEvent) -> None:
        try:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _LOGGER.exception("webhook callback failed for %s", event.event_type.name)

    async def close(self) -> None:
        """Cancel callbacks still running and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def drain(self) -> None:
        """Wait for the callbacks already started (for tests and graceful shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))
