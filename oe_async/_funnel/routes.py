"""Where each attempt of a call goes: the routing glue between calls and the router.

:class:`Routes` holds one printer connection's :class:`oe_async.routing.Router` (LAN or
relay), the secret pins of each origin (:class:`oe_async.auth.AuthMiddleware`: relay
credentials never reach the LAN), and the LAN probe's state: the relay's reference answers
(status and media type, the printer's OctoEverywhere id), and the server errors in a row
that give the LAN up. It works out what an attempt sends on a route
(:class:`oe_async._funnel.calls.Send`); the funnel does the sending.
"""

from __future__ import annotations

import enum
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

import attrs
from multidict import CIMultiDict
from yarl import URL

from oe_async._http import display_path, join_url, parse_url
from oe_async._transport import Transport
from oe_async.auth import AuthMiddleware, Origin, origin_of
from oe_async.errors import InvalidArgumentError, OctoEverywhereError
from oe_async.models import AppConnection
from oe_async.routing import (
    Route,
    RoutePolicy,
    Router,
    RoutingOptions,
    check_lan_url,
    local_lan_url,
)

from .calls import Call, Send, Target

_LOGGER = logging.getLogger("oe_async")

#: Methods the direct path may send twice when the first answer is a redirect.
RESENDABLE: Final = frozenset({"GET", "HEAD"})
#: Server errors in a row on the LAN route after which it is given up for the relay.
LAN_FAILURES: Final = 3

#: Where a local OctoPrint's OctoEverywhere plugin tells its printer id, without an API key
#: (``{"PluginVersion": ..., "PrinterId": ...}``).
IDENTITY_PATH: Final = "/api/plugin/octoeverywhere"
#: The most of an identity answer read (the plugin's is under 100 bytes).
IDENTITY_LIMIT: Final = 4096


@attrs.frozen(slots=True)
class ProbeAnswer:
    """What a probe request got: status, media type and (for the identity) the body."""

    status: int
    media_type: str
    #: The body decoded as JSON when it was read (up to the probe's limit), else None (not
    #: read, larger than that, empty or not JSON); kept out of the repr (an identity
    #: answer holds the printer's id).
    document: Any = attrs.field(default=None, repr=False)


#: ``probe(target, path, read)``: the answer to ``GET path`` on the LAN or the relay (the
#: body read up to ``read`` bytes and decoded as JSON), None when no answer came.
Probe = Callable[[Target, str, int], Awaitable[ProbeAnswer | None]]


@attrs.frozen(slots=True)
class _Reference:
    """The relay's answers to the probes (it reaches the real printer), asked once."""

    fingerprint: tuple[int, str]
    #: The printer's OctoEverywhere id (OctoPrint), or None when the printer tells none;
    #: identifying, so never in a repr or a log line.
    printer_id: str | None = attrs.field(repr=False)


#: Identity answers that say nothing yet (a timeout, too early, rate limited): asked again.
_ASK_AGAIN: Final = frozenset({408, 425, 429})


def settled(status: int) -> bool:
    """Whether the relay's answer to the identity path is final: any id or definite none.

    A 5xx/6xx (the relay's or the printer's trouble), a redirect (never followed) or a
    408/425/429 is not: treating it as "no id" would turn the identity check off for the
    whole connection.
    """
    return status < 300 or (400 <= status < 500 and status not in _ASK_AGAIN)


def printer_id_of(answer: ProbeAnswer) -> str | None:
    """The ``PrinterId`` of an identity answer: a 200 JSON object with a non-empty string."""
    body = answer.document if answer.status == 200 else None
    printer_id = body.get("PrinterId") if isinstance(body, dict) else None
    return printer_id if isinstance(printer_id, str) and printer_id else None


class _Pending(enum.Enum):
    CHOOSE = enum.auto()


#: "The route needs the router's (awaited) choice": the LAN may need a probe first.
CHOOSE: Final = _Pending.CHOOSE


@attrs.frozen
class RouteArgs:
    """The routing arguments of ``OctoEverywhere.printer()``, as given (Routes checks them).

    Attributes:
        lan_url: the printer's LAN base URL, or None to derive it from ``local_ip``.
        route: the routing policy (default: ``prefer_local`` with a LAN URL, else relay).
        routing: LAN probe timing.

    """

    lan_url: str | URL | None = None
    route: RoutePolicy | str | None = None
    routing: RoutingOptions | None = None


class Routes:
    """The routes of one printer connection and what a call sends on each.

    Args:
        transport: the client's shared session, defaults and task owner.
        app_connection: the App Connection (relay URL and credentials, App API token).
        printer_headers: headers for the printer on the relay and the LAN (``X-Api-Key``).
        args: the LAN URL, the routing policy and the LAN probe's timing the app gave.
        probe: sends the probe request to the LAN or the relay (the funnel's).
        label: how log lines name the printer.

    """

    __slots__ = (
        "_app_connection",
        "_default_headers",
        "_fixed_route",
        "_label",
        "_lan_errors",
        "_lan_warned",
        "_printer_headers",
        "_probe",
        "_probe_auth",
        "_relay",
        "_transport",
        "auth",
        "router",
    )

    def __init__(
        self,
        transport: Transport,
        app_connection: AppConnection,
        printer_headers: Mapping[str, str],
        args: RouteArgs,
        *,
        probe: Probe,
        label: str,
    ) -> None:
        self._transport = transport
        self._app_connection = app_connection
        self._printer_headers = printer_headers
        self._probe = probe
        self._label = label
        lan_url, route = args.lan_url, args.route
        if lan_url is not None:
            lan: URL | None = check_lan_url(lan_url)
        elif app_connection.local_ip:
            lan = local_lan_url(app_connection.local_ip, what="AppConnection.local_ip")
        else:
            lan = None
        if route is None:
            policy = RoutePolicy.PREFER_LOCAL if lan is not None else RoutePolicy.RELAY
        else:
            try:
                policy = RoutePolicy(route)
            except ValueError:
                raise InvalidArgumentError(
                    f"route must be one of {[p.value for p in RoutePolicy]}"
                ) from None
        #: LAN or relay: read its ``route``, ``policy``, ``lan_url`` and ``options`` here;
        #: change it only through this object (:meth:`learn_local_ip` re-pins the secrets).
        self.router: Final = Router(
            app_connection.url,
            lan,
            policy,
            args.routing or RoutingOptions(),
            lan_from_ip=lan_url is None and lan is not None,
        )
        #: The secret pins every request carries (renewed when the LAN address changes).
        self.auth: AuthMiddleware = self._pin_secrets()
        #: The pins of a probe (made at the first one: most printers never probe).
        self._probe_auth: AuthMiddleware | None = None
        #: The printer route when the policy fixes it (relay or LAN only), else None.
        self._fixed_route: Final = None if policy is RoutePolicy.PREFER_LOCAL else self.router.route
        self._default_headers: Final = {"User-Agent": transport.user_agent}
        #: The relay's reference answers (made at the first probe that gets them).
        self._relay: _Reference | None = None
        #: Whether the LAN was refused with a warning (once per connection).
        self._lan_warned = False
        self._lan_errors = 0

    def _pin_secrets(self) -> AuthMiddleware:
        """Pin each secret header to its origin: relay credentials never reach the LAN."""
        conn = self._app_connection
        relay, app_api = origin_of(conn.url), origin_of(self._transport.app_api_url)
        if relay == app_api:
            raise InvalidArgumentError("the App Connection URL and the App API share an origin")
        pins: dict[Origin, dict[str, str]] = {
            relay: {"Authorization": conn.auth.header_value, **self._printer_headers},
        }
        if conn.app_token is not None:
            pins[app_api] = {"AppToken": conn.app_token}
        lan = self.router.lan_url
        if lan is not None and self.router.policy is not RoutePolicy.RELAY:
            if origin_of(lan) in pins:
                raise InvalidArgumentError("the LAN URL must differ from the relay and App API")
            pins[origin_of(lan)] = dict(self._printer_headers)
        return AuthMiddleware(pins)

    # ------------------------------------------------------------------ state

    def learn_local_ip(self, ip: str | None) -> None:
        """The Info API reported the printer's LAN IP: follow it if ours came from an IP."""
        previous = self.router.lan_url
        self.router.learn_local_ip(ip)
        if self.router.lan_url != previous:
            self.auth = self._pin_secrets()

    # ------------------------------------------------------------------ choosing

    def now(self, call: Call) -> Route | _Pending | None:
        """The route of ``call``'s next attempt (None: the App API), or :data:`CHOOSE`."""
        target = call.target
        if target is Target.PRINTER:
            if call.relay_only:
                return Route.RELAY
            # Under prefer_local the LAN may need a probe first (a re-probe runs aside).
            return (
                self._fixed_route
                or self.router.choose_now(self._probe_lan, self._spawn_probe)
                or CHOOSE
            )
        if target is Target.APP_API:
            return None
        return Route.LAN if target is Target.LAN else Route.RELAY

    async def choose(self) -> Route:
        """The printer route when :meth:`now` said :data:`CHOOSE` (probing the LAN first)."""
        return await self.router.choose(self._probe_lan, self._spawn_probe)

    async def of(self, call: Call) -> Route | None:
        """The route of ``call``'s next attempt, probing the LAN first if it must."""
        route = self.now(call)
        if route is CHOOSE:
            return await self.choose()
        return route

    def lan_answered(self, status: int) -> None:
        """Give the LAN up after :data:`LAN_FAILURES` server errors in a row there."""
        if status < 500:
            self._lan_errors = 0
            return
        self._lan_errors += 1
        if self._lan_errors >= LAN_FAILURES:
            self._lan_errors = 0
            _LOGGER.debug("%s: %d server errors in a row on the LAN", self._label, LAN_FAILURES)
            self.router.lan_failed()

    def lan_failed(self, route: Route | None, call: Call) -> bool:
        """Note a LAN connection failure; True when the call may move to the relay."""
        if route is not Route.LAN or call.target is not Target.PRINTER:
            return False
        self.router.lan_failed()
        return self.router.route is Route.RELAY

    # ------------------------------------------------------------------ what a call sends

    def send_for(self, call: Call, route: Route | None) -> Send:
        """What ``call`` sends on ``route`` (worked out once per call, route and pins)."""
        slot = route is Route.LAN  # 0: the relay or the App API, 1: the LAN
        send = call.sends[slot]
        if send is None or send.auth is not (self._probe_pins() if call.probe else self.auth):
            send = call.sends[slot] = self._make_send(call, route)
        return send

    def _probe_pins(self) -> AuthMiddleware:
        """A probe's pins: the relay's own credential, no printer secret anywhere."""
        if self._probe_auth is None:
            conn = self._app_connection
            self._probe_auth = AuthMiddleware(
                {origin_of(conn.url): {"Authorization": conn.auth.header_value}}
            )
        return self._probe_auth

    def _make_send(self, call: Call, route: Route | None) -> Send:
        if route is None:
            url = join_url(self._transport.app_api_url, call.path)
        else:
            url = self._url_for(call, route)
        headers = self._headers_for(call)
        auth = self._probe_pins() if call.probe else self.auth
        # Straight to the URL without the middleware when that is safe (see
        # Attempts.run): a request that is not redirected or a GET/HEAD, without
        # secret-named headers of its own (the middleware strips those where they do not
        # belong).
        names = auth.secret_names()
        direct = (not call.allow_redirects or call.method in RESENDABLE) and not (
            call.headers and any(name.lower() in names for name in call.headers)
        )
        return Send(
            auth,
            url,
            display_path(url),
            headers,
            {**headers, **auth.headers_for(url)} if direct else None,
            self._transport.pools.with_pool_wait(call.timeout),
        )

    def _url_for(self, call: Call, route: Route) -> URL:
        base = self.router.base(route)
        path = call.path
        if isinstance(path, str) and "://" in path:
            path = parse_url(path)  # InvalidArgumentError, never yarl's ValueError
        if isinstance(path, URL) and path.absolute:
            # The printer's own URLs (webcams, downloads) name its LAN host or the relay:
            # put them on the active route, dropping LAN ports on the relay side.
            same = origin_of(path) in (origin_of(self.router.relay_url), origin_of(base))
            if same or self.router.is_lan_host(path):
                path = path.relative()
        return join_url(base, path)

    def _headers_for(self, call: Call) -> Mapping[str, str]:
        if not call.headers:
            return self._default_headers  # aiohttp copies it; nobody mutates it
        headers: CIMultiDict[str] = CIMultiDict(call.headers)
        headers.setdefault("User-Agent", self._transport.user_agent)
        return headers

    # ------------------------------------------------------------------ the LAN probe

    async def _probe_lan(self, lan_url: URL) -> bool:
        """Is the printer at the LAN address? Its answers must match the relay's.

        Any answer used to do: a proxy's 502 (with ``HTTP_PROXY`` set) or another device now
        holding the stored IP kept the route on the LAN, and received the printer headers.
        Now the probe path's answer on the LAN (below 500) must have the same status and
        media type as the same request through the relay, which reaches the real printer;
        and when the printer tells its OctoEverywhere id through the relay (OctoPrint's
        plugin, :data:`IDENTITY_PATH`), the LAN must tell the same id. The relay's answers
        are asked once and remembered (asked again after the LAN answered ``/`` unlike them,
        or while the relay's answer is not final); while they cannot be had, the LAN is not
        trusted.
        No probe carries a printer secret. The ids are never logged.
        """
        lan = await self._probe(Target.LAN, self.router.options.probe_path, 0)
        if lan is None or lan.status >= 500:
            return False
        relay = self._relay or await self._ask_relay()
        if relay is None:
            return False
        if (lan.status, lan.media_type) != relay.fingerprint:
            # Asked again at the next probe: the printer's own answer to "/" may have changed
            # since (a restart, a login page); a LAN in use is not given up for good on it.
            self._relay = None
            self._refuse_lan(
                "answers unlike the printer (HTTP %d %s, the relay: HTTP %d %s)",
                lan.status,
                lan.media_type,
                *relay.fingerprint,
            )
            return False
        if relay.printer_id is None:
            return True  # not an OctoPrint with the plugin: the answers alone must do
        return await self._lan_tells(relay.printer_id)

    async def _lan_tells(self, printer_id: str) -> bool:
        """Whether the LAN tells ``printer_id`` at :data:`IDENTITY_PATH` (warns once if not)."""
        answer = await self._probe(Target.LAN, IDENTITY_PATH, IDENTITY_LIMIT)
        lan_id = None if answer is None else printer_id_of(answer)
        if lan_id is None:
            self._refuse_lan("tells no OctoEverywhere printer id, the printer does")
            return False
        if not hmac.compare_digest(lan_id.encode(), printer_id.encode()):
            self._refuse_lan("is another printer (its OctoEverywhere printer id differs)")
            return False
        return True

    async def _ask_relay(self) -> _Reference | None:
        """The relay's answers to the probe path and the identity path (remembered)."""
        fingerprint = await self._probe(Target.RELAY, self.router.options.probe_path, 0)
        if fingerprint is None or fingerprint.status >= 500:
            return None  # no answer, or the relay's own trouble (6xx): ask again next time
        identity = await self._probe(Target.RELAY, IDENTITY_PATH, IDENTITY_LIMIT)
        if identity is None or not settled(identity.status):
            return None  # e.g. a 429 or a redirect says nothing of an id: ask again next time
        self._relay = _Reference(
            (fingerprint.status, fingerprint.media_type), printer_id_of(identity)
        )
        return self._relay

    def _refuse_lan(self, why: str, *args: object) -> None:
        """The LAN is not used: say why once per connection (never with an id)."""
        if not self._lan_warned:
            self._lan_warned = True
            _LOGGER.warning("%s: the LAN address %s; staying on the relay", self._label, why % args)

    def _spawn_probe(self, coro: Coroutine[Any, Any, None]) -> object:
        try:
            return self._transport.spawn(coro, name="oe_async LAN re-probe")
        except OctoEverywhereError:  # the client is closing: no more probes
            return None
