"""Bambu Lab printers over MQTT: topics, commands and the status report. No I/O.

A Bambu Lab printer publishes JSON reports on ``device/<serial>/report`` and takes commands
on ``device/<serial>/request``. After a ``pushall`` command it sends its whole state once
(~60 fields in a ``print`` object); after that it sends only what changed. :class:`BambuState`
merges those partial reports and gives a typed :class:`BambuReport` after each; the I/O
lives in ``printer.mqtt.bambu(serial)`` (:class:`oe_async.BambuPrinter`).

The serial number is treated as a secret (the plugin's connection info lists it among the
printer's credentials): reprs and messages never show it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from .errors import InvalidArgumentError, UnexpectedResponseError

__all__ = [
    "PRINTING_STATES",
    "BambuCommand",
    "BambuReport",
    "BambuState",
    "check_serial",
    "print_command",
    "pushall_command",
    "report_topic",
    "request_topic",
]

#: ``gcode_state`` values of a print in progress (paused not included).
PRINTING_STATES: Final = frozenset({"RUNNING", "PREPARE", "SLICING"})
#: The print commands :meth:`oe_async.BambuPrinter` sends (``{"print": {"command": ...}}``).
BambuCommand = Literal["pause", "resume", "stop"]
_COMMANDS: Final = frozenset({"pause", "resume", "stop"})


def check_serial(serial: str) -> str:
    """``serial`` if it can be a topic level: non-empty text without ``/ + #`` or U+0000.

    Raises:
        InvalidArgumentError: naming the rule broken (never quoting the serial).

    """
    if not isinstance(serial, str) or not serial.strip():
        raise InvalidArgumentError("a Bambu Lab serial number must be a non-empty str")
    if any(char in serial for char in "/+#\x00") or serial != serial.strip():
        raise InvalidArgumentError(
            "a Bambu Lab serial number cannot contain '/', '+', '#', U+0000 or outer spaces"
        )
    return serial


def report_topic(serial: str) -> str:
    """``device/<serial>/report``: where the printer publishes its reports."""
    return f"device/{check_serial(serial)}/report"


def request_topic(serial: str) -> str:
    """``device/<serial>/request``: where the printer takes commands."""
    return f"device/{check_serial(serial)}/request"


def pushall_command(sequence_id: str = "0") -> dict[str, Any]:
    """Ask for the printer's whole state: ``{"pushing": {"command": "pushall"}}``."""
    return {"pushing": {"sequence_id": str(sequence_id), "command": "pushall"}}


def print_command(command: BambuCommand, sequence_id: str = "0") -> dict[str, Any]:
    """``pause``, ``resume`` or ``stop`` the current print, as the printer expects it.

    Raises:
        InvalidArgumentError: another command.

    """
    if command not in _COMMANDS:
        raise InvalidArgumentError("a Bambu Lab print command is 'pause', 'resume' or 'stop'")
    return {"print": {"sequence_id": str(sequence_id), "command": command}}


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@attrs.frozen(kw_only=True)
class BambuReport:
    """The printer's state after a report: the known fields typed, everything in ``raw``.

    A field the printer did not send yet, or sent with an unexpected type, is None (its
    value is still in ``raw``). Temperatures are degrees Celsius.

    Attributes:
        gcode_state: ``IDLE``, ``PREPARE``, ``SLICING``, ``RUNNING``, ``PAUSE``,
            ``FINISH``, ``FAILED``... (as the printer sends it).
        mc_percent: print progress, 0-100.
        mc_remaining_time: minutes left, as the printer estimates them.
        layer_num, total_layer_num: the current layer and the layer count.
        subtask_name: the name of the job (usually the file name).
        gcode_file: the file printed.
        nozzle_temper, nozzle_target_temper: the nozzle, actual and target.
        bed_temper, bed_target_temper: the bed, actual and target.
        chamber_temper: the chamber (printers with that sensor; it has no target).
        print_error: the printer's error code (0: none).
        stg_cur: the printer's current stage number (``-1`` or 0 when idle).
        raw: the merged ``print`` object, every field the printer sent.

    """

    gcode_state: str | None = None
    mc_percent: int | None = None
    mc_remaining_time: int | None = None
    layer_num: int | None = None
    total_layer_num: int | None = None
    subtask_name: str | None = None
    gcode_file: str | None = None
    nozzle_temper: float | None = None
    nozzle_target_temper: float | None = None
    bed_temper: float | None = None
    bed_target_temper: float | None = None
    chamber_temper: float | None = None
    print_error: int | None = None
    stg_cur: int | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_print(cls, print_object: Mapping[str, Any]) -> BambuReport:
        """The typed view of a (merged) ``print`` object."""
        get = print_object.get
        return cls(
            gcode_state=_str(get("gcode_state")),
            mc_percent=_int(get("mc_percent")),
            mc_remaining_time=_int(get("mc_remaining_time")),
            layer_num=_int(get("layer_num")),
            total_layer_num=_int(get("total_layer_num")),
            subtask_name=_str(get("subtask_name")),
            gcode_file=_str(get("gcode_file")),
            nozzle_temper=_float(get("nozzle_temper")),
            nozzle_target_temper=_float(get("nozzle_target_temper")),
            bed_temper=_float(get("bed_temper")),
            bed_target_temper=_float(get("bed_target_temper")),
            chamber_temper=_float(get("chamber_temper")),
            print_error=_int(get("print_error")),
            stg_cur=_int(get("stg_cur")),
            raw=print_object,
        )

    @property
    def printing(self) -> bool:
        """True while a print runs (``RUNNING``, ``PREPARE`` or ``SLICING``; not paused)."""
        return self.gcode_state in PRINTING_STATES

    @property
    def paused(self) -> bool:
        """True while the print is paused (``PAUSE``)."""
        return self.gcode_state == "PAUSE"


def _merge(current: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Merge a partial report into the state: objects merge, everything else replaces."""
    for key, value in update.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, dict):
            _merge(old, value)
        else:
            current[key] = copy.deepcopy(value)


class BambuState:
    """The printer's state, merged from a full report and the partial ones that follow.

    Feed each decoded report message to :meth:`update`; start again with :meth:`reset`
    after a reconnect (then send ``pushall`` for a full report).
    """

    __slots__ = ("_print", "_report")

    def __init__(self) -> None:
        self._print: dict[str, Any] = {}
        self._report: BambuReport | None = None

    def __repr__(self) -> str:
        return f"<BambuState {self._report!r}>"

    @property
    def report(self) -> BambuReport | None:
        """The state after the last report with a ``print`` object (None before one)."""
        return self._report

    def update(self, message: object) -> BambuReport | None:
        """Merge one decoded report message; the new report if it had a ``print`` object.

        Messages without one (``info``, ``system``, ...) change nothing and give None.

        Raises:
            UnexpectedResponseError: ``message`` is not a JSON object, or its ``print`` is
                not one.

        """
        if not isinstance(message, Mapping):
            raise UnexpectedResponseError("a Bambu Lab report that is not a JSON object")
        update = message.get("print")
        if update is None:
            return None
        if not isinstance(update, Mapping):
            raise UnexpectedResponseError("a Bambu Lab report whose 'print' is not an object")
        _merge(self._print, update)
        self._report = BambuReport.from_print(copy.deepcopy(self._print))
        return self._report

    def reset(self) -> None:
        """Forget everything (a new connection starts over from a full report)."""
        self._print = {}
        self._report = None
