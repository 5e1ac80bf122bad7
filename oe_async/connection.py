"""``PrinterConnection``: the façade an app holds for one printer.

It owns no protocol logic. It composes the request funnel (:mod:`oe_async._funnel`) and
the features built on it, each reached as a namespace:

* :attr:`PrinterConnection.files` — uploads and downloads (:mod:`oe_async.transfer`);
* :attr:`PrinterConnection.webcam` — MJPEG frames and snapshots (:mod:`oe_async.webcam`);
* :attr:`PrinterConnection.websocket` — sockets and subscriptions (:mod:`oe_async.websocket`);
* :attr:`PrinterConnection.app_api` — info, limits, Live Links, webhooks (:mod:`oe_async.app_api`);
* :attr:`PrinterConnection.gadget` — Gadget status and its poller (:mod:`oe_async.gadget`);
* :attr:`PrinterConnection.plugin` — the printer-agnostic command API (:mod:`oe_async.plugin_api`);
* :attr:`PrinterConnection.mqtt` — MQTT through the relay, Bambu Lab helpers (:mod:`oe_async.mqtt`);

and the printer's own API directly: :meth:`~PrinterConnection.request`,
:meth:`~PrinterConnection.get_json`, :meth:`~PrinterConnection.post_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from functools import cached_property
from typing import Any

import aiohttp
from yarl import URL

from ._funnel import MISSING, Funnel
from ._http import path_of
from .app_api import AppAPI
from .auth import redact_url
from .diagnostics import printer_diagnostics
from .gadget import Gadget
from .models import AppConnection
from .mqtt import MQTT
from .plugin_api import PluginAPI
from .retry import RetryPolicy
from .routing import Route, RoutePolicy
from .transfer import Files
from .webcam import Webcam
from .websocket import WebSockets

__all__ = ["PrinterConnection"]


class PrinterConnection:
    """One printer reached through its App Connection. Create with ``OctoEverywhere.printer()``.

    Cheap to create and to keep: the features are created on first use. The printer's own
    API (OctoPrint, Moonraker, ...) is reached with :meth:`request`, :meth:`get_json` and
    :meth:`post_json` using the printer's usual paths; everything else is a namespace
    (``printer.files``, ``printer.webcam``, ``printer.websocket``, ``printer.app_api``,
    ``printer.gadget``, ``printer.plugin``).
    """

    def __init__(self, funnel: Funnel) -> None:
        self._funnel = funnel

    def __repr__(self) -> str:
        conn = self._funnel.app_connection
        return f"<PrinterConnection {redact_url(conn.url)} printer_name={conn.printer_name!r}>"

    # ------------------------------------------------------------------ state

    @property
    def app_connection(self) -> AppConnection:
        """The App Connection this printer is reached through."""
        return self._funnel.app_connection

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session requests go out on (the client's, owned or borrowed)."""
        return self._funnel.transport.session

    @property
    def route(self) -> Route:
        """Where requests to the printer go now: ``Route.LAN`` or ``Route.RELAY``."""
        return self._funnel.routes.router.route

    @property
    def route_policy(self) -> RoutePolicy:
        """The routing policy (``prefer_local``, ``relay`` or ``local``)."""
        return self._funnel.routes.router.policy

    @property
    def lan_url(self) -> URL | None:
        """The printer's LAN base URL, when known."""
        return self._funnel.routes.router.lan_url

    # ------------------------------------------------------------------ features

    @cached_property
    def app_api(self) -> AppAPI:
        """The App Connection's own API: info and limits, Live Links, webhooks."""
        return AppAPI(self._funnel)

    @cached_property
    def files(self) -> Files:
        """Streamed uploads and downloads, checked against the account's limits."""
        return Files(self._funnel, self.app_api)

    @cached_property
    def webcam(self) -> Webcam:
        """MJPEG webcam frames and snapshots."""
        return Webcam(self._funnel)

    @cached_property
    def websocket(self) -> WebSockets:
        """WebSockets to the printer and reconnecting subscriptions."""
        return WebSockets(self._funnel)

    @cached_property
    def mqtt(self) -> MQTT:
        """MQTT through the relay (Bambu Lab, Elegoo Centauri Carbon 2) and Bambu helpers."""
        return MQTT(self.websocket)

    @cached_property
    def gadget(self) -> Gadget:
        """Gadget AI failure detection: status and a polite poller."""
        return Gadget(self._funnel)

    @cached_property
    def plugin(self) -> PluginAPI:
        """OctoEverywhere's printer-agnostic command API (any printer it supports)."""
        return PluginAPI(self._funnel, self.files)

    def diagnostics(self) -> dict[str, Any]:
        """Return a dict that is safe to paste into a bug report.

        Versions, route, limits, the last plugin status and the last error; every secret and
        the URL's unique subdomain are redacted.
        """
        return printer_diagnostics(
            self._funnel, limits=self.app_api.limits, last_status=self.plugin.last_status
        )

    # ------------------------------------------------------------------ the printer's API

    @staticmethod
    def path_of(url: str | URL) -> str:
        """The path and query of a URL the printer handed out, to use on the current route.

        OctoPrint's upload answer carries ``refs.download`` =
        ``http://127.0.0.1:5000/downloads/files/local/x.gcode`` (its own idea of its host);
        Moonraker's file URLs are alike. ``printer.files.download(printer.path_of(ref))``
        fetches it through the App Connection (or the LAN route): only the path and query
        are kept, never the foreign host, so no credential goes anywhere new.

        Raises:
            InvalidArgumentError: not an http(s) URL or a path, or it has a fragment.

        """
        return path_of(url)

    def request(
        self,
        method: str,
        path: str | URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = MISSING,
        data: Any = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        stream: bool = False,
        retry: RetryPolicy | None = None,
        idempotent: bool | None = None,
        allow_redirects: bool = True,
        raise_for_status: bool = True,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Send a request to the printer's own API through the relay (or the LAN).

        Use as ``async with printer.request("GET", "/api/job") as resp: ...``. The response
        is released when the block exits, however it exits.

        Args:
            method: HTTP method.
            path: the printer path (``/api/job``), joined beneath the App Connection URL;
                an absolute URL must be on the printer's origin (for a URL the printer
                handed out with its own host, use :meth:`path_of`). Text after ``?`` is the
                query; a ``#`` is refused (percent-encode it as ``%23`` in a file name).
            params: query parameters (merged with any in ``path``).
            headers: extra headers for this request only.
            json: a JSON body (mutually exclusive with ``data``).
            data: a body as aiohttp accepts it, or a zero-argument callable returning a
                fresh body for each attempt (which makes a stream body retryable).
            timeout: seconds or ``ClientTimeout``, the whole call's deadline with every
                retry; default: the client's.
            stream: use the client's stream timeout (no total limit) by default.
            retry: override the client's :class:`RetryPolicy` for this request.
            idempotent: force (True) or forbid (False) retries regardless of the method;
                POST is retried only with ``idempotent=True``.
            allow_redirects: follow redirects (credentials never follow to another origin).
            raise_for_status: raise :class:`oe_async.PrinterHTTPError` for 4xx/5xx.
                OctoEverywhere's 6xx codes always raise their :class:`oe_async.RelayError`.

        Raises:
            RelayError: 600-699 from OctoEverywhere.
            PrinterHTTPError: the printer answered 4xx/5xx.
            CommunicationError: network failure; RequestTimeoutError for timeouts.
            InvalidArgumentError: bad arguments (nothing is sent).

        """
        call = self._funnel.call(
            method,
            path,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
            stream=stream,
            retry=retry,
            idempotent=idempotent,
            allow_redirects=allow_redirects,
            raise_for_status=raise_for_status,
        )
        return self._funnel.send(call)

    async def get_json(
        self,
        path: str | URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """GET a printer path and decode its JSON body (None for an empty body).

        Raises what :meth:`request` raises, and :class:`oe_async.UnexpectedResponseError`
        for a body that is not JSON.
        """
        funnel = self._funnel
        if params is None and headers is None and timeout is None and retry is None:
            return await funnel.json(funnel.plain("GET", path))  # the common poll
        call = funnel.call(
            "GET", path, params=params, headers=headers, timeout=timeout, retry=retry
        )
        return await funnel.json(call)

    async def post_json(
        self,
        path: str | URL,
        json: Any = None,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """POST a JSON body to a printer path and decode the JSON answer (None if empty).

        OctoPrint's command endpoints answer ``204 No Content``: that is None too.
        """
        call = self._funnel.call(
            "POST",
            path,
            params=params,
            headers=headers,
            json=json,
            timeout=timeout,
            retry=retry,
            idempotent=idempotent,
        )
        return await self._funnel.json(call)
