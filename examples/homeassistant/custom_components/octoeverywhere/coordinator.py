"""One DataUpdateCoordinator per printer (config entry)."""

from dataclasses import dataclass
from typing import Final, override

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
    PrinterConnection,
    PrinterStatus,
    ReauthorizationRequiredError,
    SupporterPerksRequiredError,
)

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import error_message
from .const import DOMAIN, LOGGER, UPDATE_INTERVAL, UPDATE_TIMEOUT, USER_ACTION_INTERVAL

type OctoEverywhereConfigEntry = ConfigEntry[OctoEverywhereCoordinator]

#: Errors a person fixes outside Home Assistant, each with a repair issue of its own (the
#: issue id is ``f"{kind}_{entry_id}"``, its translation key ``f"{kind}_required"``).
REPAIR_ISSUES: Final[tuple[tuple[type[OctoEverywhereError], str], ...]] = (
    (SupporterPerksRequiredError, "supporter_perks"),  # 605: the owner re-subscribes
    (PluginUpdateRequiredError, "plugin_update"),  # 610: update the printer's plugin
    (NoBetaAccessError, "beta_access"),  # 611: the owner gets beta access
)


@dataclass(frozen=True, kw_only=True)
class OctoEverywhereData:
    """What one refresh produces."""

    info: ConnectionInfo
    status: PrinterStatus


def issue_id(entry: ConfigEntry, kind: str) -> str:
    """The repair issue of ``kind`` (see :data:`REPAIR_ISSUES`) for this entry."""
    return f"{kind}_{entry.entry_id}"


def supporter_issue_id(entry: ConfigEntry) -> str:
    """The repair issue raised for this entry when 605 answers."""
    return issue_id(entry, "supporter_perks")


def async_delete_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Delete every repair issue this entry may have raised."""
    for _, kind in REPAIR_ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry, kind))


class OctoEverywhereCoordinator(DataUpdateCoordinator[OctoEverywhereData]):
    """Polls the App Connection's info and the printer's status."""

    config_entry: OctoEverywhereConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: OctoEverywhereConfigEntry,
        client: OctoEverywhere,
        connection: AppConnection,
    ) -> None:
        """Create the coordinator; ``client`` is closed by the entry's unload."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=UPDATE_INTERVAL,
        )
        self.client = client
        # The plugin API and the App API always go through OctoEverywhere: "relay" keeps
        # the client from probing the printer's LAN address in the background.
        self.printer: PrinterConnection = client.printer(connection, route="relay")

    @override
    async def _async_update_data(self) -> OctoEverywhereData:
        # One deadline for the whole refresh, retries included (oe_async's timeout= is the
        # whole call's): a refresh ends well before the next one is due.
        deadline = self.hass.loop.time() + UPDATE_TIMEOUT
        try:
            info = await self.printer.app_api.info(timeout=UPDATE_TIMEOUT)
            if not info.is_online:
                # A valid connection whose printer is not connected to OctoEverywhere.
                raise UpdateFailed(translation_domain=DOMAIN, translation_key="printer_offline")
            status = await self._async_status(deadline - self.hass.loop.time())
        except ReauthorizationRequiredError as err:
            # 603/604/606: this App Connection will never work again.
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="reauth_required",
                translation_placeholders={"error": error_message(err)},
            ) from err
        except OctoEverywhereError as err:
            raise self._async_failure(err) from err
        async_delete_issues(self.hass, self.config_entry)
        return OctoEverywhereData(info=info, status=status)

    async def _async_status(self, timeout: float) -> PrinterStatus:
        """The printer's status; a 613 (no active print) is an idle printer, not a failure."""
        try:
            return await self.printer.plugin.status(timeout=max(timeout, 1.0))
        except NoActivePrintError:
            # The printer answered: there is just no print. Keep what the last status knew
            # (webcams, version, features), with the job idle and nothing measured.
            idle = JobStatus(state=JobState.IDLE)
            # Home Assistant types data as always set; it is None before the first success.
            previous: OctoEverywhereData | None = self.data
            if previous is None:
                return PrinterStatus(job=idle)
            return attrs.evolve(previous.status, job=idle)

    def _async_failure(self, err: OctoEverywhereError) -> Exception:
        """The Home Assistant exception for ``err`` (raising a repair issue when one fits).

        - 605/610/611: a repair issue that tells the user what to do, and ``UpdateFailed``
          polled every few minutes, so the entry recovers by itself once they did it (the
          issue is deleted on the next success);
        - any other error that needs a person (``needs_user_action``, e.g. the plugin's
          printer credentials, 789): ``ConfigEntryError``: at set-up Home Assistant stops
          retrying and shows the message; while running, entities stay unavailable;
        - the rest (temporary or not): ``UpdateFailed``, the next poll honouring
          ``Retry-After``; at set-up Home Assistant retries with backoff.
        """
        for error_type, kind in REPAIR_ISSUES:
            if isinstance(err, error_type):
                self._async_create_issue(kind, err)
                return UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key=f"{kind}_required",
                    retry_after=max(err.retry_after or 0.0, USER_ACTION_INTERVAL.total_seconds()),
                )
        if err.needs_user_action:
            return ConfigEntryError(
                translation_domain=DOMAIN,
                translation_key="user_action_required",
                translation_placeholders={"error": error_message(err)},
            )
        return UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="update_failed",
            translation_placeholders={"error": error_message(err)},
            retry_after=err.retry_after,
        )

    def _async_create_issue(self, kind: str, err: OctoEverywhereError) -> None:
        placeholders = {"printer": self.config_entry.title}
        learn_more_url: str | None = None
        if isinstance(err, SupporterPerksRequiredError):
            learn_more_url = placeholders["url"] = err.recovery_url
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id(self.config_entry, kind),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            learn_more_url=learn_more_url,
            translation_key=f"{kind}_required",
            translation_placeholders=placeholders,
        )
