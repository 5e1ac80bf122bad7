"""The printer's LAN address as reported by the portal or the Info API: what may be trusted.

Pure rules, no I/O: :func:`lan_url_from_ip` parses a reported address strictly and
:func:`is_local_host` decides whether it is local enough to receive the printer headers over
plain http.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Final

from yarl import URL

from .errors import InvalidArgumentError

__all__ = ["is_local_host", "lan_url_from_ip", "local_lan_url"]

_LOGGER = logging.getLogger(__package__)

#: Where a printer on the user's LAN can be: RFC 1918, link-local, loopback, IPv6 ULA.
#: (Not ``ipaddress``'s ``is_private``, which also takes documentation and other reserved
#: ranges.)
_LOCAL_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)

_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def lan_url_from_ip(ip: str) -> URL:
    """``http://<ip>/`` for a LAN IP address or host name (IPv6 gets brackets).

    Raises:
        InvalidArgumentError: not an IP literal or a host name (a port, a path, ``]``...).

    """
    host = ip.strip() if isinstance(ip, str) else ""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if not host or len(host) > 253 or not all(_HOST_LABEL.fullmatch(x) for x in labels):
            raise InvalidArgumentError(
                "local IP must be an IP address or a host name, without a port or path"
            ) from None
        return URL.build(scheme="http", host=host.rstrip(".").lower(), path="/")
    if address.version == 6:
        return URL(f"http://[{address.compressed}]/")
    return URL(f"http://{address.compressed}/")


def is_local_host(host: str | None) -> bool:
    """True for a private, link-local or loopback IP literal, or an mDNS ``.local`` name.

    What the portal and the Info API report as the printer's LAN address is trusted only
    when it passes this: a public address or another DNS name would receive the printer
    headers (``X-Api-Key``) over plain http.
    """
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower().rstrip(".").endswith(".local")
    return any(address in network for network in _LOCAL_NETWORKS)


def local_lan_url(ip: str, *, what: str) -> URL | None:
    """The LAN base URL for a reported local IP, or None when it is not a local address.

    Raises:
        InvalidArgumentError: naming ``what`` when the value is malformed.

    """
    try:
        url = lan_url_from_ip(ip)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"{what}: {err}") from None
    if not is_local_host(url.host):
        _LOGGER.warning(
            "%s is not a private, link-local or loopback address or a .local name: not used "
            "as the LAN route (pass lan_url= to choose one)",
            what,
        )
        return None
    return url
