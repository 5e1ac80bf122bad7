"""Diagnostics that are safe to paste into a bug report.

:func:`redact` walks any JSON-like structure and hides secrets by key name (passwords,
tokens, keys, Authorization...) and App Connection URLs by value (their unique subdomain).
``PrinterConnection.diagnostics()`` builds on it.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from .auth import redact_url

if TYPE_CHECKING:
    from .connection import PrinterConnection

__all__ = ["REDACTED", "redact"]

REDACTED: Final = "**REDACTED**"
#: Keys whose values are secrets, whatever their spelling (AppToken, app_api_token, X-Api-Key).
_SECRET_KEY: Final = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|auth[_-]?basic|bearer|cookie|"
    r"credential|^auth$",
    re.IGNORECASE,
)
_URL: Final = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def redact(data: Any) -> Any:
    """A copy of ``data`` with secrets replaced by ``**REDACTED**``.

    Mapping values under secret-looking keys are replaced whole; strings that look like
    URLs keep only their scheme, redacted host and port. Lists, tuples and nested mappings
    are walked; other values are returned as they are.
    """
    if isinstance(data, Mapping):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) and value else redact(value)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(item) for item in data]
    if isinstance(data, str) and _URL.match(data):
        return redact_url(data)
    return data


def printer_diagnostics(printer: PrinterConnection) -> dict[str, Any]:
    """Implement :meth:`PrinterConnection.diagnostics`."""
    from . import __version__  # noqa: PLC0415 (package init imports this module)

    conn = printer.app_connection
    status = printer._plugin.last_status if printer._plugin is not None else None
    limits = printer.limits
    report: dict[str, Any] = redact(
        {
            "oe_async": __version__,
            "aiohttp": aiohttp.__version__,
            "python": sys.version.split()[0],
            # Not platform.platform(): its first call runs `uname -p` in a subprocess,
            # a blocking call on the event loop.
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
            "app_id": printer.client.app_id,
            "relay_url": str(conn.url),
            "auth_type": type(conn.auth).__name__,
            "has_octoprint_api_key": conn.octoprint_api_key is not None,
            "printer_name": conn.printer_name,
            "route_policy": printer.route_policy.value,
            "route": printer.route.value,
            "lan_url": str(printer.lan_url) if printer.lan_url is not None else None,
            "limits": None
            if limits is None
            else {
                "max_download_bytes": limits.max_download_bytes,
                "max_upload_bytes": limits.max_upload_bytes,
                "max_webcam_stream_seconds": limits.max_webcam_stream_seconds,
            },
            "last_status": None
            if status is None
            else {
                "job_state": status.job.state.value,
                "features": int(status.features),
                "platform_version": status.platform_version,
            },
            "last_error": printer._last_error,
        }
    )
    return report
