"""A Home Assistant-style integration built on oe_async, runnable without Home Assistant.

The real integration, tested inside Home Assistant, is ``examples/homeassistant/`` (see
``docs/homeassistant.md``); this file keeps the same coordinator logic runnable anywhere.

It follows the patterns an HA integration uses, with small stand-ins for HA's classes:

* the app's shared aiohttp session is *borrowed*, never closed by the integration;
* a coordinator refreshes on an interval, each refresh within a deadline (``timeout=`` on
  every call, retries included) shorter than the interval;
* it reads the two flags every oe_async error has, and shows ``err.message``:

  - a temporary failure (printer offline, a relay or network hiccup) marks entities
    unavailable and schedules the next try using the error's ``retry_after`` - it never
    crashes set-up (``ConfigEntryNotReady`` on the first refresh);
  - 603/604/606 (``ReauthorizationRequiredError``) stop polling and ask for
    re-authorisation (``ConfigEntryAuthFailed``);
  - 605/610/611 raise a repair issue (605 links the recovery URL) and look again every few
    minutes: a person has to act, and the entry recovers by itself once they have;
  - any other error that ``needs_user_action`` is a ``ConfigEntryError``: set-up is not
    retried, the message is shown;
  - 613 (no active print) is not a failure: the printer is idle;

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
    JobState,
    JobStatus,
    NoActivePrintError,
    NoBetaAccessError,
    OctoEverywhere,
    OctoEverywhereError,
    PluginUpdateRequiredError,
    PrinterStatus,
    ReauthorizationRequiredError,
    SupporterPerksRequiredError,
    redact,
)

UPDATE_INTERVAL = timedelta(seconds=30)
#: One refresh's deadline (both calls, oe_async's retries included), inside the interval.
UPDATE_TIMEOUT = 20.0
#: How often to look again while a person has to act (605/610/611).
USER_ACTION_INTERVAL = timedelta(minutes=5)
#: Errors a person fixes outside the app, each with a repair issue of its own.
REPAIR_ISSUES: tuple[tuple[type[OctoEverywhereError], str], ...] = (
    (SupporterPerksRequiredError, "supporter_perks"),
    (PluginUpdateRequiredError, "plugin_update"),
    (NoBetaAccessError, "beta_access"),
)


class ConfigEntryNotReady(Exception):
    """HA: set-up failed temporarily; HA retries later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigEntryAuthFailed(Exception):
    """HA: credentials are no longer valid; HA starts the re-authentication flow."""


class ConfigEntryError(Exception):
    """HA: set-up failed in a way no retry fixes; HA shows the message and does not retry."""


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
        self.setup_error = False
        #: HA: the repair issue raised ("supporter_perks", "plugin_update", "beta_access").
        self.repair_kind: str | None = None
        #: What that issue shows: the recovery URL (605) or the error's message.
        self.repair_issue: str | None = None

    async def _async_update_data(self) -> PrinterData:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UPDATE_TIMEOUT
        try:
            info = await self.printer.app_api.info(timeout=UPDATE_TIMEOUT)
            if not info.is_online:
                raise UpdateFailed("The printer is offline.")  # a valid connection: retry later
            status = await self._status(max(1.0, deadline - loop.time()))
        except ReauthorizationRequiredError as err:
            raise ConfigEntryAuthFailed(err.message) from err
        except OctoEverywhereError as err:
            raise self._failure(err) from err
        self.repair_kind = self.repair_issue = None
        return PrinterData(info=info, status=status)

    async def _status(self, timeout: float) -> PrinterStatus:
        try:
            return await self.printer.plugin.status(timeout=timeout)
        except NoActivePrintError:
            # 613: the printer answered, there is no print. Not a failure of the poll.
            idle = JobStatus(state=JobState.IDLE)
            if self.data is None:
                return PrinterStatus(job=idle)
            return attrs.evolve(self.data.status, job=idle)

    def _failure(self, err: OctoEverywhereError) -> Exception:
        """The HA exception for ``err`` (raising a repair issue when one fits)."""
        for error_type, kind in REPAIR_ISSUES:
            if isinstance(err, error_type):
                # HA: a repair issue; polled slowly, it goes away once the person acted.
                self.repair_kind = kind
                if isinstance(err, SupporterPerksRequiredError):
                    self.repair_issue = err.recovery_url
                else:
                    self.repair_issue = err.message
                wait = max(err.retry_after or 0.0, USER_ACTION_INTERVAL.total_seconds())
                return UpdateFailed(err.message, wait)
        if err.needs_user_action:  # nothing but a person fixes it: do not retry set-up
            return ConfigEntryError(err.message)
        return UpdateFailed(err.message, err.retry_after)  # temporary, or neither

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
        except ConfigEntryError as err:
            # HA: at set-up, no retry; while running, entities unavailable, polling goes on.
            self.last_update_success = False
            self.last_error = str(err)
            self.setup_error = True
            self.next_refresh = UPDATE_INTERVAL
        else:
            self.last_update_success = True
            self.last_error = None
            self.setup_error = False
            self.next_refresh = UPDATE_INTERVAL

    async def async_config_entry_first_refresh(self) -> None:
        """HA's first refresh: a temporary failure means "not ready, retry later"."""
        await self.async_refresh()
        if self.reauth_requested:
            raise ConfigEntryAuthFailed(self.last_error or "re-authentication needed")
        if self.setup_error:
            raise ConfigEntryError(self.last_error or "set-up failed")
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
