"""One DataUpdateCoordinator per printer (config entry)."""

from dataclasses import dataclass, field
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
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import error_message
from .const import (
    DOMAIN,
    LOGGER,
    MAX_RETRY_AFTER,
    UPDATE_INTERVAL,
    UPDATE_TIMEOUT,
    USER_ACTION_INTERVAL,
)

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
    """What one refresh produces.

    Two refreshes compare equal when nothing Home Assistant shows changed: the coordinator
    (``always_update=False``) then leaves every state alone. OctoEverywhere's own part of
    the status (``status.octoeverywhere``: Gadget's timers tick on every poll) is kept, for
    diagnostics, but not compared: no entity shows it.
    """

    info: ConnectionInfo
    status: PrinterStatus = field(compare=False)
    #: ``status`` without ``octoeverywhere``: what equality looks at.
    shown_status: PrinterStatus = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Derive the compared status."""
        object.__setattr__(self, "shown_status", attrs.evolve(self.status, octoeverywhere=None))


def issue_id(entry: ConfigEntry, kind: str) -> str:
    """The repair issue of ``kind`` (see :data:`REPAIR_ISSUES`) for this entry."""
    return f"{kind}_{entry.entry_id}"


def supporter_issue_id(entry: ConfigEntry) -> str:
    """The repair issue raised for this entry when 605 answers."""
    return issue_id(entry, "supporter_perks")


@callback
def async_delete_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Delete every repair issue this entry may have raised."""
    for _, kind in REPAIR_ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry, kind))


def capped_retry_after(seconds: float | None) -> float | None:
    """``Retry-After`` as the next poll's delay, at most :data:`MAX_RETRY_AFTER`."""
    if seconds is None:
        return None
    return min(seconds, MAX_RETRY_AFTER.total_seconds())


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
            # Entities are told only when the data changed (OctoEverywhereData compares
            # what they show), not on every poll.
            always_update=False,
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
            status = await self._async_status(deadline)
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

    async def _async_status(self, deadline: float) -> PrinterStatus:
        """The printer's status; a 613 (no active print) is an idle printer, not a failure."""
        try:
            return await self.printer.plugin.status(timeout=self._time_left(deadline))
        except NoActivePrintError:
            return await self._async_idle_status(deadline)

    async def _async_idle_status(self, deadline: float) -> PrinterStatus:
        """The status of a printer that answered 613: idle, with what is known of it.

        What the last status knew (webcams, version, features) stays, the job is idle and
        nothing is measured. When no status has listed the webcams yet (613 since set-up),
        the plugin's own list is asked: it does not depend on a print, so the cameras need
        not wait for one.
        """
        # Home Assistant types data as always set; it is None before the first success.
        previous: OctoEverywhereData | None = self.data
        known = PrinterStatus() if previous is None else previous.status
        status = attrs.evolve(known, job=JobStatus(state=JobState.IDLE))
        if status.webcams is not None:
            return status
        try:
            webcams = await self.printer.plugin.webcams(timeout=self._time_left(deadline))
        except NoActivePrintError:
            return status  # still nothing: the next refresh asks again
        return attrs.evolve(status, webcams=webcams)

    def _time_left(self, deadline: float) -> float:
        """What is left of this refresh's deadline for the next call (at least a second)."""
        return max(deadline - self.hass.loop.time(), 1.0)

    @callback
    def async_update_device(self) -> None:
        """Create the printer's device, or bring its name and software version up to date.

        Called after the first refresh and whenever the data changes, so the device follows
        the printer (a version known only once the plugin reports it, a renamed printer).
        """
        entry = self.config_entry
        assert entry.unique_id is not None  # set by the config flow
        data = self.data
        dr.async_get(self.hass).async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={(DOMAIN, entry.unique_id)},
            name=data.info.printer_name or entry.title,
            manufacturer="OctoEverywhere",
            sw_version=data.status.platform_version,
            configuration_url=data.info.user_facing_url,
        )

    def _async_failure(self, err: OctoEverywhereError) -> Exception:
        """The Home Assistant exception for ``err`` (raising a repair issue when one fits).

        - 605/610/611: a repair issue that tells the user what to do, and ``UpdateFailed``
          polled every few minutes, so the entry recovers by itself once they did it (the
          issue is deleted on the next success);
        - any other error that needs a person (``needs_user_action``, e.g. the plugin's
          printer credentials, 789): ``ConfigEntryError``: at set-up Home Assistant stops
          retrying and shows the message; while running, entities stay unavailable;
        - the rest (temporary or not): ``UpdateFailed``, the next poll honouring
          ``Retry-After`` up to :data:`MAX_RETRY_AFTER`; at set-up Home Assistant retries
          with backoff.
        """
        for error_type, kind in REPAIR_ISSUES:
            if isinstance(err, error_type):
                self._async_create_issue(kind, err)
                return UpdateFailed(
                    translation_domain=DOMAIN,
                    translation_key=f"{kind}_required",
                    retry_after=capped_retry_after(
                        max(err.retry_after or 0.0, USER_ACTION_INTERVAL.total_seconds())
                    ),
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
            retry_after=capped_retry_after(err.retry_after),
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
