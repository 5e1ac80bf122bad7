"""The App Connection portal: build its start URL, parse its completion URL. Pure functions.

Flow: generate a random ``state`` (``secrets.token_urlsafe(32)``), keep it with the user's
session and send the user to :func:`portal_url` with it; when they finish, the portal
redirects to your ``return_url`` (or its own completion page) with the connection's fields
appended as a query string, or as a fragment for some clients. Hand that URL and the state to
:meth:`oe_async.AppConnection.from_completion_url`.

The completion URL is attacker-reachable input (anyone can send a user to your return URL
with a query of their choosing), so parsing is strict: a completion key given twice, or in
both the query and the fragment with different values, is a :class:`PortalError`; ``state``
binds the completion to the flow this app started; and the relay URL must be on
octoeverywhere.com (checked by :class:`oe_async.AppConnection`).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from yarl import URL

from ._lan import local_lan_url
from .auth import BasicAuth, BearerAuth
from .errors import InvalidArgumentError, PortalError

__all__ = ["DEFAULT_PORTAL_URL", "STATE_KEY", "check_state", "parse_completion_url", "portal_url"]

_LOGGER = logging.getLogger(__package__)

DEFAULT_PORTAL_URL: Final = URL("https://octoeverywhere.com/appportal/v1/")
_APP_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_APP_NAME_MIN, _APP_NAME_MAX = 2, 60

# Keys are matched case-insensitively: older portal builds sent lower-case variants of the
# basic-auth keys, and tolerance costs nothing.
_REQUIRED: Final = ("success", "id", "url", "appApiToken")

#: The query key :func:`portal_url` adds to the return URL to carry the app's ``state``.
STATE_KEY: Final = "state"
_STATE_RE: Final = re.compile(r"^[A-Za-z0-9._~-]{16,512}$")

#: Every key this module reads (canonical spelling), keyed by its lower-case form. Only these
#: are checked for repeats: a return URL may carry the app's own parameters, repeated or not.
_KNOWN_KEYS: Final = {
    key.lower(): key
    for key in (
        *_REQUIRED,
        "printerName",
        "printerLastKnownLocalIp",
        "userPrinterAccessUrl",
        "authBasicHttpUser",
        "authBasicHttpPassword",
        "authBearerToken",
        "octoPrintApiKey",
        STATE_KEY,
    )
}


def check_app_id(app_id: str) -> str:
    """Validate an OctoEverywhere app id (non-empty, URL-safe) and return it."""
    if not isinstance(app_id, str) or not _APP_ID_RE.match(app_id):
        raise InvalidArgumentError(
            "app_id must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return app_id


def check_state(state: str) -> str:
    """Validate a flow ``state`` (16-512 URL-safe characters) and return it.

    Generate one per portal flow with ``secrets.token_urlsafe(32)``; it must be
    unpredictable, and it is compared in constant time.
    """
    if not isinstance(state, str) or not _STATE_RE.match(state):
        raise InvalidArgumentError(
            "state must be 16-512 characters of letters, digits, '.', '_', '~' or '-' "
            "(use secrets.token_urlsafe(32))"
        )
    return state


def portal_url(
    app_id: str,
    *,
    return_url: str | URL | None = None,
    state: str | None = None,
    printer_id: str | None = None,
    app_logo_url: str | URL | None = None,
    octoprint_api_key_app_name: str | None = None,
    base_url: str | URL = DEFAULT_PORTAL_URL,
) -> URL:
    """Return the portal start URL that asks the user to connect a printer to this app.

    Args:
        app_id: your OctoEverywhere app id.
        return_url: where the portal sends the user when done (any absolute URL, custom
            schemes included, so mobile apps can use a deep link); the connection's fields
            are appended to it. Default: the portal's own completion page. Its own query must
            not use the completion keys (``id``, ``url``, ``success``...) or ``state``.
        state: a random value (``secrets.token_urlsafe(32)``) the app keeps for this flow;
            added to ``return_url``'s query as ``state=...`` so it comes back with the
            portal's fields. Pass the same value to
            :meth:`oe_async.AppConnection.from_completion_url`. Needs ``return_url``.
        printer_id: pre-select a printer (a local OctoPrint exposes its id at
            ``GET /api/plugin/octoeverywhere``).
        app_logo_url: an https logo shown during the flow.
        octoprint_api_key_app_name: ask the portal to also create an OctoPrint API key under
            this app name (2-60 characters).
        base_url: the portal, overridable for tests.

    """
    query: dict[str, str] = {"appid": check_app_id(app_id)}
    if state is not None and return_url is None:
        raise InvalidArgumentError(
            "state needs return_url: the state travels in the return URL's query"
        )
    if return_url is not None:
        try:
            ret = URL(str(return_url))
        except ValueError:
            raise InvalidArgumentError("return_url is not a valid URL") from None
        if not ret.absolute or not ret.scheme:
            raise InvalidArgumentError("return_url must be an absolute URL")
        reserved = sorted(
            {_KNOWN_KEYS[k.lower()] for k in ret.query if k.lower() in _KNOWN_KEYS}
            - ({STATE_KEY} if state is None else set())
        )
        if reserved:
            raise InvalidArgumentError(
                f"return_url's query must not use the portal's completion keys: "
                f"{', '.join(reserved)}"
            )
        if state is not None:
            ret = ret.update_query({STATE_KEY: check_state(state)})
        query["returnUrl"] = str(ret)
    if printer_id is not None:
        if not printer_id.strip():
            raise InvalidArgumentError("printer_id must not be empty")
        query["printerId"] = printer_id
    if app_logo_url is not None:
        logo = URL(str(app_logo_url))
        if logo.scheme != "https" or not logo.host:
            raise InvalidArgumentError("app_logo_url must be an absolute https URL")
        query["appLogoUrl"] = str(logo)
    if octoprint_api_key_app_name is not None:
        name = octoprint_api_key_app_name.strip()
        if not _APP_NAME_MIN <= len(name) <= _APP_NAME_MAX:
            raise InvalidArgumentError(
                f"octoprint_api_key_app_name must be 2-60 characters (got {len(name)})"
            )
        query["octoPrintApiKeyAppName"] = name
    # yarl percent-encodes each value, so a return URL's own query survives intact.
    return URL(str(base_url)).with_query(query)


def _completion_params(url: str | URL) -> tuple[dict[str, str], bool]:
    """Collect the known completion keys from the query string and the fragment.

    Returns the values by lower-case key and whether the URL carried any parameter at all.
    A known key given twice in one part, or in both parts with different values, is a
    :class:`PortalError` naming the key (never a value): an attacker who controls the
    return URL's query must not be able to override what the portal appended.
    """
    text = str(url).strip()
    base, _, fragment = text.partition("#")
    _, _, query = base.partition("?")
    parts: list[dict[str, str]] = []
    any_params = False
    for part in (query, fragment.lstrip("?")):
        found: dict[str, str] = {}
        for key, value in parse_qsl(part, keep_blank_values=True):
            any_params = True
            lowered = key.lower()
            name = _KNOWN_KEYS.get(lowered)
            if name is None:
                continue
            if lowered in found:
                raise PortalError(f"The completion URL gives {name} more than once")
            found[lowered] = value
        parts.append(found)
    params, in_fragment = parts
    for lowered, value in in_fragment.items():
        if params.setdefault(lowered, value) != value:
            raise PortalError(
                f"The completion URL gives {_KNOWN_KEYS[lowered]} in both the query and the "
                "fragment, with different values"
            )
    return params, any_params


def _check_state(params: Mapping[str, str], expected: str) -> None:
    given = params.get(STATE_KEY)
    if not given:
        raise PortalError(
            "The completion URL has no state: it does not come from a portal flow this app "
            "started; start the flow again"
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise PortalError(
            "The completion URL's state does not match the flow this app started; "
            "start the flow again"
        )


def _truthy(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    return None


def parse_completion_url(url: str | URL, *, state: str | None = None) -> dict[str, Any]:
    """Parse the portal's completion URL into :class:`oe_async.AppConnection` fields.

    Raises :class:`PortalError` when a completion key is given twice (or differently in the
    query and the fragment), when ``state`` is given and the URL's is missing or different,
    when ``success`` is false, when required keys are missing (all of them are named) or
    when no credentials are present. The message never contains a value from the URL.
    """
    expected = None if state is None else check_state(state)
    params, any_params = _completion_params(url)
    if not any_params:
        raise PortalError("The completion URL carries no parameters (no query or fragment)")
    if expected is not None:
        _check_state(params, expected)

    success = params.get("success")
    if success is not None and _truthy(success) is False:
        raise PortalError(
            "The user did not finish connecting the printer (success=false); "
            "send them through the portal again"
        )

    missing = [key for key in _REQUIRED if not params.get(key.lower())]
    user = params.get("authbasichttpuser")
    password = params.get("authbasichttppassword")
    bearer = params.get("authbearertoken")
    if not bearer and not (user and password):
        if user and not password:
            missing.append("authBasicHttpPassword")
        elif password and not user:
            missing.append("authBasicHttpUser")
        else:
            missing.append("authBearerToken or authBasicHttpUser/authBasicHttpPassword")
    if missing:
        raise PortalError(f"The completion URL is missing: {', '.join(missing)}")
    if _truthy(params["success"]) is not True:
        raise PortalError("The completion URL's success value is not true or false")

    try:
        auth: BasicAuth | BearerAuth = (
            BearerAuth(bearer) if bearer else BasicAuth(user or "", password or "")
        )
    except InvalidArgumentError as err:  # the message names the field, never the value
        raise PortalError(f"The completion URL's credentials are not usable: {err}") from None
    return {
        "url": params["url"],
        "auth": auth,
        "app_token": params["appapitoken"],
        "id": params["id"],
        "printer_name": params.get("printername") or None,
        "local_ip": _local_ip(params.get("printerlastknownlocalip")),
        "octoprint_api_key": params.get("octoprintapikey") or None,
    }


def _local_ip(value: str | None) -> str | None:
    """The portal's last known LAN IP, when it is a local address (else None, logged)."""
    if not value:
        return None
    try:
        url = local_lan_url(value, what="the completion URL's printerLastKnownLocalIp")
    except InvalidArgumentError as err:
        _LOGGER.warning("%s; ignored", err)
        return None
    return value.strip() if url is not None else None


def completion_query(fields: Mapping[str, str]) -> str:
    """Encode completion fields as the portal does (used by the simulator and tests)."""
    return str(URL.build(query=dict(fields)).query_string)
