"""Test helpers for apps built on oe_async: a real OctoEverywhere simulator on loopback.

``async with Simulator() as sim`` starts an App API origin and an App Connection relay in
front of a fake printer; ``sim.client()`` and ``sim.app_connection()`` give a ready client.
For pytest, add ``pytest_plugins = ["oe_async.testing.pytest_plugin"]`` to your conftest to
get the ``oe_simulator``, ``oe_client`` and ``oe_printer`` fixtures. ``await
sim.add_printer()`` adds another printer (its own relay host, credentials and App API token)
for "one client, many printers" tests. ``Simulator(tls=True)`` serves https with a
certificate authority made for the run (:class:`SimulatorCA`, needs ``trustme``).
"""

from ._core import Fault, RecordedRequest, Redirect, SimulatorState
from .canary import SECRET_MARKER
from .resolver import LoopbackResolver
from .simulator import SimulatedPrinter, Simulator
from .tls import SimulatorCA

__all__ = [
    "SECRET_MARKER",
    "Fault",
    "LoopbackResolver",
    "RecordedRequest",
    "Redirect",
    "SimulatedPrinter",
    "Simulator",
    "SimulatorCA",
    "SimulatorState",
]
