"""The request funnel: the one way a printer connection talks to the network.

A :class:`Funnel` belongs to one printer connection. It builds and validates a
:class:`Call` (:mod:`.calls`), picks the route (LAN or relay) and pins every secret header to
its origin (:mod:`.routes`), applies timeouts and the retry policy and translates every
failure into an :class:`oe_async.OctoEverywhereError` (:mod:`.attempts`), and opens
WebSockets with the same rules (:mod:`.handshake`). This package is the only code that calls
aiohttp for a printer or the App API. It knows nothing about uploads, webcams or webhooks;
the features (:mod:`oe_async.transfer`, :mod:`oe_async.webcam`, ...) are built on it, each
a :class:`Feature` (:mod:`.feature`): a namespace that holds the funnel.
"""

from .calls import MISSING, Call, Target
from .feature import Feature
from .funnel import Funnel
from .handshake import WebSocketOptions
from .routes import RouteArgs

__all__ = ["MISSING", "Call", "Feature", "Funnel", "RouteArgs", "Target", "WebSocketOptions"]
