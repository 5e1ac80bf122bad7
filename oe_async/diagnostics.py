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

from ._version import __version__
from .auth import redact_url

if TYPE_CHECKING:
    from ._funnel import Funnel
    from .models import PrinterLimits
    from .plugin_models import PrinterStatus

__all__ = ["REDACTED", "redact"]

REDACTED: Final = "**REDACTED**"
#: Keys whose values are secrets, whatever their spelling (AppToken, app_api_token, X-Api-Key,
#: a printer's AccessCode and Username from get-connection-info), and the App Connection id
#: (``id``, ``connection_id``, ``appConnectionId``: repr() hides it).
_SECRET_KEY: Final = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|auth[_-]?basic|bearer|cookie|"
    r"credential|access[_-]?code|user[_-]?name|^auth$|"
    r"^(?:(?:app[_-]?)?connection[_-]?)?id$",
    re.IGNORECASE,
)
#: The words of a key name: camelCase, PascalCase, snake_case, kebab-case, dotted, spaced.
_KEY_WORDS: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: Whole words that mark a secret key: ``key`` (a bare key, SecretKey, private_key,
#: X-Api-Key) and ``pwd``. Whole words only, so keyboard, monkey or hotkey stay visible.
_SECRET_WORDS: Final = frozenset({"key", "pwd"})
#: A URL anywhere in a string, free text included (it ends at whitespace or a quote). The
#: look-behind starts a scheme only at a word's start: linear time on long runs of letters.
_URL: Final = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^\s\"'<>`]+", re.IGNORECASE)


def redact(data: Any) -> Any:
    """A copy of ``data`` with secrets replaced by ``**REDACTED**``.

    Mapping values under secret-looking keys are replaced whole, and so is the value of a
    ``(name, value)`` pair whose name looks secret (headers as a list of pairs). Every URL in
    a string, free text included, keeps only its scheme, redacted host and port (user info,
    path and query go). Lists, tuples and nested mappings are walked; other values are
    returned as they are.
    """

    def is_secret(key: object) -> bool:
        name = str(key)
        return bool(_SECRET_KEY.search(name)) or any(
            word.lower() in _SECRET_WORDS for word in _KEY_WORDS.findall(name)
        )

    def hide_url(match: re.Match[str]) -> str:
        url = match.group().rstrip(".,;:!?)]}")  # sentence punctuation after a URL stays
        try:
            shown = redact_url(url)
        except ValueError:  # not a URL yarl can parse: hide it whole
            shown = REDACTED
        return shown + match.group()[len(url) :]

    if isinstance(data, Mapping):
        return {
            key: REDACTED if is_secret(key) and value else redact(value)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        if len(data) == 2 and isinstance(data[0], str) and is_secret(data[0]) and data[1]:
            return [data[0], REDACTED]
        return [redact(item) for item in data]
    if isinstance(data, str):
        return _URL.sub(hide_url, data)
    return data


def printer_diagnostics(
    funnel: Funnel, *, limits: PrinterLimits | None, last_status: PrinterStatus | None
) -> dict[str, Any]:
    """A redacted report on one printer connection (``PrinterConnection.diagnostics()``)."""
    conn = funnel.app_connection
    status = last_status
    report: dict[str, Any] = redact(
        {
            "oe_async": __version__,
            "aiohttp": aiohttp.__version__,
            "python": sys.version.split()[0],
            # Not platform.platform(): its first call runs `uname -p` in a subprocess,
            # a blocking call on the event loop.
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
            "app_id": funnel.app_id,
            "relay_url": str(conn.url),
            "auth_type": type(conn.auth).__name__,
            "has_octoprint_api_key": conn.octoprint_api_key is not None,
            "printer_name": conn.printer_name,
            "route_policy": funnel.route_policy.value,
            "route": funnel.route.value,
            "lan_url": str(funnel.lan_url) if funnel.lan_url is not None else None,
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
            "last_error": funnel.last_error,
        }
    )
    return report
