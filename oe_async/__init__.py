"""oe_async: an asyncio-first client for OctoEverywhere App Connections.

Start with :class:`OctoEverywhere` (one per app), get a :class:`PrinterConnection` per
printer with :meth:`OctoEverywhere.printer`, and catch :class:`OctoEverywhereError`.
"""

from .auth import BasicAuth, BearerAuth
from .client import DEFAULT_APP_API_URL, OctoEverywhere
from .connection import PrinterConnection
from .errors import (
    AppAPIError,
    AppConnectionNotFoundError,
    AppConnectionRevokedError,
    CommunicationError,
    DownloadLimitError,
    HTTPStatusError,
    InvalidArgumentError,
    InvalidCredentialsError,
    NoActivePrintError,
    NoBetaAccessError,
    OctoEverywhereError,
    PluginError,
    PluginTimeoutError,
    PluginUpdateRequiredError,
    PortalError,
    PrinterHTTPError,
    PrinterOfflineError,
    ReauthorizationRequiredError,
    RelayError,
    RequestTimeoutError,
    ServiceError,
    SizeLimitError,
    SupporterPerksRequiredError,
    UnexpectedResponseError,
    UploadLimitError,
    UploadSourceError,
    WebcamLimitError,
    decode_http_error,
)
from .models import AppConnection, ConnectionInfo, LiveLink, PrinterLimits
from .portal import portal_url
from .retry import RetryPolicy
from .transfer import DownloadStream, ProgressCallback

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_APP_API_URL",
    "AppAPIError",
    "AppConnection",
    "AppConnectionNotFoundError",
    "AppConnectionRevokedError",
    "BasicAuth",
    "BearerAuth",
    "CommunicationError",
    "ConnectionInfo",
    "DownloadLimitError",
    "DownloadStream",
    "HTTPStatusError",
    "InvalidArgumentError",
    "InvalidCredentialsError",
    "LiveLink",
    "NoActivePrintError",
    "NoBetaAccessError",
    "OctoEverywhere",
    "OctoEverywhereError",
    "PluginError",
    "PluginTimeoutError",
    "PluginUpdateRequiredError",
    "PortalError",
    "PrinterConnection",
    "PrinterHTTPError",
    "PrinterLimits",
    "PrinterOfflineError",
    "ProgressCallback",
    "ReauthorizationRequiredError",
    "RelayError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServiceError",
    "SizeLimitError",
    "SupporterPerksRequiredError",
    "UnexpectedResponseError",
    "UploadLimitError",
    "UploadSourceError",
    "WebcamLimitError",
    "__version__",
    "decode_http_error",
    "portal_url",
]
