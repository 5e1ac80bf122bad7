"""A Home Assistant-style integration built on oe_async, runnable without Home Assistant.

The real integration, tested inside Home Assistant, is ``examples/homeassistant/`` (see
``docs/homeassistant.md``); this file keeps the same coordinator logic runnable anywhere.

It follows the patterns an HA integration uses, with small stand-ins for HA's classes:

* the app's shared aiohttp session is *borrowed*, never closed by the integration;
* a coordinator refreshes on an interval; a temporary failure (printer offline, a relay or
  network hiccup) marks entities unavailable and schedules the next try using the error's
  ``retry_after`` - it never crashes set-up (``ConfigEntryNotReady`` on the first refresh);
* 603/604/606 (``ReauthorizationRequiredError``) stop polling and ask for re-authorisation
  (``ConfigEntryAuthFailed``); 605 points the user at the recovery URL;
* diagnostics are redacted with :func:`oe_async.redact` and ``printer.diagnostics()``.

Run it against the simulator: ``python examples/ha_style_integration.py``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import attrs

from oe_async import (
    AppConnection,
    ConnectionInfo,
    OctoEverywhere,
    OctoEverywhereError,
    PrinterStatus,
    ReauthorizationRequiredError,
    SupporterPerksRequiredError,
    redact,
)

UPDATE_INTERVAL = timedelta(seconds=30)


class ConfigEntryNotReady(Exception):
    """HA: set-up failed temporarily; HA retries later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigEntryAuthFailed(Exception):
    """HA: credentials are no longer valid; HA starts the re-authentication flow."""


class UpdateFailed(Exception):
    """HA: this refresh failed; entities become unavailable until the next success."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@attrs.frozen
class PrinterData:
    """What one refresh produces."""

    info: ConnectionInfo
    status: PrinterStatus


class OctoEverywhereCoordinator:
    """Fetches the printer's state for every entity of one config entry."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        entry_data: dict[str, Any],
        *,
        app_id: str,
        **client_options: Any,
    ) -> None:
        self.entry_data = entry_data
        # The shared session is borrowed: OctoEverywhere never closes it nor touches it.
        self.client = OctoEverywhere(app_id, session=session, **client_options)
        self.printer = self.client.printer(AppConnection.from_dict(entry_data["connection"]))
        self.data: PrinterData | None = None
        self.last_update_success = False
        self.last_error: str | None = None
        self.next_refresh: timedelta | None = UPDATE_INTERVAL
        self.reauth_requested = False
        self.repair_issue: str | None = None

    async def _async_update_data(self) -> PrinterData:
        try:
            info = await self.printer.app_api.info()
            if not info.is_online:
                raise UpdateFailed("The printer is offline.")  # a valid connection: retry later
            status = await self.printer.plugin.status()
        except ReauthorizationRequiredError as err:
            raise ConfigEntryAuthFailed(err.message) from err
        except SupporterPerksRequiredError as err:
            self.repair_issue = err.recovery_url  # HA: a repair issue linking there
            raise UpdateFailed(err.message, err.retry_after) from err
        except OctoEverywhereError as err:
            raise UpdateFailed(getattr(err, "message", str(err)), err.retry_after) from err
        return PrinterData(info=info, status=status)

    async def async_refresh(self) -> None:
        """One refresh, as HA's DataUpdateCoordinator runs it."""
        try:
            self.data = await self._async_update_data()
        except UpdateFailed as err:
            self.last_update_success = False
            self.last_error = str(err)
            wait = max(UPDATE_INTERVAL.total_seconds(), err.retry_after or 0.0)
            self.next_refresh = timedelta(seconds=wait)
        except ConfigEntryAuthFailed as err:
            self.last_update_success = False
            self.last_error = str(err)
            self.reauth_requested = True
            self.next_refresh = None  # stop polling until the user re-authorises
        else:
            self.last_update_success = True
            self.last_error = None
            self.repair_issue = None
            self.next_refresh = UPDATE_INTERVAL

    async def async_config_entry_first_refresh(self) -> None:
        """HA's first refresh: a temporary failure means "not ready, retry later"."""
        await self.async_refresh()
        if self.reauth_requested:
            raise ConfigEntryAuthFailed(self.last_error or "re-authentication needed")
        if not self.last_update_success:
            retry = self.next_refresh.total_seconds() if self.next_refresh else None
            raise ConfigEntryNotReady(self.last_error or "not ready", retry)

    def diagnostics(self) -> dict[str, Any]:
        """HA's config-entry diagnostics: everything redacted."""
        return {
            "entry": redact(self.entry_data),
            "printer": self.printer.diagnostics(),
            "last_update_success": self.last_update_success,
            "last_error": self.last_error,
        }

    async def async_shutdown(self) -> None:
        """Unload: stop oe_async's tasks; the shared session stays open."""
        await self.client.close()


class PrinterStateSensor:
    """An entity: the printer's job state."""

    def __init__(self, coordinator: OctoEverywhereCoordinator) -> None:
        self.coordinator = coordinator

    @property
    def available(self) -> bool:
        return self.coordinator.last_update_success

    @property
    def native_value(self) -> str | None:
        data = self.coordinator.data
        return data.status.job.state.value if data and self.available else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        data = self.coordinator.data
        if data is None or not self.available:
            return {}
        current = data.status.job.current_print
        return {"progress": current.progress, "file": current.file_name}


async def main() -> None:
    from oe_async.testing import Simulator  # noqa: PLC0415 (only the runnable demo needs it)

    async with Simulator() as sim, aiohttp.ClientSession() as shared_session:
        entry_data = {"connection": sim.app_connection().to_dict()}
        coordinator = OctoEverywhereCoordinator(
            shared_session,
            entry_data,
            app_id=sim.app_id,
            app_api_url=sim.app_api_url,
            allow_insecure_loopback=True,
        )
        sensor = PrinterStateSensor(coordinator)
        await coordinator.async_config_entry_first_refresh()
        print("state:", sensor.native_value, sensor.extra_state_attributes)
        sim.state.printer_online = False
        await coordinator.async_refresh()
        print("offline -> available:", sensor.available, "retry in", coordinator.next_refresh)
        sim.state.printer_online = True
        sim.revoke()
        await coordinator.async_refresh()
        print("revoked -> reauth requested:", coordinator.reauth_requested)
        print("diagnostics:", coordinator.diagnostics())
        await coordinator.async_shutdown()
        print("shared session still open:", not shared_session.closed)


if __name__ == "__main__":
    asyncio.run(main())
