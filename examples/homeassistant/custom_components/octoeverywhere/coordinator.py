"""One DataUpdateCoordinator per printer (config entry)."""

from dataclasses import dataclass
from typing import override

from oe_async import (
    AppConnection,
    ConnectionInfo,
    OctoEverywhere,
    OctoEverywhereError,
    PrinterConnection,
    PrinterStatus,
    ReauthorizationRequiredError,
    SupporterPerksRequiredError,
)

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import error_message
from .const import DOMAIN, LOGGER, UPDATE_INTERVAL

type OctoEverywhereConfigEntry = ConfigEntry[OctoEverywhereCoordinator]


@dataclass(frozen=True, kw_only=True)
class OctoEverywhereData:
    """What one refresh produces."""

    info: ConnectionInfo
    status: PrinterStatus


def supporter_issue_id(entry: ConfigEntry) -> str:
    """The repair issue raised for this entry when 605 answers."""
    return f"supporter_perks_{entry.entry_id}"


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
        try:
            info = await self.printer.app_api.info()
            if not info.is_online:
                # A valid connection whose printer is not connected to OctoEverywhere.
                raise UpdateFailed(translation_domain=DOMAIN, translation_key="printer_offline")
            status = await self.printer.plugin.status()
        except ReauthorizationRequiredError as err:
            # 603/604/606: this App Connection will never work again.
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="reauth_required",
                translation_placeholders={"error": error_message(err)},
            ) from err
        except SupporterPerksRequiredError as err:
            # 605: works again once the owner re-subscribes; tell them where.
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                supporter_issue_id(self.config_entry),
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                learn_more_url=err.recovery_url,
                translation_key="supporter_perks_required",
                translation_placeholders={
                    "printer": self.config_entry.title,
                    "url": err.recovery_url,
                },
            )
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="supporter_perks_required",
                retry_after=err.retry_after,
            ) from err
        except OctoEverywhereError as err:
            # TODO(oe_async): once errors carry needs_user_action, permanent errors that
            # no retry can fix (other than 603/604/606 above) could raise ConfigEntryError.
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"error": error_message(err)},
                retry_after=err.retry_after,
            ) from err
        ir.async_delete_issue(self.hass, DOMAIN, supporter_issue_id(self.config_entry))
        return OctoEverywhereData(info=info, status=status)
