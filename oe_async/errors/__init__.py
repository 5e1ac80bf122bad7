"""Everything oe_async raises, and the sans-I/O decoder from HTTP answers to exceptions.

The hierarchy, in the order an app usually catches it::

    OctoEverywhereError
    ├── InvalidArgumentError (also ValueError)      bad input, raised before anything is sent
    │   └── PortalError                               a completion URL that cannot be used
    ├── ClientClosedError                             the client was closed (calls, open streams)
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

The classes live in small private modules (the base and client-side errors, the 6xx table,
the plugin statuses, other HTTP statuses and the decoder, the server's text); import them
from here (or from :mod:`oe_async`).
"""

from __future__ import annotations

from ._base import (
    ClientClosedError,
    CommunicationError,
    ConnectionPoolExhaustedError,
    InvalidArgumentError,
    OctoEverywhereError,
    PortalError,
    RequestTimeoutError,
    UnexpectedResponseError,
    UploadSourceError,
)
from ._plugin import (
    InvalidPrinterStateError,
    PluginCommandError,
    PluginCommandFailedError,
    PluginNotAuthorizedError,
    PrinterSoftwareNotConnectedError,
    TooManyClientsError,
    UnsupportedOnPlatformError,
    plugin_error,
)
from ._relay import NO_SUPPORTER_PERKS_URL as NO_SUPPORTER_PERKS_URL
from ._relay import (
    AppConnectionNotFoundError,
    AppConnectionRevokedError,
    DownloadLimitError,
    InvalidCredentialsError,
    NoActivePrintError,
    NoBetaAccessError,
    PluginError,
    PluginTimeoutError,
    PluginUpdateRequiredError,
    PrinterOfflineError,
    ReauthorizationRequiredError,
    RelayError,
    ServiceError,
    SizeLimitError,
    SupporterPerksRequiredError,
    UploadLimitError,
    WebcamLimitError,
    relay_error,
)
from ._relay import is_relay_status as is_relay_status
from ._relay import supporter_perks_url as supporter_perks_url
from ._status import AppAPIError, HTTPStatusError, PrinterHTTPError, decode_http_error
from ._status import http_error as http_error
from ._text import MAX_ERROR_BODY, parse_retry_after
from ._text import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from ._text import MAX_SERVER_MESSAGE as MAX_SERVER_MESSAGE
from ._text import error_body_message as error_body_message

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
