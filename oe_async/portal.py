"""The App Connection portal: build its start URL, parse its completion URL. Pure functions.

Flow: send the user to :func:`portal_url`; when they finish, the portal redirects to your
``return_url`` (or its own completion page) with the connection's fields appended as a query
string, or as a fragment for some clients. Hand that URL to
:meth:`oe_async.AppConnection.from_completion_url`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from yarl import URL

from .auth import BasicAuth, BearerAuth
from .errors import InvalidArgumentError, PortalError

__all__ = ["DEFAULT_PORTAL_URL", "parse_completion_url", "portal_url"]

DEFAULT_PORTAL_URL: Final = URL("https://octoeverywhere.com/appportal/v1/")
_APP_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_APP_NAME_MIN, _APP_NAME_MAX = 2, 60

# Keys are matched case-insensitively: older portal builds sent lower-case variants of the
# basic-auth keys, and tolerance costs nothing.
_REQUIRED: Final = ("success", "id", "url", "appApiToken")


def check_app_id(app_id: str) -> str:
    """Validate an OctoEverywhere app id (non-empty, URL-safe) and return it."""
    if not isinstance(app_id, str) or not _APP_ID_RE.match(app_id):
        raise InvalidArgumentError(
            "app_id must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return app_id


def portal_url(
    app_id: str,
    *,
    return_url: str | URL | None = None,
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
            are appended to it. Default: the portal's own completion page.
        printer_id: pre-select a printer (a local OctoPrint exposes its id at
            ``GET /api/plugin/octoeverywhere``).
        app_logo_url: an https logo shown during the flow.
        octoprint_api_key_app_name: ask the portal to also create an OctoPrint API key under
            this app name (2-60 characters).
        base_url: the portal, overridable for tests.

    """
    query: dict[str, str] = {"appid": check_app_id(app_id)}
    if return_url is not None:
        ret = URL(str(return_url))
        if not ret.absolute or not ret.scheme:
            raise InvalidArgumentError("return_url must be an absolute URL")
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


def _completion_params(url: str | URL) -> dict[str, str]:
    """Collect the completion parameters from the query string and the fragment."""
    text = str(url).strip()
    base, _, fragment = text.partition("#")
    _, _, query = base.partition("?")
    params: dict[str, str] = {}
    # Fragment first so that query-string values win when both carry a key.
    for part in (fragment.lstrip("?"), query):
        for key, value in parse_qsl(part, keep_blank_values=True):
            params[key.lower()] = value
    return params


def _truthy(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    return None


def parse_completion_url(url: str | URL) -> dict[str, Any]:
    """Parse the portal's completion URL into :class:`~oe_async.AppConnection` fields.

    Raises :class:`PortalError` when ``success`` is false, when required keys are missing
    (all of them are named) or when no credentials are present. The message never contains
    a value from the URL.
    """
    params = _completion_params(url)
    if not params:
        raise PortalError("The completion URL carries no parameters (no query or fragment)")

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
        "local_ip": params.get("printerlastknownlocalip") or None,
        "octoprint_api_key": params.get("octoprintapikey") or None,
    }


def completion_query(fields: Mapping[str, str]) -> str:
    """Encode completion fields as the portal does (used by the simulator and tests)."""
    return str(URL.build(query=dict(fields)).query_string)
