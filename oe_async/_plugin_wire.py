"""The wire format of OctoEverywhere's plugin command API. Pure functions, no I/O.

Commands answer HTTP 200 with an envelope ``{"Status": <int>, "Result": {...}}`` or
``{"Status": <int>, "Error": "..."}``; ``Status`` 200 is success. Raw endpoints (webcam
stream/snapshot, file download) return content directly and may use a real HTTP error
status with a JSON error body. Both failure shapes map to :class:`PluginCommandError`.

The real plugin answers every JSON command with ``Content-Type: text/json`` and HTTP 200,
and so it answers a raw endpoint it cannot serve (a webcam it does not have, a command an
old plugin does not know): ``{"Status": 754, ...}`` with HTTP 200 where a JPEG, an MJPEG
stream or a file was expected. :func:`content_error` turns such an answer into its error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from yarl import URL

from ._redact import KnownSecrets
from .errors import (
    OctoEverywhereError,
    PluginCommandError,
    PrinterHTTPError,
    UnexpectedResponseError,
    plugin_error,
)

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "PLUGIN_PREFIX",
    "content_error",
    "is_json_type",
    "is_plugin_path",
    "plugin_error_from_http",
    "unwrap_envelope",
]

#: The path prefix of the plugin command API beneath the App Connection URL.
PLUGIN_PREFIX: Final = "/octoeverywhere-command-api/"
#: One public example writes the key with a stray colon; accept both spellings.
_RESULT_KEYS: Final = ("Result", "Result:")
#: The most of a JSON answer read where content was expected (envelopes are a few hundred
#: bytes; the plugin cuts its error texts at 240 characters).
MAX_ENVELOPE_SIZE: Final = 64 * 1024


def is_json_type(content_type: str) -> bool:
    """True for a JSON media type: ``application/json``, the plugin's ``text/json``, ``+json``."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def content_error(
    body: bytes, *, what: str, secrets: KnownSecrets | Iterable[str] | None = None
) -> OctoEverywhereError:
    """The error a JSON answer stands for where content (an image, a file) was expected.

    Pure function. A plugin envelope with a failure ``Status`` gives its
    :class:`PluginCommandError` (``{"Status": 754}`` for a webcam the printer does not have
    is :class:`PluginCommandFailedError` with ``plugin_status`` 754); anything else is an
    :class:`UnexpectedResponseError` naming ``what`` was expected. ``secrets`` (the
    connection's own) are hidden from the error's message, as for :func:`unwrap_envelope`.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON after all, or hostile nesting
        data = None
    if isinstance(data, Mapping):
        status = data.get("Status")
        if isinstance(status, int) and not isinstance(status, bool) and status != 200:
            message = data.get("Error")
            return plugin_error(
                status, message if isinstance(message, str) else None, secrets=secrets
            )
    return UnexpectedResponseError(f"{what}: the answer was JSON, not the content")


def unwrap_envelope(
    data: Any, *, command: str, secrets: KnownSecrets | Iterable[str] | None = None
) -> Any:
    """Return an envelope's ``Result``, or raise the :class:`PluginCommandError` it carries.

    Pure function. A body that is not an envelope raises :class:`UnexpectedResponseError`.
    ``secrets`` (the connection's own) are hidden from the error's message.
    """
    if not isinstance(data, Mapping) or "Status" not in data:
        raise UnexpectedResponseError(f"plugin command {command!r} did not answer an envelope")
    status = data["Status"]
    if isinstance(status, bool) or not isinstance(status, int):
        raise UnexpectedResponseError(f"plugin command {command!r} answered a non-integer Status")
    if status != 200:
        message = data.get("Error")
        raise plugin_error(status, message if isinstance(message, str) else None, secrets=secrets)
    for key in _RESULT_KEYS:
        if key in data:
            return data[key]
    return None


def plugin_error_from_http(err: PrinterHTTPError) -> PluginCommandError | None:
    """A raw endpoint's HTTP error with a JSON error body, as a plugin error (else None)."""
    try:
        body = json.loads(err.body)
    except (ValueError, RecursionError):  # not JSON, or hostile nesting: not a plugin error
        return None
    if not isinstance(body, Mapping):
        return None
    message = body.get("Error") or body.get("error")
    status = body.get("Status")
    if isinstance(status, int) and not isinstance(status, bool) and status != 200:
        return plugin_error(status, message if isinstance(message, str) else None)
    if isinstance(message, str):
        return plugin_error(err.status, message)
    return None


def is_plugin_path(path: str) -> bool:
    """True for a path (or URL) of OctoEverywhere's plugin API, which only the relay serves.

    Not cached: a cache would keep every path given, absolute relay URLs and query tokens
    included, for the life of the process; the two string tests decide almost every path.
    """
    if path.startswith(PLUGIN_PREFIX):
        return True
    if PLUGIN_PREFIX not in path:
        return False  # cannot be one, whatever it parses to
    try:
        return URL(path).path.startswith(PLUGIN_PREFIX)
    except ValueError:
        return False
