"""``send-command``: a command in the printer's own protocol, through the plugin (pure).

The requests (:class:`HTTPCommand`, :class:`WebSocketCommand`, :class:`MQTTCommand`) check
their arguments as they are built, as the real plugin would (its ``ParseHttpSendCommand``,
``ParseWebsocketSendCommand``, ``ParseMqttSendCommand``); :class:`CommandResult` is the
plugin's ``BuildSendCommandResult`` envelope with typed views of the printer's answer.
"""

from __future__ import annotations

import base64
import json as jsonlib
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal

import attrs

from ._convert import converter
from .errors import InvalidArgumentError
from .mqtt_packets import redact_topic

__all__ = [
    "MAX_COMMAND_TIMEOUT_SEC",
    "CommandResult",
    "HTTPCommand",
    "HTTPReply",
    "MQTTCommand",
    "PluginMQTTMessage",
    "WebSocketCommand",
]

#: The longest ``TimeoutSec`` the plugin accepts for a send-command (30 minutes).
MAX_COMMAND_TIMEOUT_SEC: Final = 1800


@attrs.frozen(kw_only=True, repr=False)
class HTTPCommand:
    """A request to the printer's own HTTP API, sent by the plugin on the printer's LAN.

    For OctoPrint and PrusaLink (the platforms whose ``send-command`` transport is http).
    The plugin adds the printer's local credentials (OctoPrint's API key, PrusaLink's
    digest auth), so ``path`` must be the printer's own API path, starting with a single
    ``/`` (an absolute URL is refused, by us and by the plugin). The body is one of
    ``json`` (an object: the plugin sends it with ``Content-Type: application/json``
    unless ``headers`` says otherwise), ``text`` (sent as UTF-8) or ``data`` (bytes); set
    the content type of ``text``/``data`` in ``headers``. ``repr()`` shows header names,
    never their values.
    """

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    json: Mapping[str, Any] | None = None
    text: str | None = None
    data: bytes | None = None

    transport: ClassVar[Literal["http"]] = "http"

    def __attrs_post_init__(self) -> None:
        path = self.path
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise InvalidArgumentError(
                "HTTPCommand.path must be the printer's own API path, starting with one '/' "
                "(the plugin adds the printer's credentials, so it only calls the printer)"
            )
        if "://" in path:
            raise InvalidArgumentError("HTTPCommand.path must be a path, not an absolute URL")
        if not isinstance(self.method, str) or not self.method.strip():
            raise InvalidArgumentError("HTTPCommand.method must be a non-empty string")
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise InvalidArgumentError("HTTPCommand.headers must map str names to str values")
        if sum(body is not None for body in (self.json, self.text, self.data)) > 1:
            raise InvalidArgumentError("HTTPCommand takes one body: json, text or data")
        if self.json is not None and not isinstance(self.json, Mapping):
            raise InvalidArgumentError(
                "HTTPCommand.json must be a JSON object (send other JSON as text=)"
            )
        if self.text is not None and not isinstance(self.text, str):
            raise InvalidArgumentError("HTTPCommand.text must be a str")
        if self.data is not None and not isinstance(self.data, bytes | bytearray):
            raise InvalidArgumentError("HTTPCommand.data must be bytes")

    def __repr__(self) -> str:
        # Header values and the query (``?apikey=...``) may hold secrets: names and path only.
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        return f"HTTPCommand({self.method} {path!r}, headers={sorted(self.headers)})"

    def payload(self) -> dict[str, Any]:
        """The ``send-command`` fields for this request (no ``TransportType``)."""
        out: dict[str, Any] = {
            "Path": self.path,
            "Method": self.method,
            "Request": dict(self.json) if self.json is not None else {},
        }
        if self.headers:
            out["Headers"] = dict(self.headers)
        if self.text is not None:
            out["BodyText"] = self.text
        if self.data is not None:
            out["BodyBase64"] = base64.b64encode(self.data).decode("ascii")
        return out


@attrs.frozen(kw_only=True)
class WebSocketCommand:
    """A command on the printer's own WebSocket API, sent by the plugin.

    Moonraker: a JSON-RPC ``method`` (``"printer.objects.query"``) with ``params``;
    Elegoo (SDCP): an integer command id as ``method`` (``1`` asks for attributes) with
    ``params`` as the command's ``Data``.
    """

    method: str | int
    params: Mapping[str, Any] = attrs.field(factory=dict)

    transport: ClassVar[Literal["websocket"]] = "websocket"

    def __attrs_post_init__(self) -> None:
        method = self.method
        if isinstance(method, bool) or not isinstance(method, str | int) or method == "":
            raise InvalidArgumentError(
                "WebSocketCommand.method must be a JSON-RPC method name (Moonraker) or an "
                "integer command id (Elegoo SDCP)"
            )
        if not isinstance(self.params, Mapping):
            raise InvalidArgumentError("WebSocketCommand.params must be a mapping")

    def payload(self) -> dict[str, Any]:
        """The ``send-command`` fields for this command (no ``TransportType``)."""
        return {"Request": {"Method": self.method, "Params": dict(self.params)}}


@attrs.frozen(kw_only=True)
class MQTTCommand:
    """A message to the printer's own MQTT broker, published by the plugin.

    Bambu Lab: ``request`` is the whole JSON payload, sent as it is to
    ``device/<serial>/request`` (``{"pushing": {"sequence_id": "0", "command":
    "pushall"}}``). Elegoo Centauri Carbon 2: ``{"Method": <int>, "Params": {...}}``.
    """

    request: Mapping[str, Any]

    transport: ClassVar[Literal["mqtt"]] = "mqtt"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.request, Mapping):
            raise InvalidArgumentError("MQTTCommand.request must be a mapping (a JSON object)")

    def payload(self) -> dict[str, Any]:
        """The ``send-command`` fields for this message (no ``TransportType``)."""
        return {"Request": dict(self.request)}


@attrs.frozen(kw_only=True)
class PluginMQTTMessage:
    """One MQTT message as the plugin echoes it (topic, native payload, QoS, retain).

    The repr shows the topic redacted (``device/***/report``: it carries the printer's
    serial number) and leaves the payload out.
    """

    topic: str | None = attrs.field(
        default=None, repr=lambda topic: repr(None if topic is None else redact_topic(topic))
    )
    payload: Any = attrs.field(default=None, repr=False)
    qos: int = 0
    retain: bool = False


@attrs.frozen(kw_only=True, repr=False)
class HTTPReply:
    """The printer's answer to an :class:`HTTPCommand`.

    ``body`` holds the bytes however the plugin carried them (``BodyAsJson``, as text, or
    base64); ``json`` is the decoded JSON body when it was JSON (else None); ``text`` the
    body as UTF-8. ``repr()`` leaves out the headers and body (they may carry cookies).
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    url: str | None = None
    body: bytes = b""
    json: Any = None

    def __repr__(self) -> str:
        return f"HTTPReply(status={self.status}, {len(self.body)} bytes)"

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def _http_reply(response: Any) -> HTTPReply | None:
    if not isinstance(response, Mapping):
        return None
    status = response.get("StatusCode")
    if isinstance(status, bool) or not isinstance(status, int):
        return None
    headers = response.get("Headers")
    body: bytes = b""
    json_value: Any = None
    if response.get("BodyAsJson") is not None:
        json_value = response["BodyAsJson"]
        body = jsonlib.dumps(json_value).encode()
    elif isinstance(response.get("BodyAsText"), str):
        body = response["BodyAsText"].encode()
    elif isinstance(response.get("BodyAsBase64"), str):
        try:
            body = base64.b64decode(response["BodyAsBase64"], validate=True)
        except ValueError:
            body = b""
    url = response.get("Url")
    return HTTPReply(
        status=status,
        headers={str(k): str(v) for k, v in headers.items()}
        if isinstance(headers, Mapping)
        else {},
        url=url if isinstance(url, str) else None,
        body=body,
        json=json_value,
    )


def _mqtt_message(value: Any) -> PluginMQTTMessage | None:
    if not isinstance(value, Mapping) or "Payload" not in value:
        return None
    topic, qos, retain = value.get("Topic"), value.get("Qos"), value.get("Retain")
    return PluginMQTTMessage(
        topic=topic if isinstance(topic, str) else None,
        payload=value.get("Payload"),
        qos=qos if isinstance(qos, int) and not isinstance(qos, bool) else 0,
        retain=retain if isinstance(retain, bool) else False,
    )


@attrs.frozen(kw_only=True, repr=False)
class CommandResult:
    """What ``send-command`` answered.

    ``response`` is the printer's native answer (for ``http``, the plugin's description of
    it; prefer :attr:`http`), None when nothing was awaited (``response_received`` is
    False after ``wait_for_response=False``). ``is_error`` is the plugin's best-effort
    flag for a failure the printer reported in its answer (an HTTP status of 400 or more,
    a JSON-RPC or SDCP error): the command reached the printer, so nothing is raised. The
    typed views: :attr:`http` for ``http`` (status, headers, body), :attr:`mqtt` and
    :attr:`mqtt_request` for ``mqtt`` (topic, payload, QoS, retain).
    """

    transport: Literal["http", "websocket", "mqtt"] | str
    response_received: bool = True
    is_error: bool = False
    response: Any = None
    request: Any = None
    wait_for_response: bool | None = None
    timeout_sec: int | None = None

    def __repr__(self) -> str:
        return (
            f"CommandResult(transport={self.transport!r}, "
            f"response_received={self.response_received}, is_error={self.is_error})"
        )

    @property
    def http(self) -> HTTPReply | None:
        """The printer's HTTP answer (``http`` transport), else None."""
        return _http_reply(self.response) if self.transport == "http" else None

    @property
    def mqtt(self) -> PluginMQTTMessage | None:
        """The MQTT message that answered (``mqtt`` transport, when one was awaited)."""
        return _mqtt_message(self.response) if self.transport == "mqtt" else None

    @property
    def mqtt_request(self) -> PluginMQTTMessage | None:
        """The MQTT message the plugin published (``mqtt`` transport), else None."""
        return _mqtt_message(self.request) if self.transport == "mqtt" else None


def _structure_command_result(value: Any, _: Any) -> CommandResult:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a send-command result object, got {type(value).__name__}")
    transport = value.get("TransportType")
    if not isinstance(transport, str):
        raise KeyError("TransportType")
    received, is_error = value.get("ResponseReceived", True), value.get("IsError", False)
    wait, timeout = value.get("WaitForResponse"), value.get("TimeoutSec")
    return CommandResult(
        transport=transport,
        response_received=received if isinstance(received, bool) else True,
        is_error=is_error if isinstance(is_error, bool) else False,
        response=value.get("Response"),
        request=value.get("Request"),
        wait_for_response=wait if isinstance(wait, bool) else None,
        timeout_sec=timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else None,
    )


converter.register_structure_hook(CommandResult, _structure_command_result)
