"""The OctoEverywhere App APIs (``AppToken`` header), called through the printer's funnel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from yarl import URL

from ._convert import structure
from .auth import is_loopback_host
from .errors import InvalidArgumentError, UnexpectedResponseError
from .models import ConnectionInfo, GadgetStatus, LiveLink
from .webhooks import EventType

if TYPE_CHECKING:
    from .connection import PrinterConnection

INFO_PATH: Final = "/api/appconnection/info"
GADGET_PATH: Final = "/api/gadget/GetStatusFromAppConnection"
SET_WEBHOOK_PATH: Final = "/api/appconnection/SetNotificationWebhook"
DELETE_WEBHOOK_PATH: Final = "/api/appconnection/DeleteNotificationWebhook"
TEST_WEBHOOK_PATH: Final = "/api/appconnection/TestWebhook"
#: Keys the TestWebhook answer may use for the status code the webhook answered.
_TEST_STATUS_KEYS: Final = ("StatusCode", "WebhookStatusCode", "HttpStatusCode", "Status")
LIVE_LINK_PATH: Final = "/api/live/createfromappconnection"
MIN_LIVE_LINK_HOURS: Final = 1
MAX_LIVE_LINK_HOURS: Final = 17520


async def get_info(printer: PrinterConnection) -> ConnectionInfo:
    """``GET /api/appconnection/info`` decoded into :class:`ConnectionInfo`."""
    data = await printer._app_api("GET", INFO_PATH)
    return structure(data, ConnectionInfo, what="Info API answer")


async def create_live_link(
    printer: PrinterConnection, expiration_hours: float, *, end_when_print_complete: bool
) -> LiveLink:
    """``POST /api/live/createfromappconnection`` after validating the arguments."""
    if isinstance(expiration_hours, bool) or not isinstance(expiration_hours, int | float):
        raise InvalidArgumentError("expiration_hours must be a number of hours")
    if not MIN_LIVE_LINK_HOURS <= expiration_hours <= MAX_LIVE_LINK_HOURS:
        raise InvalidArgumentError(
            f"expiration_hours must be between {MIN_LIVE_LINK_HOURS} and "
            f"{MAX_LIVE_LINK_HOURS} (got {expiration_hours})"
        )
    if not isinstance(end_when_print_complete, bool):
        raise InvalidArgumentError("end_when_print_complete must be True or False")
    body = {
        "ExpirationHours": expiration_hours,
        "EndWhenCurrentPrintIsComplete": end_when_print_complete,
    }
    data = await printer._app_api("POST", LIVE_LINK_PATH, json=body)
    return structure(data, LiveLink, what="Live Link answer")


async def gadget_status(printer: PrinterConnection) -> GadgetStatus:
    """``POST /api/gadget/GetStatusFromAppConnection`` (a read: safe to retry)."""
    data = await printer._app_api("POST", GADGET_PATH, idempotent=True)
    return structure(data, GadgetStatus, what="Gadget status answer")


def check_webhook_url(url: str, *, allow_insecure_loopback: bool) -> str:
    """Validate a webhook URL (absolute https) and return it exactly as given."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgumentError("webhook url must be a non-empty string")
    try:
        parsed = URL(url)
    except ValueError:
        raise InvalidArgumentError("webhook url is not a valid URL") from None
    if not parsed.absolute or not parsed.host:
        raise InvalidArgumentError("webhook url must be an absolute https URL")
    loopback_http = (
        parsed.scheme == "http" and allow_insecure_loopback and is_loopback_host(parsed.host)
    )
    if parsed.scheme != "https" and not loopback_http:
        raise InvalidArgumentError("webhook url must use https")
    return url  # sent verbatim: OctoEverywhere calls it exactly as given, query included


def _event_filter(event_types: Iterable[EventType | int] | None) -> list[int] | None:
    if event_types is None:
        return None
    values = []
    for value in event_types:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError("event_types must be EventType values (integers >= 1)")
        values.append(int(value))
    return sorted(set(values))


async def set_notification_webhook(
    printer: PrinterConnection, url: str, event_types: Iterable[EventType | int] | None
) -> None:
    """``POST /api/appconnection/SetNotificationWebhook``."""
    body: dict[str, Any] = {
        "WebhookUrl": check_webhook_url(
            url, allow_insecure_loopback=printer.client.allow_insecure_loopback
        )
    }
    types = _event_filter(event_types)
    if types is not None:
        body["InclusiveEventTypesFilter"] = types
    await printer._app_api("POST", SET_WEBHOOK_PATH, json=body, idempotent=True)


async def delete_notification_webhook(printer: PrinterConnection) -> None:
    """``POST /api/appconnection/DeleteNotificationWebhook``."""
    await printer._app_api("POST", DELETE_WEBHOOK_PATH, idempotent=True)


async def test_notification_webhook(printer: PrinterConnection) -> int:
    """``GET /api/appconnection/TestWebhook``: the status code the webhook URL answered."""
    data = await printer._app_api("GET", TEST_WEBHOOK_PATH)
    if isinstance(data, Mapping):
        for key in _TEST_STATUS_KEYS:
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    raise UnexpectedResponseError("TestWebhook did not report the webhook's status code")
