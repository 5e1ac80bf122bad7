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
    InvalidPrinterStateError,
    NoActivePrintError,
    NoBetaAccessError,
    OctoEverywhereError,
    PluginCommandError,
    PluginCommandFailedError,
    PluginError,
    PluginNotAuthorizedError,
    PluginTimeoutError,
    PluginUpdateRequiredError,
    PortalError,
    PrinterHTTPError,
    PrinterOfflineError,
    PrinterSoftwareNotConnectedError,
    ReauthorizationRequiredError,
    RelayError,
    RequestTimeoutError,
    ServiceError,
    SizeLimitError,
    SupporterPerksRequiredError,
    TooManyClientsError,
    UnexpectedResponseError,
    UnsupportedOnPlatformError,
    UploadLimitError,
    UploadSourceError,
    WebcamLimitError,
    decode_http_error,
)
from .mjpeg import Frame, MJPEGError, MJPEGParser
from .models import AppConnection, ConnectionInfo, LiveLink, PrinterLimits, WebcamInfo, WebcamList
from .portal import portal_url
from .retry import ReconnectPolicy, RetryPolicy
from .routing import Route, RoutePolicy, RoutingOptions
from .transfer import DownloadStream, ProgressCallback
from .webcam import FrameStream
from .websocket import PrinterWebSocket, Subscription, SubscriptionEvent, SubscriptionState

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
    "Frame",
    "FrameStream",
    "HTTPStatusError",
    "InvalidArgumentError",
    "InvalidCredentialsError",
    "InvalidPrinterStateError",
    "LiveLink",
    "MJPEGError",
    "MJPEGParser",
    "NoActivePrintError",
    "NoBetaAccessError",
    "OctoEverywhere",
    "OctoEverywhereError",
    "PluginCommandError",
    "PluginCommandFailedError",
    "PluginError",
    "PluginNotAuthorizedError",
    "PluginTimeoutError",
    "PluginUpdateRequiredError",
    "PortalError",
    "PrinterConnection",
    "PrinterHTTPError",
    "PrinterLimits",
    "PrinterOfflineError",
    "PrinterSoftwareNotConnectedError",
    "PrinterWebSocket",
    "ProgressCallback",
    "ReauthorizationRequiredError",
    "ReconnectPolicy",
    "RelayError",
    "RequestTimeoutError",
    "RetryPolicy",
    "Route",
    "RoutePolicy",
    "RoutingOptions",
    "ServiceError",
    "SizeLimitError",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionState",
    "SupporterPerksRequiredError",
    "TooManyClientsError",
    "UnexpectedResponseError",
    "UnsupportedOnPlatformError",
    "UploadLimitError",
    "UploadSourceError",
    "WebcamInfo",
    "WebcamLimitError",
    "WebcamList",
    "__version__",
    "decode_http_error",
    "portal_url",
]
