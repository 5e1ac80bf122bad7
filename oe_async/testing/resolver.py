"""A DNS resolver for tests that sends every host name to loopback.

With it, tests can use production-shaped URLs (``https://app-1234.octoeverywhere.com:PORT``)
while every byte stays on 127.0.0.1::

    connector = aiohttp.TCPConnector(resolver=LoopbackResolver(), ssl=client_ssl_context)
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["LoopbackResolver"]


class LoopbackResolver(AbstractResolver):
    """Resolve every name to ``127.0.0.1`` (or to the loopback address ``hosts`` gives it)."""

    def __init__(self, hosts: Mapping[str, str] | None = None) -> None:
        self._hosts = {name.lower(): addr for name, addr in (hosts or {}).items()}
        for addr in self._hosts.values():
            if not addr.startswith("127."):
                raise ValueError(f"LoopbackResolver only maps to 127.0.0.0/8, not {addr!r}")

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Return the loopback address for ``host``."""
        return [
            ResolveResult(
                hostname=host,
                host=self._hosts.get(host.lower(), "127.0.0.1"),
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Nothing to release."""
