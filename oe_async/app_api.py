"""The OctoEverywhere App APIs (``AppToken`` header), called through the printer's funnel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._convert import structure
from .errors import InvalidArgumentError
from .models import ConnectionInfo, LiveLink

if TYPE_CHECKING:
    from .connection import PrinterConnection

INFO_PATH: Final = "/api/appconnection/info"
LIVE_LINK_PATH: Final = "/api/live/createfromappconnection"
MIN_LIVE_LINK_HOURS: Final = 1
MAX_LIVE_LINK_HOURS: Final = 17520


async def get_info(printer: PrinterConnection) -> ConnectionInfo:
    """``GET /api/appconnection/info`` decoded into :class:`ConnectionInfo`."""
    data = await printer._app_api("GET", INFO_PATH)
    return structure(data, ConnectionInfo, what="Info API answer")


async def create_live_link(
    printer: PrinterConnection, expiration_hours: float, *, end_when_print_complete: bool
) -> LiveLink:
    """``POST /api/live/createfromappconnection`` after validating the arguments."""
    if isinstance(expiration_hours, bool) or not isinstance(expiration_hours, int | float):
        raise InvalidArgumentError("expiration_hours must be a number of hours")
    if not MIN_LIVE_LINK_HOURS <= expiration_hours <= MAX_LIVE_LINK_HOURS:
        raise InvalidArgumentError(
            f"expiration_hours must be between {MIN_LIVE_LINK_HOURS} and "
            f"{MAX_LIVE_LINK_HOURS} (got {expiration_hours})"
        )
    if not isinstance(end_when_print_complete, bool):
        raise InvalidArgumentError("end_when_print_complete must be True or False")
    body = {
        "ExpirationHours": expiration_hours,
        "EndWhenCurrentPrintIsComplete": end_when_print_complete,
    }
    data = await printer._app_api("POST", LIVE_LINK_PATH, json=body)
    return structure(data, LiveLink, what="Live Link answer")
