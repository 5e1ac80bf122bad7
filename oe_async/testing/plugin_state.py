"""Settable state behind the simulator's plugin API, Gadget and webhooks (pure data)."""

from __future__ import annotations

import secrets
from typing import Any

import attrs

from oe_async.testing.canary import SECRET_MARKER

__all__ = ["GadgetSettings", "PluginSettings", "WebhookSettings", "example_material_system"]


def example_material_system() -> dict[str, Any]:
    """A one-AMS-slot, one-nozzle material system as the documentation shows it."""
    return {
        "Capabilities": {
            "SupportsMultiMaterial": True,
            "SupportsMultiTool": False,
            "SupportsSourceRouting": True,
            "SupportsDrying": False,
        },
        "Sources": [
            {
                "Id": "bambu-ams-0-source-0",
                "Index": 0,
                "Name": "AMS 1 Slot 1",
                "UnitId": "bambu-ams-0",
                "Position": 0,
                "IsEmpty": False,
                "Material": {"Type": "PLA", "ColorHex": "FF6600", "RemainingPercent": 73.0},
            }
        ],
        "Tools": [{"Id": "tool-0", "Index": 0, "Name": "Nozzle", "IsActive": True}],
        "Units": [{"Id": "bambu-ams-0", "Index": 0, "Name": "AMS 1", "HumidityPercent": 36.0}],
        "Routes": [{"SourceId": "bambu-ams-0-source-0", "ToolId": "tool-0", "State": "loaded"}],
    }


@attrs.define(kw_only=True)
class PluginSettings:
    """The printer as OctoEverywhere's plugin reports it (``sim.state.plugin``)."""

    job_state: str = "printing"
    sub_state: str | None = None
    error: str | None = None
    #: The ``Features`` bitmask (63: every control, print start included).
    features: int = 63
    platform_version: str = "OctoPrint 1.10.3"
    lights: list[dict[str, Any]] = attrs.field(factory=lambda: [{"Name": "chamber", "On": True}])
    material_system: dict[str, Any] | None = attrs.field(factory=example_material_system)
    #: Force a command's envelope: {"pause": (786, "Not printing")}.
    failures: dict[str, tuple[int, str]] = attrs.field(factory=dict)
    #: The envelope key for results; "Result:" reproduces a typo in one public example.
    result_key: str = "Result"
    #: Every command received: (name, JSON body or query).
    commands: list[tuple[str, Any]] = attrs.field(factory=list)


@attrs.define(kw_only=True)
class GadgetSettings:
    """What the Gadget App API answers (``sim.state.gadget``)."""

    state: int = 3
    status: str | None = "Looking good"
    status_color: str = "g"
    rating: int | None = 9


@attrs.define(kw_only=True)
class WebhookSettings:
    """The registered notification webhook (``sim.state.webhook``)."""

    url: str | None = None
    event_types: list[int] = attrs.field(factory=list)
    secret_key: str = attrs.field(
        factory=lambda: f"{SECRET_MARKER}-whsec-{secrets.token_urlsafe(16)}"
    )
    printer_id: str = "sim-printer-id"
    #: Every delivery: (event type, status code answered, or None when the call failed).
    deliveries: list[tuple[int, int | None]] = attrs.field(factory=list)
