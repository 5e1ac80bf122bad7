"""How ``printer.plugin`` sends a command: through the funnel, with the plugin's errors.

:class:`PluginCalls` is the base of :class:`oe_async.PluginAPI`: it runs a JSON command
(``Status`` envelope unwrapped by :mod:`oe_async._plugin_wire`, the plugin's HTTP errors
mapped to :class:`oe_async.PluginCommandError` subclasses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from oe_async._funnel import MISSING, Feature, Funnel
from oe_async._plugin_wire import PLUGIN_PREFIX, plugin_error_from_http, unwrap_envelope
from oe_async.errors import PrinterHTTPError
from oe_async.retry import RetryPolicy
from oe_async.transfer import Files

#: A command's per-call ``(timeout, retry)``, or None for the client's defaults.
IO = tuple[float | aiohttp.ClientTimeout | None, RetryPolicy | None] | None


class PluginCalls(Feature):
    """Runs the plugin's JSON commands for :class:`oe_async.PluginAPI` (its base class)."""

    def __init__(self, funnel: Funnel, files: Files) -> None:
        super().__init__(funnel)
        self._files = files

    async def _run(
        self,
        method: str,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, object] | None = None,
        io: IO = None,
    ) -> Any:
        """Run a JSON command through the funnel and return its ``Result``.

        Commands change the printer: only reads (GET) are retried (unless ``retry`` says
        otherwise, which only ever repeats what may be repeated).
        """
        json = MISSING if method == "GET" else (body or None)  # None: no body at all
        timeout, retry = io if io is not None else (None, None)
        call = self._funnel.call(
            method, PLUGIN_PREFIX + name, params=params, json=json, timeout=timeout, retry=retry
        )
        try:
            data = await self._funnel.json(call)
        except PrinterHTTPError as err:
            mapped = plugin_error_from_http(err)
            if mapped is not None:
                raise mapped from None
            raise
        return unwrap_envelope(data, command=name, secrets=self._funnel.secrets)

    async def _command(
        self,
        name: str,
        body: Mapping[str, object] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        io: IO = None,
    ) -> Any:
        return await self._run("POST", name, body=body, params=params, io=io)
