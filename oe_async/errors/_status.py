"""Any other 4xx/5xx answer as an exception, and the decoder from an HTTP answer to one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import ClassVar, Final

from oe_async._redact import KnownSecrets, as_known_secrets, redact_bytes

from ._base import OctoEverywhereError
from ._relay import is_relay_status, relay_error
from ._text import MAX_ERROR_BODY, error_body_message, parse_retry_after

_GATEWAY_STATUSES: Final = frozenset({502, 504})


class HTTPStatusError(OctoEverywhereError):
    """A 4xx/5xx answer that is not an OctoEverywhere relay code.

    Attributes:
        status: the HTTP status.
        reason: the reason phrase, if any.
        method: the request method.
        path: the request path (no host, no query).
        body: the response body as received, whole up to 64 KiB (:data:`MAX_ERROR_BODY`),
            so ``json.loads(err.body)`` works for the printers' JSON errors, except that the
            connection's own secrets and credential header values (``Authorization: ...``,
            ``Cookie: ...``, say in an answer that echoes the request) are replaced by
            ``**REDACTED**`` (quotes kept, so JSON still parses). It is the server's text:
            show ``message`` to users, not ``body``.
        server_message: the server's own message when the body has a recognised shape
            (Moonraker and JSON-RPC ``{"error": {"message": ...}}``, OctoPrint
            ``{"error": "..."}``), redacted like :func:`oe_async.redact` (URLs cut to their
            host, credentials and secret-looking values hidden) and control characters
            removed; else None.
        message: ``server_message`` when there is one, else a sentence naming the status.
        temporary: True for 5xx, 408, 425 and 429.

    ``str(err)`` names the status, the method and path, and the server's message, e.g.
    ``The printer answered HTTP 503 Service Unavailable to POST /printer/restart: Klippy
    Host not connected``.

    """

    temporary: bool

    def __init__(
        self,
        status: int,
        *,
        reason: str = "",
        method: str = "",
        path: str = "",
        body: bytes = b"",
        retry_after: float | None = None,
        secrets: KnownSecrets | Iterable[str] | None = None,
    ) -> None:
        """``secrets``: the connection's own secrets, hidden from ``body`` and ``message``."""
        self.status: int = status
        self.reason: str = reason
        self.method: str = method
        self.path: str = path
        self.body: bytes = redact_bytes(bytes(body[:MAX_ERROR_BODY]), as_known_secrets(secrets))
        self.retry_after: float | None = retry_after
        self.temporary = status >= 500 or status in (408, 425, 429)
        self.server_message: str | None = error_body_message(self.body)
        where = f" to {method} {path}" if method else ""
        summary = f"{self._speaker(status)} answered HTTP {status} {reason}".rstrip() + where
        text = f"{summary}: {self.server_message}" if self.server_message else summary
        self._set_message(self.server_message or summary, text)

    _who: ClassVar[str] = "The server"

    def _speaker(self, status: int) -> str:
        """Who gave this answer, as far as the status tells."""
        return self._who


class PrinterHTTPError(HTTPStatusError):
    """The printer's own API answered 4xx/5xx (e.g. OctoPrint's 403 for a bad API key).

    A 502 or 504 may come from the relay itself (a gateway that could not get an answer
    from the printer's server): its message says "the relay or the printer".
    """

    _who = "The printer"

    def _speaker(self, status: int) -> str:
        return "The relay or the printer" if status in _GATEWAY_STATUSES else self._who


class AppAPIError(HTTPStatusError):
    """An OctoEverywhere App API answered 4xx/5xx (e.g. 400 for bad input)."""

    _who = "The OctoEverywhere App API"


def decode_http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    app_id: str | None = None,
    method: str = "",
    path: str = "",
    printer: bool = True,
    secrets: Iterable[str] | None = None,
) -> OctoEverywhereError | None:
    """Map one HTTP answer to the exception it stands for, or None when it is a success.

    Pure function: ``headers`` is any case-insensitive mapping (or a plain dict with
    canonical names), ``body`` the start of the response body. ``printer`` selects
    :class:`PrinterHTTPError` (relay or LAN) or :class:`AppAPIError` (App API origin) for
    ordinary 4xx/5xx. OctoEverywhere's 6xx codes map to their :class:`RelayError` class.
    ``secrets`` are strings that must not survive in the error's ``body``, ``message`` or
    ``str()`` (a server may echo the request's headers): the funnel passes the
    connection's password, tokens, keys and the unique host of its URL. Credential header
    values (``Authorization: <any scheme> ...``) are hidden whether given or not.
    """
    if status < 400:
        return None
    return http_error(
        status,
        headers,
        body,
        app_id=app_id,
        method=method,
        path=path,
        printer=printer,
        secrets=secrets,
    )


def http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    app_id: str | None = None,
    method: str = "",
    path: str = "",
    printer: bool = True,
    secrets: KnownSecrets | Iterable[str] | None = None,
) -> OctoEverywhereError:
    """Like :func:`decode_http_error` for a status already known to be an error (>= 400)."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if is_relay_status(status):
        return relay_error(status, app_id=app_id, retry_after=retry_after)
    cls = PrinterHTTPError if printer else AppAPIError
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return cls(
        status,
        reason=reason,
        method=method,
        path=path,
        body=body,
        retry_after=retry_after,
        secrets=secrets,
    )
