"""Diagnostics: everything through oe_async.redact(), no secret and no relay URL."""

from typing import Any

import attrs
from oe_async import redact

from homeassistant.core import HomeAssistant

from .coordinator import OctoEverywhereConfigEntry


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: OctoEverywhereConfigEntry
) -> dict[str, Any]:
    """Return the entry, the client's diagnostics and the last refresh, redacted."""
    coordinator = entry.runtime_data
    data = coordinator.data
    return {
        "entry": redact({"title": entry.title, "version": entry.version, "data": dict(entry.data)}),
        "printer": coordinator.printer.diagnostics(),
        "last_update_success": coordinator.last_update_success,
        "last_exception": redact(repr(coordinator.last_exception)),
        "info": redact(attrs.asdict(data.info)),
        "status": redact(attrs.asdict(data.status)),
    }
