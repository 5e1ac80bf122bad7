"""Scrubbing secrets out of text: the one implementation behind every redaction.

Pure functions, no I/O. :func:`oe_async.redact` (diagnostics), the messages of errors built
from server text (:class:`oe_async.PrinterHTTPError`, :class:`oe_async.PluginCommandError`)
and the repr of every object holding a URL use what is here:

- :class:`KnownSecrets`: the exact secrets of one App Connection (password, user name, the
  encoded Basic credential, bearer token, App token, OctoPrint key, the URL's unique host),
  found wherever they appear, case-insensitively and also JSON- or percent-encoded;
- header-style credentials (``Authorization: <any scheme> <credentials>``, ``Cookie: ...``):
  the whole value, to the end of its line or quote;
- ``key=value`` pairs with secret-looking keys (``token=``, ``api_key:``, ``password "x"``);
- ``Bearer <token>`` / ``Basic <credentials>`` on their own;
- URLs: only the scheme, the host (its unique first label hidden) and the port stay.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

from yarl import URL

__all__ = [
    "REDACTED",
    "KnownSecrets",
    "as_known_secrets",
    "hide_urls",
    "redact_bytes",
    "redact_text",
    "redact_url",
]

REDACTED: Final = "**REDACTED**"
#: Known secrets shorter than this are not searched for (they would hide ordinary words).
MIN_SECRET_LENGTH: Final = 6

#: A URL anywhere in a string, free text included (it ends at whitespace or a quote). The
#: look-behind starts a scheme only at a word's start: linear time on long runs of letters.
_URL: Final = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^\s\"'<>`\\]+", re.IGNORECASE)

#: A quote as it appears in free text or inside a raw JSON string (``\\"``).
_Q: Final = r"(?:\\?[\"'])"
#: Where a name starts: not inside a word, but right after a JSON escape (``\\nCookie``).
_START: Final = r"(?:(?<=\\[nrt])|(?<![a-z0-9]))"
#: A header that carries a credential, with its whole value: ``Authorization: Digest a="b",
#: c="d"`` up to the end of the line, a quoted value to its closing quote. The key may be
#: quoted (``"Authorization": "Basic x"``, ``\\"Authorization\\": \\"Basic x\\"``).
_HEADER_NAME: Final = (
    rf"{_START}(?P<name>(?:proxy-)?authorization|cookie|set-cookie)(?P<q1>{_Q}?)"
    rf"(?P<sep>\s*[:=]\s*|\s+(?={_Q}))"
    r"(?:(?P<qd>\\?\")[^\"\\\r\n]*|(?P<qs>\\?')[^'\\\r\n]*|"
)
_CREDENTIAL_HEADER: Final = re.compile(_HEADER_NAME + r"[^\r\n]*[^\s,;])", re.IGNORECASE)
#: The same in a raw JSON body: an unquoted value also ends at a ``"`` or a backslash (the
#: end of the JSON string, or an escape such as ``\r\n``), so the body stays JSON.
_CREDENTIAL_HEADER_RAW: Final = re.compile(
    _HEADER_NAME + r"[^\"\\\r\n]*[^\s\"\\,;])", re.IGNORECASE
)
#: ``token: xyz``, ``api_key=xyz``, ``password 'x y'``, ``"X-Api-Key": "xyz"``: a quoted
#: value to its closing quote, an unquoted one to the next space, comma or semicolon.
_SECRET_VALUE: Final = re.compile(
    rf"{_START}(?P<name>(?:x-)?api[_-]?key|apptoken|app[_-]?api[_-]?token|"
    rf"access[_-]?token|token|password|passwd|secret(?:[_-]?key)?)(?P<q1>{_Q}?)"
    rf"(?P<sep>\s*[:=]\s*|\s+(?={_Q}))"
    r"(?:(?P<qd>\\?\")[^\"\\\r\n]+|(?P<qs>\\?')[^'\\\r\n]+|[^\s,;\"'\\]+)",
    re.IGNORECASE,
)
#: ``Bearer xyz``, ``Basic xyz``. A credential has a digit or ``+/=``, or is 20+ characters
#: (a random token may have no digit; "Basic authentication" stays readable).
_SCHEME_CREDENTIAL: Final = re.compile(
    r"\b(bearer|basic)\s+(?=[A-Za-z0-9._~+/=-]*[0-9+/=]|[A-Za-z0-9._~+/=-]{20})"
    r"[A-Za-z0-9._~+/=-]{8,}",
    re.IGNORECASE,
)


def redact_url(url: URL | str) -> str:
    """Render a URL with its unique parts hidden, for logs, reprs and messages.

    The first label of a DNS name with three or more labels (the App Connection's unique
    subdomain) becomes ``***``; user info, path, query and fragment are dropped.
    """
    url = URL(url) if isinstance(url, str) else url
    host = url.host or ""
    if unique_label(host) is not None:
        host = ".".join(["***", *host.split(".")[1:]])
    port = f":{url.explicit_port}" if url.explicit_port is not None else ""
    return f"{url.scheme}://{host}{port}" if url.scheme else "<relative URL>"


def unique_label(host: str) -> str | None:
    """The first label of a DNS name with three or more labels (not an IP), else None."""
    labels = host.split(".")
    if len(labels) < 3:
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return labels[0] or None
    return None


def _hide_url(match: re.Match[str]) -> str:
    text = match.group()
    url_text = text.rstrip(".,;:!?)]}")  # sentence punctuation after a URL stays
    try:
        shown = redact_url(url_text)
    except (ValueError, TypeError):  # not a URL yarl can parse: hide it whole
        shown = REDACTED
    return shown + text[len(url_text) :]


def hide_urls(text: str) -> str:
    """Every URL in ``text`` cut to its scheme, redacted host and port."""
    return _URL.sub(_hide_url, text) if "://" in text else text


def _hide_value(match: re.Match[str]) -> str:
    """Keep the name, its quotes and the separator; the closing quote stays in the text."""
    name, q1, sep, double, single = match.group("name", "q1", "sep", "qd", "qs")
    return f"{name}{q1}{sep}{double or single or ''}{REDACTED}"


def _hide_scheme_credential(match: re.Match[str]) -> str:
    return f"{match.group(1)} {REDACTED}"


class KnownSecrets:
    r"""The exact secrets of one App Connection, searched for in text.

    Each value is also found JSON-escaped (``\/``) and percent-encoded, and case is
    ignored (an upper-cased echo of a host or key is still hidden). Values shorter than
    :data:`MIN_SECRET_LENGTH` are left out. The repr shows only how many there are.
    """

    __slots__ = ("_count", "_pattern", "_spellings")

    def __init__(self, values: Iterable[str]) -> None:
        spellings: set[str] = set()
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
                continue
            spellings.add(value)
            spellings.add(json.dumps(value)[1:-1])
            spellings.add(value.replace("/", "\\/"))
            spellings.add(quote(value, safe=""))
        # A raw body is searched as Latin-1 (one character per byte): non-ASCII secrets
        # are also looked for in their UTF-8 bytes.
        spellings |= {s.encode().decode("latin-1") for s in spellings if not s.isascii()}
        self._count = len(spellings)
        # Longest first, so a secret that contains another is hidden whole. Compiled on
        # first use: most connections never see an error (one per printer, at scale).
        self._spellings: tuple[str, ...] = tuple(sorted(spellings, key=len, reverse=True))
        self._pattern: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        return f"<KnownSecrets: {self._count} spelling(s)>"

    def __bool__(self) -> bool:
        return bool(self._spellings)

    def hide(self, text: str) -> str:
        """``text`` with every known secret replaced by :data:`REDACTED`."""
        if not self._spellings:
            return text
        if self._pattern is None:
            self._pattern = re.compile("|".join(map(re.escape, self._spellings)), re.IGNORECASE)
        return self._pattern.sub(REDACTED, text)


#: No known secrets.
NO_SECRETS: Final = KnownSecrets(())


def as_known_secrets(secrets: KnownSecrets | Iterable[str] | None) -> KnownSecrets:
    """``secrets`` as :class:`KnownSecrets` (None: none)."""
    if secrets is None:
        return NO_SECRETS
    if isinstance(secrets, KnownSecrets):
        return secrets
    if isinstance(secrets, str):
        return KnownSecrets((secrets,))
    return KnownSecrets(secrets)


def redact_text(text: str, secrets: KnownSecrets | None = None, *, urls: bool = True) -> str:
    """``text`` with every secret this module knows how to find replaced.

    In order: the known secrets (exact values), credential headers (``Authorization:`` of
    any scheme, ``Cookie:``) to the end of their value, secret-looking ``key=value`` pairs,
    ``Bearer``/``Basic`` credentials, and URLs (scheme, redacted host and port stay; kept
    whole with ``urls=False``, for text that is shown as the server wrote it). Line breaks
    and other characters are kept: strip them for display separately.
    """
    if secrets is not None:
        text = secrets.hide(text)
    text = _CREDENTIAL_HEADER.sub(_hide_value, text)
    text = _SECRET_VALUE.sub(_hide_value, text)
    text = _SCHEME_CREDENTIAL.sub(_hide_scheme_credential, text)
    return hide_urls(text) if urls else text


def redact_bytes(data: bytes, secrets: KnownSecrets | None = None) -> bytes:
    """A raw body with the known secrets and credential header values replaced.

    For a body kept as received (``err.body``): only what is certainly a secret is touched,
    and quotes stay where they were, so a JSON body still parses. Bytes that are not text
    pass through (the body is handled as Latin-1, one character per byte).
    """
    if not data:
        return data
    text = data.decode("latin-1")
    scrubbed = text
    if secrets is not None:
        scrubbed = secrets.hide(scrubbed)
    scrubbed = _CREDENTIAL_HEADER_RAW.sub(_hide_value, scrubbed)
    return data if scrubbed == text else scrubbed.encode("latin-1")
