"""HTTP helpers shared by the funnel and the feature modules (URL joining, error reading).

Nothing here talks to the network on its own: these functions work on a response the
funnel already holds, or on plain values.
"""

from __future__ import annotations

import functools
import json as jsonlib
import os
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import attrs
from yarl import URL

from .auth import origin_of
from .errors import (
    CommunicationError,
    InvalidArgumentError,
    RequestTimeoutError,
    UnexpectedResponseError,
)

__all__ = [
    "FLOOD_CHUNKS",
    "FLOOD_MIN_AVERAGE",
    "MAX_JSON_SIZE",
    "TRANSPORT_ERRORS",
    "ChunkFloodGuard",
    "decode_json",
    "display_path",
    "join_url",
    "parse_url",
    "path_of",
    "read_capped",
    "read_chunk",
    "read_json",
    "read_limited",
    "reads_at_once",
    "transport_error",
]


def join_url(base: URL, path: str | URL) -> URL:
    """Join ``path`` beneath ``base`` (see :func:`_join`).

    A short relative string path is parsed once (:func:`_relative_cached`); the cache never
    holds ``base`` (a printer's unique relay URL) nor a long or absolute path.
    """
    if isinstance(path, str) and len(path) <= _CACHED_PATH:
        relative = _relative_cached(path)
        if relative is not None:  # an absolute URL: its origin is checked against base
            return base.join(relative)
    return _join(base, path)


def parse_url(path: str) -> URL:
    """An absolute URL given as a request path, or :class:`InvalidArgumentError`.

    yarl's bare ``ValueError`` (a backslash in the authority...) never escapes.
    """
    return _to_url(path, invalid="path is not a valid URL")


def _to_url(path: str, *, invalid: str) -> URL:
    """``URL(path)``; a backslash, or what yarl refuses, is :class:`InvalidArgumentError`."""
    if "\\" in path:
        raise InvalidArgumentError(_BACKSLASH)
    try:
        return URL(path)
    except ValueError:
        raise InvalidArgumentError(invalid) from None


def _join(base: URL, path: str | URL) -> URL:
    """Join ``path`` beneath ``base`` with yarl; refuse anything that leaves base's origin.

    ``path`` may start with ``/`` (it is still taken below ``base``'s path), carry a query
    string after ``?``, or be an absolute URL on the same origin. A ``#`` is refused rather
    than silently cutting the path (percent-encode it as ``%23`` in a file name), and so is
    a backslash (``%5C``).
    """
    if isinstance(path, URL):
        target = path
        if target.raw_fragment:
            raise InvalidArgumentError(_FRAGMENT)
    elif isinstance(path, str):
        target = _parse_path(path)
    else:
        raise InvalidArgumentError(f"path must be a str or yarl.URL, not {type(path).__name__}")
    if target.absolute:
        if origin_of(target) != origin_of(base):
            raise InvalidArgumentError(
                "absolute URL is not on this printer's origin; refusing to send credentials"
            )
        return target
    return base.join(_relative(target, path))


def _relative(target: URL, path: str | URL) -> URL:
    """``target`` (parsed from ``path``) as a reference relative to a base URL's path."""
    if target.scheme:  # "a:b" parsed as scheme "a": it was meant as a relative path
        target = URL("./" + str(path))
    # "./" keeps a first segment containing ':' from reading as a scheme.
    relative = target.raw_path.lstrip("/")
    return URL.build(path="./" + relative, query_string=target.raw_query_string, encoded=True)


def _parse_path(path: str) -> URL:
    """A string path parsed, or :class:`InvalidArgumentError` naming what is wrong."""
    if path.startswith("//"):
        raise InvalidArgumentError("path must not start with '//' (a network-path reference)")
    if "#" in path:
        raise InvalidArgumentError(_FRAGMENT)
    return _to_url(path, invalid="path is not a valid URL path")


def _parse_relative(path: str) -> URL | None:
    """A string path as a reference to join beneath a base; None for an absolute URL."""
    target = _parse_path(path)
    return None if target.absolute else _relative(target, path)


_BACKSLASH: Final = "path must not contain a backslash (percent-encode one in a file name as %5C)"


_FRAGMENT: Final = (
    "path contains '#', which would end the path there (a fragment is never sent): "
    "percent-encode it as %23 in a file name"
)


def path_of(url: str | URL) -> str:
    """The path and query of a URL a printer handed out, to request on the current route.

    OctoPrint's ``refs.download`` and Moonraker's file URLs name the printer's own idea of
    its host (``http://127.0.0.1:5000/...``). Only the path and query are kept: the request
    then goes to the App Connection (or the LAN route) like any other, never to that host.

    Raises:
        InvalidArgumentError: not an absolute http(s) URL or a path, or it has a fragment.

    """
    try:
        parsed = URL(str(url))
    except ValueError:
        raise InvalidArgumentError("not a valid URL") from None
    if parsed.raw_fragment:
        raise InvalidArgumentError(_FRAGMENT)
    if parsed.absolute and parsed.scheme not in ("http", "https"):
        raise InvalidArgumentError("only http(s) URLs can be followed on the printer's route")
    if not parsed.absolute and parsed.scheme:
        raise InvalidArgumentError("not an http(s) URL or a path")
    path = parsed.raw_path or "/"
    return path + (f"?{parsed.raw_query_string}" if parsed.raw_query_string else "")


#: Printers are polled on the same few paths: each is parsed once. Only paths up to
#: _CACHED_PATH characters, never the base: bounded by size (~1,024 x 256 characters, well
#: under 2 MiB) and free of any printer's URL. It was 4,096 (base, path) pairs of any
#: length: 6,000 unique 7 KB paths kept 57 MiB after close(), each printer's relay URL too.
_CACHED_PATH: Final = 256
_relative_cached: Final = functools.lru_cache(maxsize=1024)(_parse_relative)


def display_path(url: URL) -> str:
    """The part of a URL that is safe in messages and logs: its path, no host or query."""
    return url.path or "/"


def shown_path(path: str) -> str:
    """:func:`display_path` of a path or URL as given (``"(path)"`` when it does not parse)."""
    try:
        return display_path(URL(path))
    except ValueError:
        return "(path)"


#: Connection failures that deserve their own words (before "cannot connect (errno)").
_CONNECT_MESSAGES: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (
        aiohttp.ClientConnectorCertificateError,
        "the server's TLS certificate could not be verified (untrusted, expired or for "
        "another host)",
    ),
    (aiohttp.ClientConnectorSSLError, "the TLS handshake failed"),
    (aiohttp.ClientSSLError, "the TLS handshake failed"),
    (aiohttp.ClientConnectorDNSError, "cannot resolve the host name"),
)

#: ``err.message`` for the connection failures a user can do something about.
_USER_MESSAGES: Final[dict[type[BaseException], str]] = {
    aiohttp.ClientConnectorCertificateError: (
        "The secure connection could not be verified (a certificate problem)."
    ),
    aiohttp.ClientConnectorSSLError: "The secure connection could not be set up.",
    aiohttp.ClientSSLError: "The secure connection could not be set up.",
    aiohttp.ClientConnectorDNSError: (
        "The server's name could not be resolved. Check the network connection."
    ),
}

_TRANSPORT_MESSAGES: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (aiohttp.TooManyRedirects, "too many redirects"),
    # Raised by aiohttp's response parser: too many headers, a line too long, bad framing.
    (aiohttp.ClientResponseError, "the server sent a malformed or oversized HTTP response"),
    (aiohttp.ClientPayloadError, "the response body was cut short or malformed"),
    (aiohttp.ServerDisconnectedError, "the server closed the connection"),
    (aiohttp.InvalidURL, "the URL is not valid"),
)


def transport_error(err: BaseException, method: str, path: str) -> CommunicationError:
    """Describe a network failure without the URL (aiohttp's messages contain the host).

    ``message`` is a sentence for users; ``str()`` names the method, path and cause.
    """
    what = f"{method} {path}"
    if isinstance(err, TimeoutError):  # includes aiohttp's ServerTimeoutError family
        return RequestTimeoutError(detail=f"{what} timed out ({type(err).__name__})")
    for cls, message in _CONNECT_MESSAGES:
        if isinstance(err, cls):
            return CommunicationError(_USER_MESSAGES.get(cls), detail=f"{what}: {message}")
    if isinstance(err, aiohttp.ClientConnectorError):
        return CommunicationError(detail=f"{what}: cannot connect ({_os_reason(err.os_error)})")
    for cls, message in _TRANSPORT_MESSAGES:
        if isinstance(err, cls):
            return CommunicationError(detail=f"{what}: {message}")
    if isinstance(err, OSError):
        return CommunicationError(detail=f"{what} failed ({_os_reason(err)})")
    return CommunicationError(detail=f"{what} failed ({type(err).__name__})")


def _os_reason(err: OSError) -> str:
    """The errno's generic text ("Connection refused").

    Never ``strerror``: asyncio fills it with the peer address.
    """
    if err.errno:
        return os.strerror(err.errno)
    return type(err).__name__


TRANSPORT_ERRORS: Final = (aiohttp.ClientError, TimeoutError, OSError)


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a body; a failure mid-way returns what arrived."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = await resp.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TRANSPORT_ERRORS:
        pass
    return b"".join(chunks)


#: The largest JSON answer decoded (after decompression): a gzip bomb stops here.
MAX_JSON_SIZE: Final = 32 * 1024 * 1024


#: A body sent as at least this many HTTP chunks averaging under FLOOD_MIN_AVERAGE bytes is
#: refused: parsing a chunk costs aiohttp about 2 µs, so a million one-byte chunks would
#: burn seconds of event-loop CPU for one megabyte. Real servers send kilobytes per chunk.
FLOOD_CHUNKS: Final = 4096
FLOOD_MIN_AVERAGE: Final = 64


async def read_chunk(content: aiohttp.StreamReader) -> tuple[bytes, bool]:
    """One :meth:`aiohttp.StreamReader.readchunk`, with the end of the body made reliable.

    Returns ``(data, end_of_http_chunk)``; ``(b"", False)`` means the body is over. aiohttp
    hands every body-less answer (204, 304, HEAD, ``Content-Length: 0``) one process-wide
    empty reader whose ``readchunk()`` says ``(b"", False)`` only the first time and
    ``(b"", True)`` forever after (aiohttp issue 7616), so a loop that waits for
    ``(b"", False)`` spins on it. An empty piece from a reader at EOF is the end.
    """
    chunk, end_of_chunk = await content.readchunk()
    if not chunk and end_of_chunk and content.at_eof():
        return b"", False
    return chunk, end_of_chunk


@attrs.define
class ChunkFloodGuard:
    """Counts a body's HTTP chunks and refuses a flood of tiny ones (see FLOOD_CHUNKS)."""

    _what: str
    _chunks: int = attrs.field(default=0, init=False)
    _size: int = attrs.field(default=0, init=False)

    def check(self, data: bytes, *, end_of_chunk: bool) -> None:
        """Account one :meth:`aiohttp.StreamReader.readchunk` result."""
        self._size += len(data)
        if end_of_chunk:
            self._chunks += 1
            if self._chunks >= FLOOD_CHUNKS and self._size < self._chunks * FLOOD_MIN_AVERAGE:
                raise UnexpectedResponseError(
                    f"{self._what} arrived as more than {FLOOD_CHUNKS} HTTP chunks averaging "
                    f"under {FLOOD_MIN_AVERAGE} bytes (a chunk flood); aborted"
                )


#: A body with a Content-Length up to this (and no Content-Encoding) is read in one go.
_SMALL_BODY: Final = 64 * 1024


def reads_at_once(resp: aiohttp.ClientResponse, limit: int) -> bool:
    """True for a small body within ``limit`` that can be read in one go.

    That is a Content-Length up to 64 KiB and no Content-Encoding: aiohttp reads exactly
    that many bytes, so neither the size nor a flood of tiny chunks can get out of hand.
    """
    length = resp.content_length
    return (
        length is not None
        and length <= _SMALL_BODY
        and length <= limit
        and "Content-Encoding" not in resp.headers
    )


async def read_limited(resp: aiohttp.ClientResponse, limit: int, *, what: str) -> bytes:
    """The whole body, or :class:`UnexpectedResponseError` once it passes ``limit`` bytes.

    Counts decoded bytes, so a small compressed body that expands without end is stopped
    after ``limit`` bytes of memory, not after all of it; a flood of tiny HTTP chunks is
    stopped by :class:`ChunkFloodGuard`.
    """
    if (
        resp.content_length is not None
        and resp.content_length > limit
        and not resp.headers.get("Content-Encoding")
    ):
        raise UnexpectedResponseError(f"{what} is larger than {limit} bytes")
    if reads_at_once(resp, limit):
        return await resp.read()  # the common small answer
    return await read_bounded(
        resp,
        limit,
        what=what,
        too_large=lambda: UnexpectedResponseError(f"{what} is larger than {limit} bytes"),
    )


async def read_bounded(
    resp: aiohttp.ClientResponse,
    limit: int,
    *,
    what: str,
    too_large: Callable[[], Exception],
) -> bytes:
    """The body read HTTP chunk by chunk; ``too_large()`` is raised once it passes ``limit``.

    A flood of tiny HTTP chunks is stopped by :class:`ChunkFloodGuard` (``what`` names the
    body in its error). A body that came in one piece is returned as it is, not copied.
    """
    guard = ChunkFloodGuard(what)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk, end_of_chunk = await read_chunk(resp.content)
        if not chunk and not end_of_chunk:
            break
        guard.check(chunk, end_of_chunk=end_of_chunk)
        size += len(chunk)
        if size > limit:
            raise too_large()
        if chunk:
            chunks.append(chunk)
    return b"".join(chunks)  # one chunk: itself (bytes.join does not copy a lone item)


async def read_json(
    resp: aiohttp.ClientResponse, method: str, *, limit: int = MAX_JSON_SIZE
) -> Any:
    """Decode a response body as JSON; an empty body is None, anything else must parse.

    The body is read up to ``limit`` decoded bytes (:class:`UnexpectedResponseError` past it).
    """
    what = f"the answer to {method} {display_path(resp.url)}"
    return decode_json(await read_limited(resp, limit, what=what), resp, method)


def decode_json(body: bytes, resp: aiohttp.ClientResponse, method: str) -> Any:
    """Decode the body of ``resp`` as JSON: None when empty, else it must parse."""
    if not body or body.isspace():
        return None
    try:
        try:
            # UTF-8, as RFC 8259 requires: decoding it first skips json's encoding sniffing.
            return jsonlib.loads(body.decode())
        except ValueError:  # not UTF-8, or a BOM: json's own detection (UTF-16/32, BOM)
            return jsonlib.loads(body)
    except ValueError:
        content_type = resp.headers.get("Content-Type", "no content type")
        raise UnexpectedResponseError(
            f"{method} {display_path(resp.url)} answered a body that is not JSON "
            f"({content_type.split(';')[0]})"
        ) from None
    except RecursionError:  # hostile nesting: a typed error, never a bare RecursionError
        raise UnexpectedResponseError(
            f"{method} {display_path(resp.url)} answered JSON nested too deeply to decode"
        ) from None
