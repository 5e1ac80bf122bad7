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
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Self

import aiohttp
import aiohttp.http_exceptions
import attrs
from aiohttp import web

from .errors import InvalidArgumentError

__all__ = ["EventType", "WebhookEvent", "WebhookReceiver"]

_LOGGER = logging.getLogger(__package__)

#: The largest webhook body accepted (payloads are small JSON objects).
MAX_BODY: Final = 64 * 1024
#: The deepest nesting of JSON arrays/objects accepted (real payloads are 1-2 levels deep).
MAX_DEPTH: Final = 32
#: How long the receiver waits for a whole body (seconds): a client dripping one byte a
#: second must not hold a connection and a task for ever.
READ_TIMEOUT: Final = 10.0
#: The most callbacks running at once; past it an event is answered 503 (retry later).
MAX_CALLBACKS: Final = 100
#: Content codings the receiver inflates itself (with the ``max_body`` bound).
_INFLATED: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}


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
        object, or no integer ``EventType``. Any integer is an event type: one this version
        does not know (a new one, or a value no real event has, such as 0, -1 or 10**30) is
        kept as it is (``event.event_type.known`` is False), so the receiver still answers
        200 and OctoEverywhere neither retries nor disables the hook. Unknown keys are kept
        in ``extra``; so is a numeric field whose value is not a finite number.
        """
        data = _decode(body)
        raw_type = data.get("EventType")
        if isinstance(raw_type, bool) or not isinstance(raw_type, int):
            raise InvalidArgumentError("webhook body has no integer EventType")
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

_TOO_LARGE: Final = "body too large"


def _looks_like_json(start: bytes) -> bool:
    """True when a body's first bytes are JSON text (an object, maybe after spaces or a BOM).

    gzip starts with 1f 8b, zlib with 08..78, raw deflate with a block header: none is
    ``{``, whitespace or a UTF-8 BOM in practice.
    """
    return start[:1] in (b"{", b" ", b"\t", b"\r", b"\n", b"\xef")


class _Inflater:
    """Inflates gzip/zlib/raw deflate into at most ``limit`` + 1 bytes, then stops."""

    __slots__ = ("_limit", "_made", "_zlib", "done", "failed", "over")

    def __init__(self, wbits: int, limit: int) -> None:
        # wbits 0 for "deflate": 32 + 15 detects zlib or gzip; raw deflate is tried below.
        self._zlib = zlib.decompressobj(wbits or 32 + zlib.MAX_WBITS)
        self._limit = limit
        self._made = 0
        self.done = False
        self.failed = False
        self.over = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.failed = bool(data)  # bytes after the end of the compressed stream
            return b""
        try:
            out = self._zlib.decompress(data, self._limit + 1 - self._made)
        except zlib.error:
            if self._made or not data:
                self.failed = True
                return b""
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent raw
            try:
                out = self._zlib.decompress(data, self._limit + 1)
            except zlib.error:
                self.failed = True
                return b""
        self._made += len(out)
        self.over = self._made > self._limit or bool(self._zlib.unconsumed_tail)
        self.done = self._zlib.eof
        return out


class WebhookReceiver:
    """An aiohttp.web handler for OctoEverywhere webhooks.

    ::

        receiver = WebhookReceiver(on_event, secret_key=stored_secret)
        receiver.attach(app, "/octoeverywhere/webhook")  # also stops it on app cleanup

    It answers 200 as soon as the body is valid, then runs ``on_event`` (sync or async) in
    a task it owns: a slow callback never delays OctoEverywhere. An event type this version
    does not know is delivered too (``event.event_type.known`` is False). Bad requests get
    400 (not JSON, nested too deeply, not an object, no integer EventType, a compressed
    body that does not inflate), 413 (body over ``max_body``, 64 KiB, however it is framed
    or compressed), 415 (a ``Content-Encoding`` other than gzip or deflate), 408 (the body
    took longer than ``read_timeout``), 403 (``SecretKey`` does not match; compared in
    constant time) or 503 (``max_callbacks`` callbacks still running: OctoEverywhere tries
    again later), each logged as one INFO line without a traceback. A request refused
    before its body was read whole closes its connection, so aiohttp does not read (and
    inflate) the rest. A failing callback is logged with its traceback. :meth:`close`
    cancels callbacks still running.

    Compressed bodies: with aiohttp's ``auto_decompress`` on (its default, and what a shared
    application such as Home Assistant's has) aiohttp inflates as the receiver reads, and
    the receiver stops at ``max_body`` inflated bytes; create your own application with
    ``web.Application(handler_args={"auto_decompress": False})`` (as
    ``examples/webhook_receiver.py`` does) and the receiver inflates gzip and deflate
    itself, with the same bound. Either way a small compressed bomb costs at most
    ``max_body`` bytes of inflating.

    Replays: the payload has no timestamp or nonce, and ``SecretKey`` is a fixed shared
    secret, so anyone who captured one request could send it (or any other) again. Keep
    the webhook URL https and private, and make ``on_event`` idempotent (OctoEverywhere may
    also deliver an event twice): key what it does on ``print_id`` and ``event_type``.

    Args:
        on_event: called with each :class:`WebhookEvent`.
        secret_key: the ``SecretKey`` OctoEverywhere puts in every payload; any other is
            refused. Required: an empty one is an error.
        allow_unsigned: accept every payload without checking ``SecretKey`` (local
            experiments only: anyone who finds the URL can post events). Only with no
            ``secret_key``.
        max_body: the largest body accepted, in bytes (inflated, for a compressed one).
        read_timeout: seconds to receive the whole body (10 s; 408 after).
        max_callbacks: how many ``on_event`` callbacks may run at once (100); an event
            arriving past that is answered 503 and not delivered (the sender retries).

    """

    def __init__(
        self,
        on_event: EventHandler,
        *,
        secret_key: str | None = None,
        allow_unsigned: bool = False,
        max_body: int = MAX_BODY,
        read_timeout: float = READ_TIMEOUT,
        max_callbacks: int = MAX_CALLBACKS,
    ) -> None:
        if not callable(on_event):
            raise InvalidArgumentError("on_event must be a callable")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise InvalidArgumentError("max_body must be a positive int (bytes)")
        if (
            isinstance(read_timeout, bool)
            or not isinstance(read_timeout, int | float)
            or not 0 < read_timeout < math.inf
        ):
            raise InvalidArgumentError("read_timeout must be a positive number of seconds")
        if (
            isinstance(max_callbacks, bool)
            or not isinstance(max_callbacks, int)
            or max_callbacks < 1
        ):
            raise InvalidArgumentError("max_callbacks must be a positive int")
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
        self._read_timeout = float(read_timeout)
        self._max_callbacks = max_callbacks
        self._saturated = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.received: int = 0
        self.rejected: int = 0

    def attach(self, app: web.Application, path: str) -> None:
        """Route POST ``path`` to this receiver and close it when the app shuts down.

        It cannot change how ``app`` was made: for the receiver to see compressed bodies as
        sent (and inflate them itself), create the application with
        ``web.Application(handler_args={"auto_decompress": False})``. With aiohttp's default
        it is safe too (see the class docstring).
        """
        app.router.add_post(path, self.handle)

        async def _cleanup(_: web.Application) -> None:
            await self.close()

        app.on_cleanup.append(_cleanup)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler."""
        body = await self._receive(request)
        if isinstance(body, web.Response):
            return body
        try:
            event = WebhookEvent.parse(body)
        except InvalidArgumentError as err:
            return self._reject(400, str(err))
        if self._secret is not None:
            given = (event.secret_key or "").encode()
            if not hmac.compare_digest(given, self._secret):
                return self._reject(403, "SecretKey does not match")
        if len(self._tasks) >= self._max_callbacks:
            if not self._saturated:  # once per episode, not per event
                self._saturated = True
                _LOGGER.warning(
                    "webhook callbacks: %d still running; answering 503 until one ends",
                    len(self._tasks),
                )
            response = self._reject(503, "too many events in progress")
            response.headers["Retry-After"] = "10"
            return response
        self._saturated = False
        self.received += 1
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    async def _receive(self, request: web.Request) -> bytes | web.Response:
        """The whole (inflated) body, or the response refusing it."""
        coding = request.headers.get("Content-Encoding", "identity").strip().lower()
        # A compressed body refused half-read closes the connection (see _reject).
        compressed = request if coding != "identity" else None
        if compressed is not None and coding not in _INFLATED:
            return await self._refuse(415, "unsupported Content-Encoding", request)
        if request.content_length is not None and request.content_length > self._max_body:
            return await self._refuse(413, _TOO_LARGE, compressed)
        try:
            async with asyncio.timeout(self._read_timeout):
                body = await self._read_body(request, _INFLATED.get(coding))
        except TimeoutError:  # a sender this slow gets no more time
            return await self._refuse(408, "body not received in time", request)
        except (web.RequestPayloadError, aiohttp.http_exceptions.HttpProcessingError):
            # aiohttp could not inflate it (auto_decompress on) or the framing broke
            return await self._refuse(400, "body could not be read", request)
        if isinstance(body, str):
            return await self._refuse(413 if body == _TOO_LARGE else 400, body, compressed)
        return body

    async def _read_body(self, request: web.Request, wbits: int | None) -> bytes | str:
        """The whole body (inflated), or the reason it is refused.

        However it is framed (Content-Length or chunked) it may take many reads: one read
        returns only what has arrived so far. ``wbits`` (a zlib window, 0: detect zlib or
        raw deflate) when the body is compressed: it is inflated here unless aiohttp did
        already (``auto_decompress``), never past ``max_body`` bytes.
        """
        limit = self._max_body
        chunks: list[bytes] = []
        size = 0
        inflater: _Inflater | None = None
        while chunk := await request.content.read(limit + 1):
            # Still compressed (auto_decompress off): aiohttp left the inflating to us.
            if wbits is not None and not chunks and not _looks_like_json(chunk):
                inflater = _Inflater(wbits, limit)
            if inflater is not None:
                chunk = inflater.feed(chunk)
                if inflater.failed:
                    return "compressed body does not inflate"
            size += len(chunk)
            if size > limit or (inflater is not None and inflater.over):
                return _TOO_LARGE
            chunks.append(chunk)
        if inflater is not None and not inflater.done:
            return "compressed body is cut short"
        return b"".join(chunks)

    def _reject(self, status: int, reason: str) -> web.Response:
        self.rejected += 1
        # One quiet line: hostile traffic must not flood the log. `reason` is ours, never
        # a value from the payload.
        _LOGGER.info("webhook rejected with %d: %s", status, reason)
        return web.json_response({"ok": False, "error": reason}, status=status)

    async def _refuse(self, status: int, reason: str, unread: web.Request | None) -> web.Response:
        """:meth:`_reject`; ``unread``: send the answer now and close, reading no more.

        Otherwise aiohttp reads what is left of the body (up to 10 s of "lingering"),
        inflating it when ``auto_decompress`` is on: a 261 KB gzip bomb cost 0.7 s of loop
        CPU. Only for compressed bodies and slow senders: a plain body past ``max_body``
        is still drained cheaply, so its sender reads the 413 rather than a reset.
        """
        response = self._reject(status, reason)
        if unread is not None:
            response.force_close()
            await response.prepare(unread)
            await response.write_eof()
            unread.protocol.force_close()  # closes the socket: no lingering read
        return response

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
