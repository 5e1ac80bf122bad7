"""The default timeouts, and how a caller's timeout becomes an ``aiohttp.ClientTimeout``."""

from __future__ import annotations

import math
from typing import Final

import aiohttp
import attrs

from oe_async.errors import InvalidArgumentError

#: aiohttp rounds a timeout of more than ``ceil_threshold`` (5 s by default) up to the next
#: whole second of the loop's clock, so ``timeout=7`` could end at 8.0 s. Every timeout
#: oe_async hands aiohttp carries this instead: deadlines end when they say.
NO_CEIL: Final = math.inf
#: Ordinary requests: 30 s in all, 10 s to connect.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, sock_connect=10, ceil_threshold=NO_CEIL)
#: Streams (downloads, webcams): no total limit, but every read must make progress in 30 s.
DEFAULT_STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(
    total=None, sock_connect=10, sock_read=30, ceil_threshold=NO_CEIL
)


def as_timeout(
    value: float | aiohttp.ClientTimeout | None, default: aiohttp.ClientTimeout
) -> aiohttp.ClientTimeout:
    """Accept seconds (total), a ``ClientTimeout``, or None (the default).

    The result never lets aiohttp round its timeouts up to whole seconds (:data:`NO_CEIL`).
    """
    if value is None:
        return default
    if isinstance(value, aiohttp.ClientTimeout):
        if value.ceil_threshold == NO_CEIL:
            return value
        return attrs.evolve(value, ceil_threshold=NO_CEIL)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < math.inf  # NaN fails both
    ):
        raise InvalidArgumentError("timeout must be a positive number of seconds or ClientTimeout")
    return aiohttp.ClientTimeout(total=float(value), ceil_threshold=NO_CEIL)
