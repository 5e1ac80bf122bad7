"""attrs models: the App Connection an app persists, and the App API payloads.

Every model is frozen and keyword-only. Anything secret is redacted from ``repr()``.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Self

import attrs
import cattrs
from cattrs.strategies import configure_tagged_union
from yarl import URL

from ._convert import api_model, describe_error, stored_converter, wire
from ._enums import LenientEnum
from ._redact import KnownSecrets, unique_label
from .auth import BasicAuth, BearerAuth, is_localhost_name, is_loopback_host, redact_url
from .errors import InvalidArgumentError, PortalError

__all__ = [
    "AppConnection",
    "ConnectionInfo",
    "GadgetColor",
    "GadgetState",
    "GadgetStatus",
    "LiveLink",
    "PrinterLimits",
    "WebcamInfo",
    "WebcamList",
]

Auth = BasicAuth | BearerAuth

#: App Connection URLs live under this domain (``https://app-<long-id>.octoeverywhere.com``).
RELAY_DOMAIN: Final = "octoeverywhere.com"


def is_relay_host(host: str | None) -> bool:
    """True for ``octoeverywhere.com`` and its subdomains (the only production relay hosts).

    Give the URL's ``raw_host`` (ASCII, IDNA-encoded): a look-alike Unicode name never
    matches. Case and one trailing dot are ignored.
    """
    if not host:
        return False
    host = host.lower().removesuffix(".")
    return host == RELAY_DOMAIN or host.endswith("." + RELAY_DOMAIN)


#: A DNS host name: letters, digits and '-' in labels of 1-63, dots between, one trailing.
_HOST_NAME: Final = re.compile(
    r"(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?", re.IGNORECASE
)


def _check_host(url: URL, what: str) -> None:
    r"""Refuse a host that is neither a DNS name nor an IP literal.

    A NUL (``evil.example\x00.octoeverywhere.com``, or ``%00`` in a completion URL) passed
    the domain check: the resolver stops at it, so the credentials went to the attacker's
    host. The message never names the host (it may hold the connection's unique id).
    """
    host = url.raw_host or ""
    if _HOST_NAME.fullmatch(host) and len(host) <= 254:
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise InvalidArgumentError(
            f"{what} has an invalid host name (only letters, digits, '-' and '.' are allowed)"
        ) from None


def _to_url(value: URL | str) -> URL:
    if isinstance(value, URL):
        return value
    if isinstance(value, str):
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise InvalidArgumentError("App Connection url must not contain control characters")
        try:
            return URL(value.strip())
        except ValueError:
            raise InvalidArgumentError("App Connection url is not a valid URL") from None
    raise InvalidArgumentError(f"App Connection url must be a str or yarl.URL, not {type(value)}")


#: Why a ``localhost`` name is refused under ``allow_insecure_loopback``.
_LOOPBACK_BY_ADDRESS: Final = (
    "{what}: give a loopback test server by its address (127.0.0.1 or [::1]), not a name: "
    "a name is resolved through DNS, which can point it at another machine"
)


def check_base_url(url: URL, *, what: str, allow_insecure_loopback: bool) -> URL:
    """Validate an https base URL (or loopback http when explicitly allowed) and normalise it.

    The result is absolute, has no user info, query or fragment, and its path ends in ``/``
    so relative paths join beneath it.
    """
    if not url.absolute or not url.host:
        raise InvalidArgumentError(f"{what} must be an absolute URL")
    _check_host(url, what)
    if url.scheme == "http":
        if not is_loopback_host(url.host):
            if allow_insecure_loopback and is_localhost_name(url.host):
                raise InvalidArgumentError(_LOOPBACK_BY_ADDRESS.format(what=what))
            raise InvalidArgumentError(f"{what} must use https (http is refused)")
        if not allow_insecure_loopback:
            raise InvalidArgumentError(
                f"{what} uses http; pass allow_insecure_loopback=True to allow it for "
                "testing against a loopback server"
            )
    elif url.scheme != "https":
        raise InvalidArgumentError(f"{what} must use https, not {url.scheme!r}")
    if url.user is not None or url.password is not None:
        raise InvalidArgumentError(f"{what} must not contain user info; use auth instead")
    if url.query_string or url.fragment:
        raise InvalidArgumentError(f"{what} must not have a query string or fragment")
    if not url.path.endswith("/"):
        url = url.with_path(url.path + "/")
    return url


def _check_header_secret(name: str, value: object) -> None:
    """A secret that travels as a header value: a string of visible characters.

    CR, LF or NUL used to be accepted and then made every request fail with aiohttp's bare
    ``ValueError``. The message names the field, never the value.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"App Connection {name} must be a non-empty string")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        raise InvalidArgumentError(
            f"App Connection {name} must not contain whitespace or control characters"
        )


@attrs.frozen(kw_only=True, repr=False)
class AppConnection:
    """One user's permission for this app to reach one printer through OctoEverywhere.

    ``url`` stands in for the printer's LAN base URL; ``auth`` must ride on every request
    to it; ``app_token`` authorises the App APIs for this connection (leave it None for a
    connection used only for the relay: the App APIs then raise
    :class:`oe_async.InvalidArgumentError` and transfers skip the limits pre-check). Persist
    it with
    :meth:`to_dict` / :meth:`from_dict` (the secrets are returned by the portal only once).

    The URL must be https on ``octoeverywhere.com`` or a subdomain of it: the credentials
    ride on every request to it, so no other host is accepted, whoever builds the object
    (the portal's completion URL, stored data, your code).

    ``allow_insecure_loopback`` is the only exception: it accepts a loopback IP address
    (127.0.0.0/8, ``::1``; never a name such as ``localhost``, which DNS could point
    elsewhere) over https or http, for tests against
    :mod:`oe_async.testing`; it is never needed in production. It is stored by
    :meth:`to_dict` (a stored simulator connection must load again), but it can only ever
    point the credentials at the local machine: no setting lets them reach another host.
    """

    url: URL = attrs.field(converter=_to_url)
    auth: Auth = attrs.field()
    app_token: str | None = attrs.field(default=None)
    id: str | None = None
    printer_name: str | None = None
    local_ip: str | None = None
    octoprint_api_key: str | None = attrs.field(default=None)
    allow_insecure_loopback: bool = False

    @auth.validator
    def _check_auth(self, _: attrs.Attribute[Auth], value: Auth) -> None:
        if not isinstance(value, BasicAuth | BearerAuth):
            raise InvalidArgumentError("App Connection auth must be BasicAuth or BearerAuth")

    @app_token.validator
    def _check_token(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is None:
            return  # relay only: the App APIs then refuse with a clear error
        _check_header_secret(attribute.name, value)

    @octoprint_api_key.validator
    def _check_api_key(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:  # it travels as the X-Api-Key header on every request
            _check_header_secret(attribute.name, value)

    def __attrs_post_init__(self) -> None:
        normalised = check_base_url(
            self.url,
            what="App Connection url",
            allow_insecure_loopback=self.allow_insecure_loopback,
        )
        host = normalised.raw_host
        if not is_relay_host(host):
            # The message never names the host: it may carry the connection's unique id.
            if not is_loopback_host(host):
                if self.allow_insecure_loopback and is_localhost_name(host):
                    raise InvalidArgumentError(
                        _LOOPBACK_BY_ADDRESS.format(what="App Connection url")
                    )
                raise InvalidArgumentError(
                    f"App Connection url must be on {RELAY_DOMAIN} "
                    f"(https://app-<id>.{RELAY_DOMAIN}); the relay credentials are never "
                    "sent to another host"
                )
            if not self.allow_insecure_loopback:
                raise InvalidArgumentError(
                    "App Connection url is a loopback address; pass "
                    "allow_insecure_loopback=True to use a local test server "
                    "(oe_async.testing.Simulator)"
                )
        object.__setattr__(self, "url", normalised)

    def __repr__(self) -> str:
        parts = [
            f"url={redact_url(self.url)!r}",
            f"auth={self.auth!r}",
        ]
        if self.app_token is not None:
            parts.append("app_token='***'")
        if self.id is not None:
            parts.append("id='***'")
        if self.printer_name is not None:
            parts.append(f"printer_name={self.printer_name!r}")
        if self.local_ip is not None:
            parts.append(f"local_ip={self.local_ip!r}")
        if self.octoprint_api_key is not None:
            parts.append("octoprint_api_key='***'")
        return f"AppConnection({', '.join(parts)})"

    __str__ = __repr__

    @classmethod
    def from_completion_url(
        cls,
        url: str | URL,
        *,
        state: str | None = None,
        allow_insecure_loopback: bool = False,
    ) -> Self:
        """Build a connection from the portal's completion URL (query string or fragment).

        ``state`` is the value this app passed to :func:`oe_async.portal_url` for this
        flow: the URL's ``state`` must equal it (constant-time compare). Pass it whenever
        the app started the flow with one; without it, nothing binds the URL to that flow.

        Raises :class:`oe_async.PortalError` when the flow failed (``success=false``),
        required keys are missing (the message names them), a key is given twice or
        differently in the query and the fragment, the state is missing or wrong, or the
        URL rules of the class refuse the relay URL (not on octoeverywhere.com...).
        """
        from .portal import parse_completion_url  # noqa: PLC0415 (portal imports this module)

        fields = parse_completion_url(url, state=state)
        try:
            return cls(**fields, allow_insecure_loopback=allow_insecure_loopback)
        except PortalError:
            raise
        except InvalidArgumentError as err:  # messages name the field, never a value
            raise PortalError(f"The completion URL's {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict holding every field, secrets included: store it securely."""
        data: dict[str, Any] = stored_converter.unstructure(self)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a connection stored with :meth:`to_dict`; bad data raises a clear error."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError("App Connection data must be a mapping")
        try:
            return stored_converter.structure(data, cls)
        except InvalidArgumentError:
            raise
        except Exception as err:
            problems = _validation_problems(err)
            if problems is None:
                raise
            raise InvalidArgumentError(f"Invalid App Connection data: {problems}") from None


def known_secrets(connection: AppConnection, extra: Iterable[str] = ()) -> KnownSecrets:
    """The connection's secrets (and ``extra`` ones), to hide from text a server sent.

    The Basic user name, password and their encoded form (what a server echoing the
    ``Authorization`` header shows), the bearer token, the App token, the OctoPrint key, the
    connection id and the unique first label of the URL's host.
    """
    auth = connection.auth
    values: list[str | None] = [
        *extra,
        connection.app_token,
        connection.octoprint_api_key,
        connection.id,
        unique_label(connection.url.host or ""),
    ]
    if isinstance(auth, BasicAuth):
        values += [auth.username, auth.password, auth.header_value.partition(" ")[2]]
    else:
        values.append(auth.token)
    return KnownSecrets(value for value in values if value)


def _validation_problems(err: Exception) -> str | None:
    """Summarise a cattrs error by path; return None if it is not a decoding problem."""
    if not isinstance(err, cattrs.BaseValidationError):
        return None
    for inner in err.exceptions:
        if isinstance(inner, InvalidArgumentError):
            return str(inner)
    return "; ".join(describe_error(err, AppConnection))


configure_tagged_union(
    Auth,
    stored_converter,
    tag_generator=lambda cls: "basic" if cls is BasicAuth else "bearer",
    tag_name="type",
)


@api_model
@attrs.frozen(kw_only=True)
class PrinterLimits:
    """The account's transfer limits (Info API ``PrinterLimits``); None when not reported."""

    max_download_bytes: int | None = wire("MaxDownloadFileSizeBytes", default=None)
    max_upload_bytes: int | None = wire("MaxUploadFileSizeBytes", default=None)
    max_webcam_stream_seconds: int | None = wire("MaxSingleWebcamStreamLengthSeconds", default=None)


@api_model
@attrs.frozen(kw_only=True)
class ConnectionInfo:
    """The Info API's view of an App Connection (``GET /api/appconnection/info``).

    ``is_online`` False means the connection is valid but the printer is offline.
    Datetimes are timezone-aware (UTC).
    """

    printer_name: str | None = None
    local_ip: str | None = wire("PrinterLocalIp", default=None)
    is_online: bool = False
    last_disconnect_time: datetime | None = wire("LastDisconnectTimeUtc", default=None)
    last_connection_time: datetime | None = wire("LastConnectionTimeUtc", default=None)
    user_facing_url: str | None = wire("UserFacingPrinterUrl", default=None)
    limits: PrinterLimits = wire("PrinterLimits", factory=PrinterLimits)


@api_model
@attrs.frozen(kw_only=True)
class LiveLink:
    """A shareable Live Link (``POST /api/live/createfromappconnection``)."""

    live_id: str = wire("LiveId")
    url: str
    short_url: str | None = None


def _url_without_userinfo(value: str | None) -> str:
    """``repr()`` of a camera URL with its user info hidden.

    A Bambu Lab X1's RTSP URL carries the printer's LAN access code as its password.
    """
    if value is None or "@" not in value:
        return repr(value)
    scheme, sep, rest = value.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return repr(value)
    return repr(f"{scheme}://***@{rest.split('@', 1)[1]}")


@api_model
@attrs.frozen(kw_only=True)
class WebcamInfo:
    """One webcam as the plugin API lists it (``webcam/list``).

    ``rotation`` is 0, 90, 180 or 270 degrees; the URLs are the printer's own (often LAN)
    URLs: stream through :meth:`oe_async.Webcam.frames` with ``index=`` instead. They may
    carry credentials (Bambu Lab: ``rtsps://bblp:<access code>@...``): ``repr()`` hides a
    URL's user info, but treat the URLs themselves as secrets.
    """

    name: str | None = None
    flip_h: bool = False
    flip_v: bool = False
    rotation: int = 0
    enabled: bool = True
    snapshot_url: str | None = attrs.field(default=None, repr=_url_without_userinfo)
    stream_url: str | None = attrs.field(default=None, repr=_url_without_userinfo)


@api_model
@attrs.frozen(kw_only=True)
class WebcamList:
    """The printer's webcams and the one to show by default."""

    default_index: int = 0
    webcams: list[WebcamInfo] = attrs.field(factory=list)

    @property
    def default(self) -> WebcamInfo | None:
        """The default webcam, when the index is valid."""
        if 0 <= self.default_index < len(self.webcams):
            return self.webcams[self.default_index]
        return None


class GadgetState(LenientEnum, enum.IntEnum):
    """Gadget's state for the printer (App API ``State``)."""

    DISABLED = 0
    DISABLED_FOR_CURRENT_PRINT = 1
    IDLE = 2
    ACTIVE = 3
    PAUSED_DUE_TO_FAILURE = 4
    UNKNOWN = -1


class GadgetColor(LenientEnum, enum.StrEnum):
    """The colour Gadget suggests for its status text."""

    GREEN = "g"
    YELLOW = "y"
    RED = "r"
    WHITE = "w"
    UNKNOWN = "unknown"


@api_model
@attrs.frozen(kw_only=True)
class GadgetStatus:
    """Gadget AI failure detection for the current print (App API).

    ``status`` is meaningful while ``state`` is ``ACTIVE``; ``rating`` runs from 1 (failure)
    to 10 (perfect).
    """

    state: GadgetState = GadgetState.UNKNOWN
    status: str | None = None
    status_color: GadgetColor = GadgetColor.UNKNOWN
    rating: int | None = None
