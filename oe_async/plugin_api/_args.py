"""The checks of ``printer.plugin``'s arguments, before anything is sent.

Each raises :class:`oe_async.InvalidArgumentError` naming the argument and the bound.
Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from oe_async.errors import InvalidArgumentError
from oe_async.plugin_commands import (
    MAX_COMMAND_TIMEOUT_SEC,
    HTTPCommand,
    MQTTCommand,
    WebSocketCommand,
)

#: A send-command's transports, as the plugin names them.
COMMANDS: Final = (HTTPCommand, WebSocketCommand, MQTTCommand)


def check_number(
    name: str, value: object, *, low: float | None = None, high: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidArgumentError(f"{name} must be between {low:g} and {high:g} (got {value:g})")
    return float(value)


def check_integer(name: str, value: object, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(f"{name} must be an integer >= {low}")
    return value


def check_whole_mm(name: str, value: object, *, high: int) -> int:
    """Millimetres the plugin declares as int: whole numbers only (5 or 5.0, not 2.5)."""
    number = check_number(name, value, low=0, high=high)
    if not number.is_integer():
        raise InvalidArgumentError(
            f"{name} must be a whole number of millimetres (the plugin takes an int; "
            f"got {number:g}): round it as suits your printer"
        )
    return int(number)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False")
    return value


def check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string")
    return value


def optional(check: Callable[..., object], name: str, value: object, **bounds: Any) -> object:
    """Check an optional argument; None (leave the plugin's default) passes through."""
    return None if value is None else check(name, value, **bounds)


def command_body(**fields: object) -> dict[str, object]:
    """A command body from the fields the caller set (None means: leave the plugin default)."""
    return {key: value for key, value in fields.items() if value is not None}


def check_timeout_sec(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_COMMAND_TIMEOUT_SEC
    ):
        raise InvalidArgumentError(
            f"timeout_sec must be a whole number of seconds from 1 to {MAX_COMMAND_TIMEOUT_SEC}"
        )
    return value


def check_command(command: object) -> dict[str, Any]:
    """The send-command fields for a request (each class checked its own arguments)."""
    if not isinstance(command, COMMANDS):
        raise InvalidArgumentError(
            "command must be an HTTPCommand, a WebSocketCommand or an MQTTCommand"
        )
    return {"TransportType": command.transport, **command.payload()}
