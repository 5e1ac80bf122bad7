"""The one place the integration builds oe_async objects."""

from typing import Any

from oe_async import AppConnection, OctoEverywhere, OctoEverywhereError, redact

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import APP_ID

#: Extra ``OctoEverywhere`` options. Empty in production; the tests point the client at
#: ``oe_async.testing``'s simulator with ``app_api_url`` and ``allow_insecure_loopback``.
CLIENT_OPTIONS: dict[str, Any] = {}


def async_create_client(hass: HomeAssistant) -> OctoEverywhere:
    """An OctoEverywhere client on Home Assistant's shared session.

    The session is borrowed: ``OctoEverywhere.close()`` cancels the client's own tasks
    and never closes the session or touches its default headers.
    """
    return OctoEverywhere(APP_ID, session=async_get_clientsession(hass), **CLIENT_OPTIONS)


def connection_from_completion_url(url: str, state: str) -> AppConnection:
    """Parse the portal's completion URL; ``state`` binds it to this flow.

    Raises ``oe_async.PortalError`` (its message names the problem, never a secret).
    """
    return AppConnection.from_completion_url(
        url.strip(),
        state=state,
        allow_insecure_loopback=CLIENT_OPTIONS.get("allow_insecure_loopback", False),
    )


def error_message(err: OctoEverywhereError) -> str:
    """The user-facing sentence of ``err`` (``err.message``: never a URL or a secret).

    ``redact()`` is a second line of defence: a plugin command error's message is the
    printer plugin's own text, in which oe_async hides secret-looking values but keeps URLs.
    """
    return str(redact(err.message))
