"""A throwaway certificate authority so the simulator can serve https (needs ``trustme``).

``Simulator(tls=True)`` makes one: every origin it serves (relay, App API, each
``add_printer()`` host) gets a certificate for its loopback IP address, and
``sim.client()`` trusts the authority (``OctoEverywhere(ssl_context=...)``). For a client
of your own, ``sim.ca.client_context()`` gives a context that trusts it::

    async with Simulator(tls=True) as sim:
        async with OctoEverywhere(app_id, ssl_context=sim.ca.client_context(), ...) as oe:
            ...

``trustme`` is in the ``test`` extra (``pip install 'oe-async[test]'``); it is imported
only when a certificate authority is made.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

__all__ = ["SimulatorCA"]


def _trustme_ca() -> trustme.CA:
    try:
        import trustme  # noqa: PLC0415 (a test extra: imported only when needed)
    except ImportError:
        raise ImportError(
            "serving the simulator over TLS needs trustme, which is in the test extra: "
            "pip install 'oe-async[test]' (or pip install trustme)"
        ) from None
    return trustme.CA()


class SimulatorCA:
    """A certificate authority made for one simulator run (its key never leaves memory).

    :meth:`server_context` writes temporary files (``ssl`` loads a certificate chain only
    from a file): call it from an executor, as the simulator does.
    """

    def __init__(self) -> None:
        self._ca = _trustme_ca()

    @property
    def cert_pem(self) -> str:
        """The authority's certificate (PEM): what a client must trust."""
        return self._ca.cert_pem.bytes().decode("ascii")

    def server_context(self, *hosts: str) -> ssl.SSLContext:
        """A server-side context with a new certificate for ``hosts`` (IP addresses or names).

        Blocking (temporary files): run it in an executor.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(*hosts).configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A new client context that trusts this authority only (verifying host names).

        No file is read (the certificate is loaded from memory).
        """
        return ssl.create_default_context(cadata=self.cert_pem)
