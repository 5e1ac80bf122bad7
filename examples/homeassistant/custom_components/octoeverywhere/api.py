"""The one place the integration builds oe_async objects."""

from typing import Any

from oe_async import AppConnection, OctoEverywhere, OctoEverywhereError, PortalError, redact
from yarl import URL

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import APP_ID, PORTAL_COMPLETE_URL

#: Extra ``OctoEverywhere`` options. Empty in production; the tests point the client at
#: ``oe_async.testing``'s simulator with ``app_api_url`` and ``allow_insecure_loopback``.
CLIENT_OPTIONS: dict[str, Any] = {}


def async_create_client(hass: HomeAssistant) -> OctoEverywhere:
    """An OctoEverywhere client on Home Assistant's shared session.

    The session is borrowed: ``OctoEverywhere.close()`` cancels the client's own tasks
    and never closes the session or touches its default headers.
    """
    return OctoEverywhere(APP_ID, session=async_get_clientsession(hass), **CLIENT_OPTIONS)


def _is_completion_page(url: str) -> bool:
    """True when ``url`` is the portal's own completion page (``PORTAL_COMPLETE_URL``).

    The same scheme, host and port (an ``https`` page on ``octoeverywhere.com``, no user
    info) and the same path; only the query and fragment, which carry the fields, differ.
    """
    expected = URL(PORTAL_COMPLETE_URL)
    try:
        page = URL(url)
        return (
            page.absolute
            and page.raw_user is None
            and page.origin() == expected.origin()
            and page.path.rstrip("/") == expected.path
        )
    except ValueError:  # not a URL at all (yarl refuses it)
        return False


def connection_from_completion_url(url: str, state: str) -> AppConnection:
    """Parse the portal's completion URL; ``state`` binds it to this flow.

    The page itself must be OctoEverywhere's completion page, not only the relay URL it
    carries (which oe_async checks). Raises ``oe_async.PortalError`` (its message names
    the problem, never a secret or the pasted address).
    """
    url = url.strip()
    if not _is_completion_page(url):
        raise PortalError(
            "The address is not OctoEverywhere's own completion page "
            "(octoeverywhere.com/appportal/v1/complete over https)"
        )
    return AppConnection.from_completion_url(
        url,
        state=state,
        allow_insecure_loopback=CLIENT_OPTIONS.get("allow_insecure_loopback", False),
    )


def error_message(err: OctoEverywhereError) -> str:
    """The user-facing sentence of ``err``, for an entry's reason, a form or a log.

    ``err.message`` can hold server text (a plugin command error's message is the printer
    plugin's own words): oe_async scrubs the connection's own secrets from it, and
    ``redact()`` hides every URL and ``Authorization`` value that is left. Every piece of
    server text the integration shows or logs goes through here.
    """
    return str(redact(err.message))
