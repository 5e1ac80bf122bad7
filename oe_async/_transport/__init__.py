"""What every printer of one client shares: the aiohttp session, the defaults, owned tasks.

:class:`Transport` (:mod:`.transport`) owns or borrows the aiohttp session and composes its
parts: the connection budget (:mod:`.budget`: :class:`ConnectionBudget`, the pools and the
bounded waits for a connection), the owned sessions' connector for kept-alive connections
(:mod:`.keepalive`), and the record of what close() ends (:mod:`.owned`: background tasks,
open streams, waiting calls). :mod:`.timeouts` holds the default timeouts. The request
funnel (:mod:`oe_async._funnel`) is the only code that sends through it;
:class:`oe_async.OctoEverywhere` is its public face.
"""

from .budget import DEFAULT_KEEPALIVE, ConnectionBudget, Pool
from .timeouts import DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT, NO_CEIL, as_timeout
from .transport import HANDSHAKE_AUTH, Transport

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_STREAM_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "HANDSHAKE_AUTH",
    "NO_CEIL",
    "ConnectionBudget",
    "Pool",
    "Transport",
    "as_timeout",
]
