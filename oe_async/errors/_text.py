"""What an error answer says, made safe to keep and show: the server's message, ``Retry-After``.

Pure: no I/O. :mod:`oe_async.errors` builds its exceptions with these; the text a server
controls is redacted (:mod:`oe_async._redact`), cut to one short line and bounded before any
of it reaches an exception.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Final

from oe_async._redact import redact_text

#: How much of an error answer's body :class:`oe_async.HTTPStatusError` keeps (bytes).
MAX_ERROR_BODY: Final = 64 * 1024
#: The longest server message kept in ``message`` (characters).
MAX_SERVER_MESSAGE: Final = 500
#: How much of a server message is scanned (and can be shown), and how much of that scan's
#: end is dropped (longer than any secret, so no secret is ever shown cut in two).
_SCANNED_MESSAGE: Final = 8192
_CUT_MARGIN: Final = 512
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def _printer_text(text: str) -> str:
    """Server-controlled text made safe to show: one line, short, no URL paths or secrets."""
    if len(text) > _SCANNED_MESSAGE:
        # Only the start can be shown: scan that. The last characters before the cut go
        # too, after redaction: a secret cut in two would not be recognised there.
        text = redact_text(text[:_SCANNED_MESSAGE])[:-_CUT_MARGIN] + " …"
    else:
        text = redact_text(text)
    # Redacted before line breaks go: a credential header's value ends at its line's end.
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[: MAX_SERVER_MESSAGE - 1].rstrip() + "…"
    return text


def error_body_message(body: bytes) -> str | None:
    """The server's own error message from a recognised JSON error body, made safe to show.

    Recognised: ``{"error": {"message": "..."}}`` (Moonraker, JSON-RPC) and
    ``{"error": "..."}`` (OctoPrint). Anything else (HTML, plain text, other shapes) is None:
    an unknown body is never shown to a user. The text is redacted like
    :func:`oe_async.redact` (URLs keep only their scheme and host, the unique App Connection
    label hidden; ``Authorization: <any scheme> ...``, ``Bearer x``, ``api_key=x``,
    ``password: x``... replaced), control characters removed, and it is at most
    :data:`MAX_SERVER_MESSAGE` characters.
    """
    start = body[:64].lstrip()
    if not start.startswith(b"{") or len(body) > MAX_ERROR_BODY:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str):
        return None
    text = _printer_text(error)
    return text or None


#: The longest ``Retry-After`` honoured (seconds); longer values are capped to it.
MAX_RETRY_AFTER: Final = 86_400


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delay-seconds or HTTP-date) into seconds from now.

    Returns None when absent or unparseable; never negative, and at most
    :data:`MAX_RETRY_AFTER` (a day), so a hostile value cannot schedule a poll at infinity.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # not "²" or "٣": isdigit() alone takes those
        return min(float(MAX_RETRY_AFTER), float(value))  # a huge number is inf, then capped
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; be lenient with ones that omit it
        return None
    current = time.time() if now is None else now
    return min(float(MAX_RETRY_AFTER), max(0.0, when.timestamp() - current))
