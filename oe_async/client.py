"""``OctoEverywhere``: the session factory that owns or borrows one aiohttp session."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Final, Self

import aiohttp
from yarl import URL

from ._funnel import Funnel, RouteArgs
from ._transport import (
    DEFAULT_STREAM_TIMEOUT,
    DEFAULT_TIMEOUT,
    ConnectionBudget,
    Transport,
    as_timeout,
)
from ._version import __version__
from .connection import PrinterConnection
from .errors import InvalidArgumentError
from .models import AppConnection, check_base_url
from .portal import check_app_id
from .retry import RetryPolicy
from .routing import RoutePolicy, RoutingOptions

__all__ = ["DEFAULT_APP_API_URL", "DEFAULT_STREAM_TIMEOUT", "DEFAULT_TIMEOUT", "OctoEverywhere"]

_LOGGER = logging.getLogger(__package__)

#: The App APIs' base URL.
DEFAULT_APP_API_URL: Final = URL("https://octoeverywhere.com/")


class OctoEverywhere:
    """Entry point: one per app, shared by every printer the app talks to.

    Use it as an async context manager (or call :meth:`close`). It owns an aiohttp session
    that it creates on first use, or borrows the one you pass (a Home Assistant integration
    passes ``async_get_clientsession(hass)``): a borrowed session is never closed and
    nothing is written into its default headers; every secret travels in per-request
    middleware instead.

    Args:
        app_id: your OctoEverywhere app id (User-Agent, 605 recovery URL).
        session: an aiohttp session to borrow; None to own one.
        app_api_url: base of the App APIs (override for :mod:`oe_async.testing`).
        timeout: default for ordinary requests (seconds or ``ClientTimeout``).
        stream_timeout: default for streams (downloads, webcams); keep ``total=None``.
        retry: the default :class:`RetryPolicy` for every request.
        allow_insecure_loopback: accept an ``http://`` ``app_api_url`` on a loopback host.
        connections: the connection pools and the longest wait for a free connection
            (:class:`ConnectionBudget`: 100 for requests and 500 for streams on an owned
            session; 10 kept free for requests on a borrowed one; 10 s).
        precheck_limits: check a transfer's size against the account limits (from the App
            API) before sending it. The check is quick (1.5 s, no retries) and skipped for a
            minute after the App API fails; the relay still enforces the limits (607/608).
        allow_unverified_tls: accept a borrowed session or an ``ssl_context`` that does not
            verify TLS certificates (``TCPConnector(ssl=False)``, ``CERT_NONE``, or no host
            name check). Off by default: relay credentials are then refused rather than sent
            to whoever answers.
        ssl_context: the owned session's TLS settings: a client ``ssl.SSLContext`` that
            trusts the certificate authorities you need (a TLS-inspecting corporate proxy,
            a private CA). None: the system's trust store. Build it in an executor (loading
            certificates reads files). For a borrowed session, set it on its connector
            (``TCPConnector(ssl=...)``) instead.

    """

    def __init__(
        self,
        app_id: str,
        *,
        session: aiohttp.ClientSession | None = None,
        app_api_url: str | URL = DEFAULT_APP_API_URL,
        timeout: float | aiohttp.ClientTimeout | None = None,
        stream_timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        allow_insecure_loopback: bool = False,
        connections: ConnectionBudget | None = None,
        precheck_limits: bool = True,
        allow_unverified_tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise InvalidArgumentError("session must be an aiohttp.ClientSession or None")
        if connections is not None and not isinstance(connections, ConnectionBudget):
            raise InvalidArgumentError("connections must be a ConnectionBudget or None")
        for name, flag in (
            ("precheck_limits", precheck_limits),
            ("allow_unverified_tls", allow_unverified_tls),
            ("allow_insecure_loopback", allow_insecure_loopback),
        ):
            if not isinstance(flag, bool):
                raise InvalidArgumentError(f"{name} must be True or False")
        if session is not None and not allow_unverified_tls and _skips_tls_checks(session):
            raise InvalidArgumentError(
                "the borrowed session does not verify TLS certificates (ssl=False or an "
                "unverified SSLContext): oe_async will not send relay credentials over it. "
                "Pass allow_unverified_tls=True to accept that risk."
            )
        _check_owned_options(
            session, connections, ssl_context, allow_unverified_tls=allow_unverified_tls
        )
        self.app_id: Final[str] = check_app_id(app_id)
        #: The App APIs' base URL.
        self.app_api_url: Final[URL] = check_base_url(
            URL(str(app_api_url)),
            what="app_api_url",
            allow_insecure_loopback=allow_insecure_loopback,
        )
        #: The default timeout of ordinary requests.
        self.timeout: Final[aiohttp.ClientTimeout] = as_timeout(timeout, DEFAULT_TIMEOUT)
        #: The default timeout of streams.
        self.stream_timeout: Final[aiohttp.ClientTimeout] = as_timeout(
            stream_timeout, DEFAULT_STREAM_TIMEOUT
        )
        #: The default retry policy.
        self.retry: Final[RetryPolicy] = retry if retry is not None else RetryPolicy()
        #: Whether plain http to loopback hosts is allowed (tests against the simulator).
        self.allow_insecure_loopback: Final[bool] = allow_insecure_loopback
        #: The User-Agent sent with every request.
        self.user_agent: Final[str] = f"oe-async/{__version__} (app {self.app_id})"
        self._transport = Transport(
            app_id=self.app_id,
            session=session,
            app_api_url=self.app_api_url,
            timeout=self.timeout,
            stream_timeout=self.stream_timeout,
            retry=self.retry,
            allow_insecure_loopback=allow_insecure_loopback,
            user_agent=self.user_agent,
            budget=connections,
            precheck_limits=precheck_limits,
            ssl_context=ssl_context,
        )

    def __repr__(self) -> str:
        owner = "owned" if self._transport.owns_session else "borrowed"
        return f"<OctoEverywhere app_id={self.app_id!r} session={owner} closed={self.closed}>"

    async def __aenter__(self) -> Self:
        _ = self._transport.session  # create (or check) the session now
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._transport.closed

    @property
    def connections(self) -> ConnectionBudget:
        """The connection budget in use."""
        return self._transport.budget

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session in use (created on first access when owned)."""
        return self._transport.session

    @property
    def sessions(self) -> tuple[aiohttp.ClientSession, ...]:
        """Every aiohttp session this client sends on: the borrowed one, or both owned ones.

        An owned client keeps two pools (see :class:`ConnectionBudget`): :attr:`session` for
        requests, and a second session for streams (webcam frames, downloads, WebSockets,
        subscriptions), made with the first stream. For diagnostics and tests, such as
        counting the connections the client holds: reading it never creates, checks or
        closes a session (it works after :meth:`close`, and lists the closed ones then).
        """
        return self._transport.sessions

    def printer(
        self,
        app_connection: AppConnection,
        *,
        headers: Mapping[str, str] | None = None,
        lan_url: str | URL | None = None,
        route: RoutePolicy | str | None = None,
        routing: RoutingOptions | None = None,
    ) -> PrinterConnection:
        """Return a cheap per-printer connection (no I/O; thousands can share this client).

        Args:
            app_connection: the stored App Connection.
            headers: printer-level headers sent with every request to the printer, on the
                relay and on the LAN (e.g. ``{"X-Api-Key": key}``). They are pinned to the
                printer's origins like the relay credentials. The connection's
                ``octoprint_api_key``, when present, is sent as ``X-Api-Key`` unless this
                mapping sets that header.
            lan_url: the printer's LAN base URL (plain http allowed). Without it, the App
                Connection's ``local_ip`` gives ``http://<ip>/``.
            route: ``"prefer_local"`` (default when a LAN URL is known: use the LAN while it
                answers, the relay otherwise), ``"relay"`` (default otherwise) or ``"local"``.
            routing: probe timeout, re-probe interval and probe path for ``prefer_local``.

        """
        if not isinstance(app_connection, AppConnection):
            raise InvalidArgumentError("printer() needs an AppConnection")
        funnel = Funnel(
            self._transport,
            app_connection,
            routing=RouteArgs(lan_url, route, routing),
            headers=headers,
        )
        return PrinterConnection(funnel)

    async def close(self) -> None:
        """Cancel background tasks and close the session if this client created it.

        Calls still waiting (for a connection, a connect, an answer) and streams in
        progress end with :class:`oe_async.ClientClosedError`. Safe to call more than once
        (a second call waits for the first) and from a callback the client runs (a
        subscription's ``on_message``/``on_state``, a Gadget poller's ``on_status``): it
        returns, and that subscription or poller stops when the callback returns. A
        borrowed session is left open.
        """
        await self._transport.close()


def _skips_tls_checks(session: aiohttp.ClientSession) -> bool:
    """Whether a borrowed session's connector was told not to verify certificates.

    aiohttp keeps the connector's ``ssl=`` choice without a public accessor; an unknown
    shape (a later aiohttp) counts as verified, which is aiohttp's default.
    """
    value = getattr(session.connector, "_ssl", True)
    if value is False:
        return True
    if isinstance(value, ssl.SSLContext):
        return _unverified(value)
    return False


def _unverified(context: ssl.SSLContext) -> bool:
    """Whether ``context`` accepts any certificate, or a trusted one for any host name."""
    return context.verify_mode == ssl.CERT_NONE or not context.check_hostname


def _check_owned_options(
    session: aiohttp.ClientSession | None,
    connections: ConnectionBudget | None,
    ssl_context: ssl.SSLContext | None,
    *,
    allow_unverified_tls: bool,
) -> None:
    """Refuse the owned session's options where they would be ignored or unsafe."""
    if session is not None:
        if ssl_context is not None:
            raise InvalidArgumentError(
                "ssl_context applies to the session oe_async owns; for a borrowed session "
                "set it on its connector: aiohttp.TCPConnector(ssl=context)"
            )
        if connections is not None and connections.max_idle is not None:
            raise InvalidArgumentError(
                "ConnectionBudget.max_idle applies to the session oe_async owns; a borrowed "
                "session keeps idle connections by its connector's keepalive_timeout"
            )
    if ssl_context is None:
        return
    if not isinstance(ssl_context, ssl.SSLContext):
        raise InvalidArgumentError("ssl_context must be an ssl.SSLContext or None")
    if ssl_context.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise InvalidArgumentError(
            "ssl_context is a server-side context; build a client one, e.g. "
            "ssl.create_default_context(cafile=...)"
        )
    if not allow_unverified_tls and _unverified(ssl_context):
        raise InvalidArgumentError(
            "ssl_context does not verify TLS certificates (CERT_NONE or check_hostname=False): "
            "oe_async will not send relay credentials over it. Pass allow_unverified_tls=True "
            "to accept that risk."
        )
