"""The OctoEverywhere App APIs (``AppToken`` header), called through the printer's funnel.

:class:`AppAPI` (``printer.app_api``) holds what belongs to the App Connection itself:
its state and the account limits (remembered for the transfer pre-checks), Live Links and
the notification webhook. Gadget has its own feature (:mod:`oe_async.gadget`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import aiohttp
from yarl import URL

from ._convert import structure
from ._funnel import MISSING, Feature, Funnel, Target
from .auth import is_loopback_host
from .errors import (
    AppAPIError,
    CommunicationError,
    InvalidArgumentError,
    UnexpectedResponseError,
)
from .models import ConnectionInfo, LiveLink, PrinterLimits
from .retry import RetryPolicy
from .routing import Route
from .webhooks import EventType

__all__ = ["AppAPI"]

_LOGGER = logging.getLogger(__package__)

INFO_PATH: Final = "/api/appconnection/info"
SET_WEBHOOK_PATH: Final = "/api/appconnection/SetNotificationWebhook"
DELETE_WEBHOOK_PATH: Final = "/api/appconnection/DeleteNotificationWebhook"
TEST_WEBHOOK_PATH: Final = "/api/appconnection/TestWebhook"
#: Keys the TestWebhook answer may use for the status code the webhook answered.
_TEST_STATUS_KEYS: Final = ("StatusCode", "WebhookStatusCode", "HttpStatusCode", "Status")
LIVE_LINK_PATH: Final = "/api/live/createfromappconnection"
MIN_LIVE_LINK_HOURS: Final = 1
MAX_LIVE_LINK_HOURS: Final = 17520
#: The transfer pre-check's whole budget for the Info API (one attempt, no retries).
PRECHECK_TIMEOUT: Final = 1.5
#: How long a failed pre-check is remembered (no App API call, no wait) before trying again.
PRECHECK_BACKOFF: Final = 60.0


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


class AppAPI(Feature):
    """The App Connection's own API (``AppToken``): ``printer.app_api``.

    Its base is ``https://octoeverywhere.com`` (a different service from the relay), so its
    failures never stop printer traffic: the transfer pre-check asks it once, for at most
    :data:`PRECHECK_TIMEOUT` seconds with no retries, and when that fails it goes ahead
    without the limits (the relay still answers 607/608) and does not ask again for
    :data:`PRECHECK_BACKOFF` seconds.

    Every call takes ``timeout=`` (seconds or ``aiohttp.ClientTimeout``; the whole call's
    deadline, retries included) and ``retry=`` (a :class:`oe_async.RetryPolicy`).
    """

    __slots__ = ("_failed_until", "_limits", "_limits_lock")

    def __init__(self, funnel: Funnel) -> None:
        super().__init__(funnel)
        self._limits: PrinterLimits | None = None
        self._limits_lock: asyncio.Lock | None = None
        self._failed_until = 0.0

    async def _json(
        self,
        method: str,
        path: str,
        *,
        json: Any = MISSING,
        idempotent: bool | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        call = self._funnel.call(
            method,
            path,
            target=Target.APP_API,
            json=json,
            idempotent=idempotent,
            timeout=timeout,
            retry=retry,
        )
        return await self._funnel.json(call)

    @property
    def limits(self) -> PrinterLimits | None:
        """The account limits from the last :meth:`info` call, or None before the first.

        Set it to limits the app already has (e.g. from its own ``info()`` call at set-up):
        the transfer pre-check then uses them without calling the App API.
        """
        return self._limits

    @limits.setter
    def limits(self, value: PrinterLimits | None) -> None:
        if value is not None and not isinstance(value, PrinterLimits):
            raise InvalidArgumentError("limits must be a PrinterLimits or None")
        self._limits = value

    async def info(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> ConnectionInfo:
        """Fetch the App Connection's state and the account limits (Info API).

        The limits are remembered (:attr:`limits`) for the transfer pre-checks, and a
        ``PrinterLocalIp`` updates the LAN route when the LAN address came from an IP.

        Raises:
            AppConnectionNotFoundError, AppConnectionRevokedError: recreate the connection.
            SupporterPerksRequiredError: valid, but the owner lost Supporter Perks.
            AppAPIError: e.g. 400 when the App API rejects the request.

        """
        data = await self._json("GET", INFO_PATH, timeout=timeout, retry=retry)
        info = structure(data, ConnectionInfo, what="Info API answer")
        self._limits = info.limits
        self._funnel.routes.learn_local_ip(info.local_ip)
        return info

    async def precheck_limits(self) -> PrinterLimits | None:
        """The account limits for a transfer pre-check, or None to go ahead without them.

        Fetched once with :meth:`info` (one attempt of at most :data:`PRECHECK_TIMEOUT`
        seconds). Relay errors (603/604/605...) propagate: the transfer would fail the same
        way. When the App API cannot be reached, or answers oddly, the pre-check is skipped
        (logged) and not tried again for :data:`PRECHECK_BACKOFF` seconds. On the LAN route,
        with ``OctoEverywhere(precheck_limits=False)`` or for a connection without an
        ``app_token``, there is no pre-check.
        """
        if (
            not self._funnel.transport.precheck_limits
            or self._funnel.routes.router.route is Route.LAN
            or self._funnel.app_connection.app_token is None
        ):
            return None  # opted out / relay-only limits / no App API token to ask with
        if self._limits is not None:
            return self._limits
        loop = asyncio.get_running_loop()
        if loop.time() < self._failed_until:
            return None
        if self._limits_lock is None:
            self._limits_lock = asyncio.Lock()
        async with self._limits_lock:
            if self._limits is None and loop.time() >= self._failed_until:
                try:
                    await self.info(timeout=PRECHECK_TIMEOUT, retry=RetryPolicy.never())
                except (CommunicationError, AppAPIError, UnexpectedResponseError) as err:
                    self._failed_until = loop.time() + PRECHECK_BACKOFF
                    _LOGGER.info(
                        "App API unavailable (%s): transfers go ahead without the limits "
                        "pre-check for %.0f s",
                        type(err).__name__,
                        PRECHECK_BACKOFF,
                    )
        return self._limits

    async def create_live_link(
        self,
        expiration_hours: float = 24,
        *,
        end_when_print_complete: bool = False,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> LiveLink:
        """Create a shareable Live Link to the printer.

        Args:
            expiration_hours: 1-17520 hours (ignored by the service when
                ``end_when_print_complete`` is true).
            end_when_print_complete: follow the current print and end with it.
            timeout: the whole call's deadline (seconds or ``ClientTimeout``).
            retry: the retry policy for this call (default: the client's).

        Raises:
            InvalidArgumentError: hours out of range (nothing is sent).
            NoActivePrintError: 613, ``end_when_print_complete`` with no active print.

        """
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
        data = await self._json("POST", LIVE_LINK_PATH, json=body, timeout=timeout, retry=retry)
        return structure(data, LiveLink, what="Live Link answer")

    async def set_notification_webhook(
        self,
        url: str,
        event_types: Iterable[EventType | int] | None = None,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Have OctoEverywhere POST this printer's notifications to ``url`` (https).

        ``url`` is stored and called exactly as given, query string included (put your
        routing and correlation keys there). ``event_types`` limits the events sent (None or
        empty: all). Replaces any previous webhook; call again at least every 180 days.
        """
        body: dict[str, Any] = {
            "WebhookUrl": check_webhook_url(
                url, allow_insecure_loopback=self._funnel.transport.allow_insecure_loopback
            )
        }
        types = _event_filter(event_types)
        if types is not None:
            body["InclusiveEventTypesFilter"] = types
        await self._json(
            "POST", SET_WEBHOOK_PATH, json=body, idempotent=True, timeout=timeout, retry=retry
        )

    async def delete_notification_webhook(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Stop the notification webhook."""
        await self._json("POST", DELETE_WEBHOOK_PATH, idempotent=True, timeout=timeout, retry=retry)

    async def test_notification_webhook(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Ask OctoEverywhere to call the webhook now; return the status code it answered."""
        data = await self._json("GET", TEST_WEBHOOK_PATH, timeout=timeout, retry=retry)
        if isinstance(data, Mapping):
            for key in _TEST_STATUS_KEYS:
                value = data.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise UnexpectedResponseError("TestWebhook did not report the webhook's status code")
