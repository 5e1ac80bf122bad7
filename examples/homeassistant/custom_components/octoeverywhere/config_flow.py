"""Config flow: the OctoEverywhere portal, then the completion URL the user pastes back."""

from collections.abc import Mapping
import hashlib
import secrets
from typing import Any

from oe_async import (
    AppConnection,
    ConnectionInfo,
    OctoEverywhereError,
    PortalError,
    ReauthorizationRequiredError,
    SupporterPerksRequiredError,
    portal_url,
)
import probatio

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from .api import async_create_client, connection_from_completion_url, error_message
from .const import (
    APP_ID,
    CONF_COMPLETION_URL,
    CONF_CONNECTION,
    DOMAIN,
    FLOW_TIMEOUT,
    LOGGER,
    PORTAL_COMPLETE_URL,
)

COMPLETION_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_COMPLETION_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL, autocomplete="off")
        )
    }
)


def printer_unique_id(info: ConnectionInfo) -> str | None:
    """A stable id for the printer behind an App Connection.

    A new App Connection (after re-authentication) has a new id, URL and credentials, but
    the same printer page; its hash identifies the printer without storing the URL.
    """
    if not info.user_facing_url:
        return None
    return hashlib.sha256(info.user_facing_url.encode()).hexdigest()[:32]


class OctoEverywhereConfigFlow(ConfigFlow, domain=DOMAIN):
    """Connect a printer through the OctoEverywhere App Connection portal."""

    VERSION = 1

    def __init__(self) -> None:
        """One random state per flow: a pasted URL from another flow is refused."""
        self._state = secrets.token_urlsafe(32)

    def _portal_placeholders(self) -> dict[str, str]:
        start = portal_url(APP_ID, return_url=PORTAL_COMPLETE_URL, state=self._state)
        return {"portal_url": str(start)}

    async def _async_validate(
        self, user_input: dict[str, Any], errors: dict[str, str], placeholders: dict[str, str]
    ) -> tuple[AppConnection, ConnectionInfo] | None:
        """Parse the completion URL and check it with ``info()``; fill ``errors`` if not."""
        try:
            connection = connection_from_completion_url(
                user_input[CONF_COMPLETION_URL], self._state
            )
        except PortalError as err:
            errors[CONF_COMPLETION_URL] = "invalid_completion_url"
            placeholders["error"] = error_message(err)
            return None
        client = async_create_client(self.hass)
        try:
            printer = client.printer(connection, route="relay")
            info = await printer.app_api.info(timeout=FLOW_TIMEOUT)
        except ReauthorizationRequiredError:
            errors["base"] = "invalid_auth"
        except SupporterPerksRequiredError as err:
            errors["base"] = "supporter_perks_required"
            placeholders["url"] = err.recovery_url
        except OctoEverywhereError as err:
            errors["base"] = "cannot_connect"
            placeholders["error"] = error_message(err)
        except Exception:  # noqa: BLE001 (a flow must answer the user, whatever happened)
            LOGGER.exception("Unexpected exception")
            errors["base"] = "unknown"
        else:
            if printer_unique_id(info) is None:
                errors["base"] = "no_printer_id"
                return None
            return connection, info
        finally:
            await client.close()
        return None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the portal link and ask for the completion URL."""
        errors: dict[str, str] = {}
        placeholders = self._portal_placeholders()
        if user_input is not None and (
            result := await self._async_validate(user_input, errors, placeholders)
        ):
            connection, info = result
            await self.async_set_unique_id(printer_unique_id(info))
            self._abort_if_unique_id_configured()
            return self.async_create_entry(
                title=info.printer_name or connection.printer_name or "OctoEverywhere",
                data={CONF_CONNECTION: connection.to_dict()},
            )
        return self._async_show_completion_form("user", errors, placeholders)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The App Connection was revoked, expired or refused (603/604/606)."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Connect the same printer again through the portal."""
        return await self._async_step_reconnect(
            "reauth_confirm", self._get_reauth_entry(), user_input
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Give a working entry a new App Connection for the same printer, when the user asks.

        For a connection the user revoked on purpose, or one made again in the portal: the
        entry, its entities and their history stay, only the stored connection changes.
        """
        return await self._async_step_reconnect(
            "reconfigure", self._get_reconfigure_entry(), user_input
        )

    async def _async_step_reconnect(
        self, step_id: str, entry: ConfigEntry, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Re-authentication and reconfiguration: a new App Connection for ``entry``'s printer.

        A connection to another printer aborts (``wrong_printer``); the entry is otherwise
        updated and reloaded (``reauth_successful`` / ``reconfigure_successful``).
        """
        errors: dict[str, str] = {}
        placeholders = self._portal_placeholders()
        if user_input is not None and (
            result := await self._async_validate(user_input, errors, placeholders)
        ):
            connection, info = result
            await self.async_set_unique_id(printer_unique_id(info))
            self._abort_if_unique_id_mismatch(reason="wrong_printer")
            return self.async_update_reload_and_abort(
                entry, data_updates={CONF_CONNECTION: connection.to_dict()}
            )
        placeholders["printer"] = entry.title
        return self._async_show_completion_form(step_id, errors, placeholders)

    def _async_show_completion_form(
        self, step_id: str, errors: dict[str, str], placeholders: dict[str, str]
    ) -> ConfigFlowResult:
        """The form with the portal link and the completion URL field."""
        placeholders.setdefault("error", "")
        placeholders.setdefault("url", "")
        return self.async_show_form(
            step_id=step_id,
            data_schema=COMPLETION_SCHEMA,
            errors=errors,
            description_placeholders=placeholders,
        )
