"""LAN-or-relay routing: use the printer's LAN address when it answers, the relay otherwise.

A printer connection may know the printer's LAN base URL (given explicitly, or derived from
the App Connection's ``local_ip`` / the Info API's ``PrinterLocalIp`` as ``http://<ip>/``).
Under the ``prefer_local`` policy the first request probes the LAN with a short timeout; the
LAN is used when it answers like the printer behind the relay: the same status and media type
for ``probe_path``, and the same OctoEverywhere printer id when the printer tells one
(OctoPrint's plugin, ``GET /api/plugin/octoeverywhere``). While on the relay, the LAN is
probed again in the background at most once per ``reprobe_interval``, and traffic moves back
when it passes; while on the LAN, it is checked again the same way, and traffic drops to the
relay when the check fails (another device took the address). A LAN request that cannot
connect marks the LAN down and is sent through the relay at once.

The relay credentials are pinned to the relay's origin, so they never reach the LAN; the
printer-level headers (``X-Api-Key``) are pinned to both.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import attrs
from yarl import URL

from ._lan import is_local_host, lan_url_from_ip, local_lan_url
from .auth import origin_of
from .errors import InvalidArgumentError

__all__ = [
    "Route",
    "RoutePolicy",
    "RoutingOptions",
    "is_local_host",
    "lan_url_from_ip",
    "local_lan_url",
]

_LOGGER = logging.getLogger(__package__)


class Route(enum.Enum):
    """Where a request to the printer goes."""

    LAN = "lan"
    RELAY = "relay"


class RoutePolicy(enum.Enum):
    """How a connection picks its route."""

    #: Probe the LAN; use it while it answers, the relay otherwise (default with a LAN URL).
    PREFER_LOCAL = "prefer_local"
    #: Always the relay (default without a LAN URL).
    RELAY = "relay"
    #: Always the LAN, never the relay (for apps that only work at home).
    LOCAL = "local"


@attrs.frozen(kw_only=True)
class RoutingOptions:
    """Timing of LAN probes (seconds) and the path probed.

    Attributes:
        probe_timeout: the most one probe request may take.
        reprobe_interval: how often the LAN is probed again, in the background: while on
            the relay (does it answer again?) and while on the LAN (is it still the printer?).
        probe_path: the path whose answer (status, media type) the LAN must share with the
            relay.

    """

    probe_timeout: float = 1.5
    reprobe_interval: float = 60.0
    probe_path: str = "/"

    def __attrs_post_init__(self) -> None:
        if not self.probe_timeout > 0 or not self.reprobe_interval >= 0:
            raise InvalidArgumentError("probe_timeout must be > 0 and reprobe_interval >= 0")


def check_lan_url(url: str | URL) -> URL:
    """Validate an explicit LAN base URL (http or https, no credentials, no query)."""
    parsed = URL(str(url))
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidArgumentError("lan_url must be an absolute http:// or https:// URL")
    if parsed.user is not None or parsed.password is not None:
        raise InvalidArgumentError("lan_url must not contain user info")
    if parsed.query_string or parsed.fragment:
        raise InvalidArgumentError("lan_url must not have a query string or fragment")
    if not parsed.path.endswith("/"):
        parsed = parsed.with_path(parsed.path + "/")
    return parsed


class _LanState(enum.Enum):
    UNKNOWN = enum.auto()
    UP = enum.auto()
    DOWN = enum.auto()


Prober = Callable[[URL], Awaitable[bool]]
Spawner = Callable[[Coroutine[Any, Any, None]], object]


class Router:
    """Chooses the base URL for each request of one printer connection."""

    def __init__(
        self,
        relay_url: URL,
        lan_url: URL | None,
        policy: RoutePolicy,
        options: RoutingOptions,
        *,
        lan_from_ip: bool,
    ) -> None:
        if policy is not RoutePolicy.RELAY and lan_url is None:
            raise InvalidArgumentError(f"route {policy.value!r} needs a LAN URL or local IP")
        self.relay_url: Final = relay_url
        self.lan_url = lan_url
        self.policy: Final = policy
        self.options: Final = options
        self._lan_from_ip = lan_from_ip
        self._state = _LanState.UNKNOWN
        self._last_probe = -float("inf")
        self._first_probe: asyncio.Lock | None = None
        self._background: asyncio.Task[None] | None = None
        self._ignored_ip: str | None = None
        #: Bumped when the LAN fails or moves: a probe that began before answers too late.
        self._epoch = 0

    @property
    def route(self) -> Route:
        """The route the next request takes (``RELAY`` until the LAN has answered)."""
        if self.policy is RoutePolicy.LOCAL:
            return Route.LAN
        if self.policy is RoutePolicy.PREFER_LOCAL and self._state is _LanState.UP:
            return Route.LAN
        return Route.RELAY

    def base(self, route: Route) -> URL:
        """The base URL of a route."""
        if route is Route.LAN:
            assert self.lan_url is not None  # noqa: S101 (checked at construction)
            return self.lan_url
        return self.relay_url

    def is_lan_host(self, url: URL) -> bool:
        """True when ``url`` points at the printer's LAN host (any port or scheme)."""
        return (
            self.lan_url is not None
            and (url.host or "").lower() == (self.lan_url.host or "").lower()
        )

    async def choose(self, probe: Prober, spawn: Spawner) -> Route:
        """The route for a request, probing the LAN first when nothing is known yet."""
        route = self.choose_now(probe, spawn)
        if route is not None:
            return route
        if self._first_probe is None:
            self._first_probe = asyncio.Lock()
        async with self._first_probe:  # concurrent first requests share one probe
            if self._state is _LanState.UNKNOWN:
                await self._probe(probe)
        return self.route

    def choose_now(self, probe: Prober, spawn: Spawner) -> Route | None:
        """:meth:`choose` without awaiting; None while the first probe is still to be awaited.

        A probe is due every ``reprobe_interval`` once the first has answered: of a LAN that
        is down (does it answer again?) and of a LAN in use (is it still the printer? a
        stored address may now belong to another device). It runs in the background
        (``spawn``) while this request takes the current route; a failed check moves the
        next requests to the relay.
        """
        if self.policy is not RoutePolicy.PREFER_LOCAL:
            return self.route
        if self._state is _LanState.UNKNOWN:
            return None
        if time.monotonic() - self._last_probe >= self.options.reprobe_interval and (
            self._background is None or self._background.done()
        ):
            self._last_probe = time.monotonic()
            task = spawn(self._probe(probe))
            self._background = task if isinstance(task, asyncio.Task) else None
        return self.route

    async def _probe(self, probe: Prober) -> None:
        lan_url = self.lan_url
        assert lan_url is not None  # noqa: S101
        epoch = self._epoch
        self._last_probe = time.monotonic()
        try:
            up = await probe(lan_url)
        except Exception as err:  # noqa: BLE001 (a probe that breaks fails closed, said once)
            # Only the type: the text may come from whatever device holds the address.
            _LOGGER.warning("the LAN probe failed (%s); using the relay", type(err).__name__)
            up = False
        if self._epoch != epoch:
            # The LAN failed a request or moved (learn_local_ip) meanwhile: an answer begun
            # before that must not put the route back on it.
            return
        previous, self._state = self._state, _LanState.UP if up else _LanState.DOWN
        if previous is not self._state:
            _LOGGER.debug("printer route: %s", self.route.value)

    def lan_failed(self) -> None:
        """A LAN request could not connect: use the relay until a re-probe succeeds."""
        if self.policy is RoutePolicy.PREFER_LOCAL and self._state is not _LanState.DOWN:
            self._epoch += 1
            self._state = _LanState.DOWN
            self._last_probe = time.monotonic()
            _LOGGER.debug("printer route: relay (the LAN stopped answering)")

    def learn_local_ip(self, ip: str | None) -> None:
        """The Info API reported the printer's LAN IP: follow it if ours came from an IP."""
        if not ip or not self._lan_from_ip or self.lan_url is None:
            return
        if ip == self._ignored_ip:
            return  # already reported once
        try:
            candidate = local_lan_url(ip, what="the Info API's PrinterLocalIp")
        except InvalidArgumentError as err:
            _LOGGER.warning("%s; the LAN route keeps its address", err)
            candidate = None
        if candidate is None:
            self._ignored_ip = ip
            return
        if origin_of(candidate) != origin_of(self.lan_url):
            self._epoch += 1
            self.lan_url = candidate
            self._state = _LanState.UNKNOWN
