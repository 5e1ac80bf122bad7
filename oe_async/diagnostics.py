"""Diagnostics that are safe to paste into a bug report.

:func:`redact` hides secrets in text and in any JSON-like structure: by key name
(passwords, tokens, keys, Authorization...), by shape in free text (``Authorization:``
values of any scheme, ``token=...``, App Connection URLs' unique subdomain), and by value
(an App Connection's own secrets, when given). ``PrinterConnection.diagnostics()`` and the
messages of errors built from server text use the same rules.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from ._redact import REDACTED, KnownSecrets, as_known_secrets, redact_text
from ._version import __version__
from .models import AppConnection, known_secrets

if TYPE_CHECKING:
    from ._funnel import Funnel
    from .models import PrinterLimits
    from .plugin_models import PrinterStatus

__all__ = ["REDACTED", "redact"]

#: Keys whose values are secrets, whatever their spelling (AppToken, app_api_token, X-Api-Key,
#: a printer's AccessCode, Username and SerialNumber from get-connection-info: the serial
#: names a Bambu Lab printer's MQTT topics), and the App Connection id
#: (``id``, ``connection_id``, ``appConnectionId``: repr() hides it).
_SECRET_KEY: Final = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authorization|auth[_-]?basic|bearer|cookie|"
    r"credential|access[_-]?code|user[_-]?name|serial[_-]?number|^auth$|"
    r"^(?:(?:app[_-]?)?connection[_-]?)?id$",
    re.IGNORECASE,
)
#: The words of a key name: camelCase, PascalCase, snake_case, kebab-case, dotted, spaced.
_KEY_WORDS: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: Whole words that mark a secret key: ``key`` (a bare key, SecretKey, private_key,
#: X-Api-Key) and ``pwd``. Whole words only, so keyboard, monkey or hotkey stay visible.
_SECRET_WORDS: Final = frozenset({"key", "pwd"})


def redact(data: Any, *, secrets: AppConnection | Iterable[str] | None = None) -> Any:
    """A copy of ``data`` with secrets replaced by ``**REDACTED**``; text is scrubbed too.

    Give it a string (an error message, a reason, a log line) or a JSON-like structure.

    - Every string, free text included: ``Authorization:`` / ``Proxy-Authorization:`` /
      ``Cookie:`` values of any scheme (to the end of the line or quote), secret-looking
      ``key=value`` pairs (``token=``, ``api_key:``, ``password "..."``), ``Bearer`` and
      ``Basic`` credentials, and every URL cut to scheme, redacted host and port (user info,
      path and query go).
    - ``secrets``: an :class:`oe_async.AppConnection` (its password, user name, encoded
      Basic credential, tokens, OctoPrint key, id and the URL's unique host are hidden
      wherever they appear) or the exact strings to hide.
    - Mapping values under secret-looking keys are replaced whole, and so is the value of a
      ``(name, value)`` pair whose name looks secret (headers as a list of pairs). Lists,
      tuples and nested mappings are walked; other values are returned as they are.
    """
    known = known_secrets(secrets) if isinstance(secrets, AppConnection) else secrets
    return _redact(data, as_known_secrets(known))


def _is_secret(key: object) -> bool:
    name = str(key)
    return bool(_SECRET_KEY.search(name)) or any(
        word.lower() in _SECRET_WORDS for word in _KEY_WORDS.findall(name)
    )


def _redact(data: Any, known: KnownSecrets) -> Any:
    if isinstance(data, str):
        return redact_text(data, known)
    if isinstance(data, Mapping):
        return {
            key: REDACTED if _is_secret(key) and value else _redact(value, known)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        if len(data) == 2 and isinstance(data[0], str) and _is_secret(data[0]) and data[1]:
            return [data[0], REDACTED]
        return [_redact(item, known) for item in data]
    return data


def printer_diagnostics(
    funnel: Funnel, *, limits: PrinterLimits | None, last_status: PrinterStatus | None
) -> dict[str, Any]:
    """A redacted report on one printer connection (``PrinterConnection.diagnostics()``)."""
    conn = funnel.app_connection
    router = funnel.routes.router
    status = last_status
    report: dict[str, Any] = _redact(
        {
            "oe_async": __version__,
            "aiohttp": aiohttp.__version__,
            "python": sys.version.split()[0],
            # Not platform.platform(): its first call runs `uname -p` in a subprocess,
            # a blocking call on the event loop.
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
            "app_id": funnel.transport.app_id,
            "relay_url": str(conn.url),
            "auth_type": type(conn.auth).__name__,
            "has_octoprint_api_key": conn.octoprint_api_key is not None,
            "printer_name": conn.printer_name,
            "route_policy": router.policy.value,
            "route": router.route.value,
            "lan_url": str(router.lan_url) if router.lan_url is not None else None,
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
        },
        funnel.secrets,
    )
    return report
