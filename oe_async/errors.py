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

Status codes are plain ``int`` throughout: ``http.HTTPStatus`` rejects 6xx.
Exception messages never contain URLs, tokens or passwords.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import ClassVar, Final

from yarl import URL

__all__ = [
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


class OctoEverywhereError(Exception):
    """Base class of every exception oe_async raises on purpose.

    Attributes (on every subclass):
        temporary: True when the same call may succeed later without user action.
        retry_after: seconds the server asked us to wait (``Retry-After``), else None;
            an integration can schedule its next poll with it.

    """

    temporary: bool = False
    retry_after: float | None = None


class InvalidArgumentError(OctoEverywhereError, ValueError):
    """An argument was rejected before anything was sent; the message names it."""


class PortalError(InvalidArgumentError):
    """The portal's completion URL reports a failure or lacks what a connection needs."""


class ClientClosedError(OctoEverywhereError):
    """The :class:`~oe_async.OctoEverywhere` client was closed.

    Raised by every call made after ``close()``, and by every stream, download, WebSocket
    and subscription that was still running when it closed (they end within a second).
    Not temporary: this client will never work again; make a new one.
    """


class CommunicationError(OctoEverywhereError):
    """The request did not complete: connection refused or dropped, DNS, TLS, bad framing.

    Always temporary from the library's point of view; retry later.
    """

    temporary = True


class RequestTimeoutError(CommunicationError, TimeoutError):
    """A connect, read or total timeout expired. Also a built-in ``TimeoutError``."""


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


class UploadSourceError(OctoEverywhereError):
    """The upload's own source failed or changed while it was being sent.

    A read error, a file that grew or shrank, an iterator that yielded something other than
    bytes. The request was aborted: nothing truncated reached the printer as a whole file.
    """


class RelayError(OctoEverywhereError):
    """OctoEverywhere answered with one of its own status codes (600-699).

    Attributes:
        status: the 6xx code (plain ``int``).
        temporary: True when the same request may succeed later without user action.
        message: a short sentence suitable for showing to the user.
        retry_after: seconds the server asked us to wait (``Retry-After``), else None.

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
        #: A short sentence suitable for showing to the user.
        self.message: str = message or self.default_message
        #: Seconds the server asked us to wait (``Retry-After``), else None.
        self.retry_after: float | None = retry_after
        super().__init__(f"{self.message} (OctoEverywhere status {self.status})")


class ReauthorizationRequiredError(RelayError):
    """The App Connection can never work again: send the user through the portal (603/604/606)."""

    temporary = False


class SizeLimitError(RelayError):
    """A transfer is over the account's size limit (607 download, 608 upload).

    ``limit`` and ``size`` are set (bytes) when known: always for the client-side pre-check,
    never for a bare status code from the relay.
    """

    temporary = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        limit: int | None = None,
        size: int | None = None,
    ) -> None:
        #: The account's limit in bytes, when known.
        self.limit: int | None = limit
        #: The transfer's size in bytes, when known.
        self.size: int | None = size
        if message is None and limit is not None and size is not None:
            message = f"{self.default_message} ({size} bytes; the account allows {limit} bytes)"
        super().__init__(message, status=status, retry_after=retry_after)


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

    Works again once they re-subscribe; link the user to ``recovery_url``.
    """

    status = 605
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
    """610: the printer's OctoEverywhere plugin must be updated."""

    status = 610
    default_message = "The printer's OctoEverywhere plugin needs an update."


class NoBetaAccessError(RelayError):
    """611: the feature needs OctoEverywhere beta access."""

    status = 611
    default_message = "This feature needs OctoEverywhere beta access."


class PluginError(RelayError):
    """612: the printer's OctoEverywhere plugin reported an error."""

    status = 612
    default_message = "The printer's OctoEverywhere plugin reported an error."


class NoActivePrintError(RelayError):
    """613: there is no active print (Live Link that follows the current print)."""

    status = 613
    default_message = "There is no active print to follow."


class PluginCommandError(OctoEverywhereError):
    """A printer-agnostic plugin command answered with a ``Status`` other than 200.

    Attributes:
        plugin_status: the envelope's ``Status`` (750-789, or a command's own 4xx/5xx).
        message: the envelope's ``Error`` text (from the printer's plugin; may be empty).
        temporary: True when the same command may succeed later.

    """

    plugin_status: int = 750
    temporary: bool = False
    default_message: ClassVar[str] = "The printer's OctoEverywhere plugin could not run it."

    def __init__(self, message: str | None = None, *, plugin_status: int | None = None) -> None:
        if plugin_status is not None:
            self.plugin_status = plugin_status
        #: The plugin's ``Error`` text, or a default sentence.
        self.message: str = message or self.default_message
        super().__init__(f"{self.message} (plugin status {self.plugin_status})")


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


def plugin_error(plugin_status: int, message: str | None = None) -> PluginCommandError:
    """Map a plugin envelope ``Status`` to its exception (a generic one for unknown codes)."""
    cls = _PLUGIN_ERRORS.get(plugin_status, PluginCommandFailedError)
    return cls(message, plugin_status=plugin_status)


class HTTPStatusError(OctoEverywhereError):
    """A 4xx/5xx answer that is not an OctoEverywhere relay code.

    Attributes:
        status: the HTTP status.
        reason: the reason phrase, if any.
        method: the request method.
        path: the request path (no host, no query).
        body: the start of the response body (at most 1 KiB), for diagnostics.

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
    ) -> None:
        self.status: int = status
        self.reason: str = reason
        self.method: str = method
        self.path: str = path
        self.body: bytes = body[:1024]
        self.retry_after: float | None = retry_after
        self.temporary = status >= 500 or status in (408, 425, 429)
        where = f" to {method} {path}" if method else ""
        super().__init__(f"{self._who} answered HTTP {status} {reason}{where}".rstrip())

    _who: ClassVar[str] = "The server"


class PrinterHTTPError(HTTPStatusError):
    """The printer's own API answered 4xx/5xx (e.g. OctoPrint's 403 for a bad API key)."""

    _who = "The printer"


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
) -> OctoEverywhereError | None:
    """Map one HTTP answer to the exception it stands for, or None when it is a success.

    Pure function: ``headers`` is any case-insensitive mapping (or a plain dict with
    canonical names), ``body`` the start of the response body. ``printer`` selects
    :class:`PrinterHTTPError` (relay or LAN) or :class:`AppAPIError` (App API origin) for
    ordinary 4xx/5xx. OctoEverywhere's 6xx codes map to their :class:`RelayError` class.
    """
    if status < 400:
        return None
    return http_error(
        status, headers, body, app_id=app_id, method=method, path=path, printer=printer
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
    return cls(status, reason=reason, method=method, path=path, body=body, retry_after=retry_after)
