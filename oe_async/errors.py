"""Everything oe_async raises, and the sans-I/O decoder from HTTP answers to exceptions.

The hierarchy, in the order an app usually catches it::

    OctoEverywhereError
    ├── InvalidArgumentError (also ValueError)      bad input, raised before anything is sent
    ├── ClientClosedError                             the client was closed (calls, open streams)
    │   └── PortalError                              a completion URL that cannot be used
    ├── CommunicationError                            network failure, connection dropped
    │   └── RequestTimeoutError (also TimeoutError)
    ├── UnexpectedResponseError                       a 2xx body we cannot decode
    ├── UploadSourceError                             the upload's own source failed mid-way
    ├── PluginCommandError                            a plugin command's Status (750-789...)
    │   └── one class each for 785-789, PluginCommandFailedError for the rest
    ├── RelayError                                    OctoEverywhere's own 600-613 codes
    │   ├── ReauthorizationRequiredError              603, 604, 606: run the portal again
    │   ├── SizeLimitError                            607, 608: the account's transfer limits
    │   └── one class per documented code
    └── HTTPStatusError                               any other 4xx/5xx
        ├── PrinterHTTPError                          the printer's own answer (401, 404, 500...)
        └── AppAPIError                               an App API answer (400, 500...)

Every error answers the two questions an app asks with two flags, and has one
user-facing ``message``:

- ``temporary``: trying the same call again by itself, after a short wait, may succeed
  (network, printer offline, a relay hiccup, the webcam's back-to-back limit);
- ``needs_user_action``: nothing changes until a person acts (connect again, re-subscribe,
  update the plugin, pick a smaller file...). Never both; an error may be neither (a bad
  argument, a printer's 404, no active print).

Status codes are plain ``int`` throughout: ``http.HTTPStatus`` rejects 6xx.
Exception messages never contain URLs, tokens or passwords.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import ClassVar, Final

from yarl import URL

from ._redact import KnownSecrets, as_known_secrets, redact_bytes, redact_text

__all__ = [
    "MAX_ERROR_BODY",
    "AppAPIError",
    "AppConnectionNotFoundError",
    "AppConnectionRevokedError",
    "ClientClosedError",
    "CommunicationError",
    "ConnectionPoolExhaustedError",
    "DownloadLimitError",
    "HTTPStatusError",
    "InvalidArgumentError",
    "InvalidCredentialsError",
    "InvalidPrinterStateError",
    "NoActivePrintError",
    "NoBetaAccessError",
    "OctoEverywhereError",
    "PluginCommandError",
    "PluginCommandFailedError",
    "PluginError",
    "PluginNotAuthorizedError",
    "PluginTimeoutError",
    "PluginUpdateRequiredError",
    "PortalError",
    "PrinterHTTPError",
    "PrinterOfflineError",
    "PrinterSoftwareNotConnectedError",
    "ReauthorizationRequiredError",
    "RelayError",
    "RequestTimeoutError",
    "ServiceError",
    "SizeLimitError",
    "SupporterPerksRequiredError",
    "TooManyClientsError",
    "UnexpectedResponseError",
    "UnsupportedOnPlatformError",
    "UploadLimitError",
    "UploadSourceError",
    "WebcamLimitError",
    "decode_http_error",
    "parse_retry_after",
    "plugin_error",
    "relay_error",
]

NO_SUPPORTER_PERKS_URL: Final = "https://octoeverywhere.com/appportal/v1/nosupporterperks"
#: How much of an error answer's body :class:`HTTPStatusError` keeps (bytes).
MAX_ERROR_BODY: Final = 64 * 1024


class OctoEverywhereError(Exception):
    """Base class of every exception oe_async raises on purpose.

    Attributes:
        message: one short sentence for the user; never contains a URL, token or password.
            ``str(err)`` adds the details a log needs (status codes, method and path).
        temporary: True when trying the same call again by itself, after a short wait, may
            succeed (network, printer offline, 600/601/602/609/612...). Retry or poll on it.
        needs_user_action: True when the call keeps failing until a person acts: connect
            again (603/604/606), restore Supporter Perks (605), a smaller file or a larger
            account limit (607/608), update the plugin (610), beta access (611), the plugin's
            printer credentials (plugin 789). Show ``message``; stop polling.
        retry_after: seconds the server asked us to wait (``Retry-After``), else None;
            an integration can schedule its next poll with it.

    ``temporary`` and ``needs_user_action`` are never both True; an error may be neither
    (a bad argument, most of the printer's own 4xx, no active print to follow).

    """

    #: One short sentence for the user (never a URL, token or password).
    message: str
    temporary: bool = False
    needs_user_action: bool = False
    retry_after: float | None = None
    default_message: ClassVar[str] = "The request to the printer failed."

    def __init__(self, message: str | None = None, *args: object) -> None:
        self.message = message or self.default_message
        super().__init__(self.message, *args)

    def _set_message(self, message: str, text: str) -> None:
        """Set ``message`` (for users) and the ``str()`` text (it adds details for logs)."""
        self.message = message
        Exception.__init__(self, text)


class InvalidArgumentError(OctoEverywhereError, ValueError):
    """An argument was rejected before anything was sent; the message names it."""

    default_message = "An argument was not valid; nothing was sent."


class PortalError(InvalidArgumentError):
    """The portal's completion URL reports a failure or lacks what a connection needs."""

    default_message = "The connection to the printer was not completed."


class ClientClosedError(OctoEverywhereError):
    """The :class:`oe_async.OctoEverywhere` client was closed.

    Raised by every call made after ``close()``, and by every stream, download, WebSocket
    and subscription that was still running when it closed (they end within a second).
    Not temporary: this client will never work again; make a new one.
    """

    default_message = "The client was closed."


class CommunicationError(OctoEverywhereError):
    """The request did not complete: connection refused or dropped, DNS, TLS, bad framing.

    Always temporary from the library's point of view; retry later.
    """

    temporary = True
    default_message = "The printer could not be reached. Try again shortly."

    def __init__(
        self, message: str | None = None, *args: object, detail: str | None = None
    ) -> None:
        """``message`` is for users; ``detail`` (method, path, cause) goes to ``str(err)``."""
        super().__init__(message, *args)
        if detail is not None:
            self._set_message(self.message, detail)


class RequestTimeoutError(CommunicationError, TimeoutError):
    """A connect, read or total timeout expired. Also a built-in ``TimeoutError``."""

    default_message = "The printer did not answer in time. Try again shortly."


class ConnectionPoolExhaustedError(CommunicationError):
    """Every connection oe_async may use was busy for the whole wait (temporary).

    The message names the pool, its limit and how many connections were busy. Raise the
    limit (``OctoEverywhere(connections=ConnectionBudget(...))``, or a bigger
    ``TCPConnector(limit=...)`` on a borrowed session) or run fewer long-lived streams.
    """

    def __init__(self, message: str, *, pool: str, limit: int, busy: int) -> None:
        super().__init__(message)
        #: ``"requests"`` or ``"streams"`` (or ``"session"`` for a borrowed session).
        self.pool: str = pool
        #: The number of connections that pool may hold.
        self.limit: int = limit
        #: How many were busy when the wait ended.
        self.busy: int = busy


class UnexpectedResponseError(OctoEverywhereError):
    """A success status came with a body oe_async cannot decode (not JSON, missing fields)."""

    default_message = "The answer could not be understood."


class UploadSourceError(OctoEverywhereError):
    """The upload's own source failed or changed while it was being sent.

    A read error, a file that grew or shrank, an iterator that yielded something other than
    bytes. The request was aborted: nothing truncated reached the printer as a whole file.
    """

    default_message = "The file could not be read while it was being uploaded."


class RelayError(OctoEverywhereError):
    """OctoEverywhere answered with one of its own status codes (600-699).

    Attributes:
        status: the 6xx code (plain ``int``).
        temporary: True for 600, 601, 602, 609, 612 and unknown codes.
        needs_user_action: True for 603-608, 610 and 611.
        message: a short sentence suitable for showing to the user.
        retry_after: seconds the server asked us to wait (``Retry-After``), else None.

    OctoEverywhere's own table also calls 605, 610, 611 and 613 "temporary", meaning they
    can end without this app doing anything (the owner re-subscribes, the plugin is
    updated, a print starts). Here ``temporary`` means "retrying by itself soon may
    help", which none of those do: 605/610/611 need a person, and 613 ends when a print
    starts (retry on a ``PrintStarted`` webhook, not on a timer).

    """

    status: int = 600
    temporary: bool = True
    default_message: ClassVar[str] = "OctoEverywhere reported an error."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        #: Seconds the server asked us to wait (``Retry-After``), else None.
        self.retry_after: float | None = retry_after
        message = message or self.default_message
        self._set_message(message, f"{message} (OctoEverywhere status {self.status})")


class ReauthorizationRequiredError(RelayError):
    """The App Connection can never work again: send the user through the portal (603/604/606)."""

    temporary = False
    needs_user_action = True


class SizeLimitError(RelayError):
    """A transfer is over the account's size limit (607 download, 608 upload).

    A person has to act: pick a smaller file, or raise the account's limit.

    Attributes:
        limit: the account's limit in bytes, when known.
        size: the file's size in bytes, when known.
        client_side: True when oe_async raised it itself, comparing the file with the
            account's limits (from the App API); then OctoEverywhere never answered
            607/608 and ``str(err)`` does not claim it did. False for the relay's 607/608
            (``limit`` and ``size`` are then None).

    """

    temporary = False
    needs_user_action = True

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        limit: int | None = None,
        size: int | None = None,
        client_side: bool = False,
    ) -> None:
        #: The account's limit in bytes, when known.
        self.limit: int | None = limit
        #: The file's size in bytes, when known.
        self.size: int | None = size
        #: True when oe_async raised it before (or instead of) an answer from the relay.
        self.client_side: bool = client_side
        if message is None and limit is not None and size is not None:
            message = f"{self.default_message} ({size} bytes; the account allows {limit} bytes)"
        super().__init__(message, status=status, retry_after=retry_after)
        if client_side:  # no 607/608 came: the text must not claim one
            self._set_message(self.message, self.message)


class ServiceError(RelayError):
    """600: an unknown OctoEverywhere server error."""

    status = 600
    default_message = "OctoEverywhere had a temporary problem. Try again shortly."


class PrinterOfflineError(RelayError):
    """601: the printer is not connected to OctoEverywhere."""

    status = 601
    default_message = "The printer is offline: it is not connected to OctoEverywhere."


class PluginTimeoutError(RelayError):
    """602: the printer's OctoEverywhere plugin is connected but did not answer in time."""

    status = 602
    default_message = "The printer's OctoEverywhere plugin did not answer in time."


class AppConnectionNotFoundError(ReauthorizationRequiredError):
    """603: the App Connection does not exist; this URL and token will never work again."""

    status = 603
    default_message = "This app's connection to the printer no longer exists. Connect again."


class AppConnectionRevokedError(ReauthorizationRequiredError):
    """604: revoked or expired (user revoked it, printer removed, account deleted)."""

    status = 604
    default_message = "This app's connection to the printer was revoked or expired. Connect again."


class SupporterPerksRequiredError(RelayError):
    """605: the owner's account lost OctoEverywhere Supporter Perks.

    Works again once they re-subscribe (a person has to act, so not ``temporary``); link
    the user to ``recovery_url``.
    """

    status = 605
    temporary = False
    needs_user_action = True
    default_message = (
        "The printer owner's OctoEverywhere account needs Supporter Perks for this app."
    )

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        app_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        #: The page where the printer owner restores Supporter Perks.
        self.recovery_url: str = supporter_perks_url(app_id)


class InvalidCredentialsError(ReauthorizationRequiredError):
    """606: the App Connection credentials are missing or wrong."""

    status = 606
    default_message = "The app's credentials for this printer were refused. Connect again."


class DownloadLimitError(SizeLimitError):
    """607: the response body is over the account's download limit."""

    status = 607
    default_message = "The file is larger than the account's download limit."


class UploadLimitError(SizeLimitError):
    """608: the request body is over the account's upload limit."""

    status = 608
    default_message = "The file is larger than the account's upload limit."


class WebcamLimitError(RelayError):
    """609: the webcam was viewed too many times back to back; wait before reopening it."""

    status = 609
    default_message = "The webcam was opened too often in a short time. Wait a moment."


class PluginUpdateRequiredError(RelayError):
    """610: the printer's OctoEverywhere plugin must be updated (by a person)."""

    status = 610
    temporary = False
    needs_user_action = True
    default_message = "The printer's OctoEverywhere plugin needs an update."


class NoBetaAccessError(RelayError):
    """611: the feature needs OctoEverywhere beta access (the owner has to get it)."""

    status = 611
    temporary = False
    needs_user_action = True
    default_message = "This feature needs OctoEverywhere beta access."


class PluginError(RelayError):
    """612: the printer's OctoEverywhere plugin reported an error."""

    status = 612
    default_message = "The printer's OctoEverywhere plugin reported an error."


class NoActivePrintError(RelayError):
    """613: there is no active print (Live Link that follows the current print).

    Neither temporary nor a user action: it works once a print starts, so try again then
    (a ``PrintStarted`` webhook), not on a timer.
    """

    status = 613
    temporary = False
    default_message = "There is no active print to follow."


class PluginCommandError(OctoEverywhereError):
    """A printer-agnostic plugin command answered with a ``Status`` other than 200.

    Attributes:
        plugin_status: the envelope's ``Status`` (750-789, or a command's own 4xx/5xx).
        message: the envelope's ``Error`` text (from the printer's plugin; secret-looking
            values hidden; it may hold any character: escape it for display), or a
            default sentence when it is empty.
        temporary: True for 785 and 787: the same command may succeed shortly.
        needs_user_action: True for 789: the plugin's printer credentials must be fixed.

    """

    plugin_status: int = 750
    temporary: bool = False
    default_message: ClassVar[str] = "The printer's OctoEverywhere plugin could not run it."

    def __init__(self, message: str | None = None, *, plugin_status: int | None = None) -> None:
        if plugin_status is not None:
            self.plugin_status = plugin_status
        # The plugin's own text, as it is (apps and the CLI escape it for display), with
        # secret-looking values (``token=...``, ``Authorization: ...``) hidden.
        message = redact_text(message or "", urls=False) or self.default_message
        self._set_message(message, f"{message} (plugin status {self.plugin_status})")


class PluginCommandFailedError(PluginCommandError):
    """Any plugin status without a class of its own (750-754, or a command-specific code)."""


class PrinterSoftwareNotConnectedError(PluginCommandError):
    """785: the plugin is not connected to the printer's software (OctoPrint, Klipper...)."""

    plugin_status = 785
    temporary = True
    default_message = "The OctoEverywhere plugin is not connected to the printer's software."


class InvalidPrinterStateError(PluginCommandError):
    """786: the printer is not in a state that allows this (e.g. pause while idle)."""

    plugin_status = 786
    default_message = "The printer is not in a state that allows this action."


class TooManyClientsError(PluginCommandError):
    """787: too many clients are connected to the printer."""

    plugin_status = 787
    temporary = True
    default_message = "Too many clients are connected to the printer."


class UnsupportedOnPlatformError(PluginCommandError):
    """788: this printer platform does not support the command (e.g. files on PrusaLink)."""

    plugin_status = 788
    default_message = "This printer does not support this action."


class PluginNotAuthorizedError(PluginCommandError):
    """789: the plugin lacks valid credentials for the printer's own API."""

    plugin_status = 789
    needs_user_action = True
    default_message = "The OctoEverywhere plugin is not authorised to control the printer."


_PLUGIN_ERRORS: Final[Mapping[int, type[PluginCommandError]]] = {
    cls.plugin_status: cls
    for cls in (
        PrinterSoftwareNotConnectedError,
        InvalidPrinterStateError,
        TooManyClientsError,
        UnsupportedOnPlatformError,
        PluginNotAuthorizedError,
    )
}


def plugin_error(
    plugin_status: int,
    message: str | None = None,
    *,
    secrets: KnownSecrets | Iterable[str] | None = None,
) -> PluginCommandError:
    """Map a plugin envelope ``Status`` to its exception (a generic one for unknown codes).

    ``secrets`` (the connection's own, see :func:`decode_http_error`) are hidden from the
    message wherever they appear.
    """
    cls = _PLUGIN_ERRORS.get(plugin_status, PluginCommandFailedError)
    if message:
        message = as_known_secrets(secrets).hide(message)
    return cls(message, plugin_status=plugin_status)


#: Statuses a gateway (the relay) gives when it cannot get an answer from the printer.
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


_RELAY_ERRORS: Final[Mapping[int, type[RelayError]]] = {
    cls.status: cls
    for cls in (
        ServiceError,
        PrinterOfflineError,
        PluginTimeoutError,
        AppConnectionNotFoundError,
        AppConnectionRevokedError,
        SupporterPerksRequiredError,
        InvalidCredentialsError,
        DownloadLimitError,
        UploadLimitError,
        WebcamLimitError,
        PluginUpdateRequiredError,
        NoBetaAccessError,
        PluginError,
        NoActivePrintError,
    )
}


#: The longest server message kept in ``message`` (characters).
MAX_SERVER_MESSAGE: Final = 500
#: How much of a server message is scanned (and can be shown), and how much of that scan's
#: end is dropped (longer than any secret, so no secret is ever shown cut in two).
_SCANNED_MESSAGE: Final = 8192
_CUT_MARGIN: Final = 512
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def _printer_text(text: str) -> str:
    """Server-controlled text made safe to show: one line, short, no URL paths or secrets."""
    if len(text) > _SCANNED_MESSAGE:
        # Only the start can be shown: scan that. The last characters before the cut go
        # too, after redaction: a secret cut in two would not be recognised there.
        text = redact_text(text[:_SCANNED_MESSAGE])[:-_CUT_MARGIN] + " …"
    else:
        text = redact_text(text)
    # Redacted before line breaks go: a credential header's value ends at its line's end.
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[: MAX_SERVER_MESSAGE - 1].rstrip() + "…"
    return text


def error_body_message(body: bytes) -> str | None:
    """The server's own error message from a recognised JSON error body, made safe to show.

    Recognised: ``{"error": {"message": "..."}}`` (Moonraker, JSON-RPC) and
    ``{"error": "..."}`` (OctoPrint). Anything else (HTML, plain text, other shapes) is None:
    an unknown body is never shown to a user. The text is redacted like
    :func:`oe_async.redact` (URLs keep only their scheme and host, the unique App Connection
    label hidden; ``Authorization: <any scheme> ...``, ``Bearer x``, ``api_key=x``,
    ``password: x``... replaced), control characters removed, and it is at most
    :data:`MAX_SERVER_MESSAGE` characters.
    """
    start = body[:64].lstrip()
    if not start.startswith(b"{") or len(body) > MAX_ERROR_BODY:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str):
        return None
    text = _printer_text(error)
    return text or None


def supporter_perks_url(app_id: str | None) -> str:
    """Return the page that lets the printer owner restore Supporter Perks (605)."""
    if not app_id:
        return NO_SUPPORTER_PERKS_URL
    return str(URL(NO_SUPPORTER_PERKS_URL).with_query(appid=app_id))


def relay_error(
    status: int, *, app_id: str | None = None, retry_after: float | None = None
) -> RelayError:
    """Map an OctoEverywhere status code (600-699) to its exception.

    Unknown 6xx codes (new ones may appear) map to a plain :class:`RelayError` carrying the code.
    """
    cls = _RELAY_ERRORS.get(status)
    if cls is SupporterPerksRequiredError:
        return SupporterPerksRequiredError(retry_after=retry_after, app_id=app_id)
    if cls is not None:
        return cls(retry_after=retry_after)
    return RelayError(status=status, retry_after=retry_after)


def is_relay_status(status: int) -> bool:
    """Return True for OctoEverywhere's own status range (600-699)."""
    return 600 <= status <= 699


#: The longest ``Retry-After`` honoured (seconds); longer values are capped to it.
MAX_RETRY_AFTER: Final = 86_400


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delay-seconds or HTTP-date) into seconds from now.

    Returns None when absent or unparseable; never negative, and at most
    :data:`MAX_RETRY_AFTER` (a day), so a hostile value cannot schedule a poll at infinity.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # not "²" or "٣": isdigit() alone takes those
        return min(float(MAX_RETRY_AFTER), float(value))  # a huge number is inf, then capped
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; be lenient with ones that omit it
        return None
    current = time.time() if now is None else now
    return min(float(MAX_RETRY_AFTER), max(0.0, when.timestamp() - current))


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
