"""attrs models for the printer-agnostic plugin API (status, files, controls).

Decoding is lenient: unknown keys are ignored (or kept in ``extra`` where the API documents
platform-specific keys), missing optional keys become None, an unknown job state becomes
``JobState.UNKNOWN`` and unknown feature bits are kept.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._convert import api_model, converter, wire
from .models import WebcamList

__all__ = [
    "CurrentPrint",
    "Features",
    "FileEntry",
    "GadgetSummary",
    "JobState",
    "JobStatus",
    "Light",
    "OctoEverywhereStatus",
    "PluginFile",
    "PrinterStatus",
    "Temps",
]


class JobState(enum.StrEnum):
    """The printer's common job state; ``UNKNOWN`` for values this version does not know."""

    IDLE = "idle"
    WARMING_UP = "warmingup"
    PRINTING = "printing"
    PAUSED = "paused"
    RESUMING = "resuming"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> JobState:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower():
                    return member
        return cls.UNKNOWN


class Features(enum.IntFlag):
    """Which printer controls the platform supports (``Features`` bitmask).

    Bits this version does not know are kept (``Features(96) & ~Features.PRINT_START``).
    """

    NONE = 0
    LIGHT = 1
    AXIS_MOVEMENT = 2
    HOMING = 4
    EXTRUSION = 8
    TEMPERATURE = 16
    PRINT_START = 32


@api_model
@attrs.frozen(kw_only=True)
class Temps:
    """Temperatures in Celsius (targets of 0 usually mean off)."""

    bed_actual: float | None = None
    bed_target: float | None = None
    hotend_actual: float | None = None
    hotend_target: float | None = None
    chamber_actual: float | None = None
    chamber_target: float | None = None


@api_model
@attrs.frozen(kw_only=True)
class CurrentPrint:
    """The current (or most recent) print."""

    progress: float | None = None
    duration_sec: int | None = None
    time_left_sec: int | None = None
    file_name: str | None = None
    est_total_filament_mm: int | None = wire("EstTotalFilUsedMm", default=None)
    est_total_filament_mg: int | None = wire("EstTotalFilWeightMg", default=None)
    current_layer: int | None = None
    total_layers: int | None = None
    temps: Temps = attrs.field(factory=Temps)


@api_model
@attrs.frozen(kw_only=True)
class Light:
    """A controllable light; pass its ``name`` to ``set_light``."""

    name: str
    on: bool = False


@api_model
@attrs.frozen(kw_only=True)
class JobStatus:
    """The job part of ``status``.

    ``material_system`` is the raw ``MaterialSystem`` object (sources, tools, units,
    routes) when asked for with ``include_material_system=True``; None otherwise.
    """

    state: JobState = JobState.UNKNOWN
    sub_state: str | None = None
    error: str | None = None
    lights: list[Light] = attrs.field(factory=list)
    current_print: CurrentPrint = attrs.field(factory=CurrentPrint)
    material_system: dict[str, Any] | None = None


@api_model
@attrs.frozen(kw_only=True)
class GadgetSummary:
    """Gadget (AI failure detection) as the plugin sees it."""

    last_score: float | None = None
    score_history: list[float] = attrs.field(factory=list)
    time_since_last_score_sec: float | None = None
    interval_sec: float | None = None
    is_suppressed: bool | None = None
    time_since_last_warn_sec: float | None = None
    time_since_last_pause_sec: float | None = None


@api_model
@attrs.frozen(kw_only=True)
class OctoEverywhereStatus:
    """OctoEverywhere's own view: the print id, when it started, Gadget."""

    most_recent_print_id: str | None = wire("MostRecentPrintIdStr", default=None)
    print_start_time_sec: float | None = None
    gadget: GadgetSummary | None = None


@api_model
@attrs.frozen(kw_only=True)
class PrinterStatus:
    """The printer-agnostic status (``GET status``)."""

    job: JobStatus = wire("JobStatus", factory=JobStatus)
    octoeverywhere: OctoEverywhereStatus | None = wire("OctoEverywhereStatus", default=None)
    platform_version: str | None = None
    features: Features = Features.NONE
    webcams: WebcamList | None = wire("ListWebcams", default=None)

    def supports(self, feature: Features) -> bool:
        """True when every bit of ``feature`` is advertised."""
        return (self.features & feature) == feature


#: Keys of a file entry that have fields; every other key is kept in ``extra``.
_FILE_KEYS: Final = frozenset(
    {
        "Type",
        "Name",
        "VirtualPath",
        "PlatformPath",
        "SizeBytes",
        "ModifiedTimeSec",
        "Permissions",
        "Children",
    }
)


@attrs.frozen(kw_only=True)
class FileEntry:
    """One file or folder of ``files/list``; platform-specific keys are kept in ``extra``."""

    type: str
    name: str
    virtual_path: str
    platform_path: str | None = None
    size_bytes: int | None = None
    modified_time_sec: float | None = None
    permissions: str | None = None
    children: list[FileEntry] = attrs.field(factory=list)
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_folder(self) -> bool:
        """True for folders."""
        return self.type.lower() == "folder"

    def walk(self) -> list[FileEntry]:
        """Return this entry and every descendant, depth first."""
        out = [self]
        for child in self.children:
            out += child.walk()
        return out


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _structure_file_entry(value: Any, _: Any) -> FileEntry:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a file entry object, got {type(value).__name__}")
    name = value.get("Name")
    virtual_path = value.get("VirtualPath")
    if not isinstance(name, str) or not isinstance(virtual_path, str):
        raise KeyError("Name/VirtualPath")
    children = value.get("Children") or []
    if not isinstance(children, list):
        raise TypeError("Children must be a list")
    size = value.get("SizeBytes")
    modified = value.get("ModifiedTimeSec")
    permissions = value.get("Permissions")
    return FileEntry(
        type=str(value.get("Type") or "file"),
        name=name,
        virtual_path=virtual_path,
        platform_path=value.get("PlatformPath")
        if isinstance(value.get("PlatformPath"), str)
        else None,
        size_bytes=int(size)
        if isinstance(size, int | float) and not isinstance(size, bool)
        else None,
        modified_time_sec=float(modified)
        if isinstance(modified, int | float) and not isinstance(modified, bool)
        else None,
        permissions=str(permissions) if permissions is not None else None,
        children=converter.structure(children, list[FileEntry]),
        extra={k: v for k, v in value.items() if k not in _FILE_KEYS},
    )


def _structure_file_list(value: Any, _: Any) -> list[FileEntry]:
    """Lists of entries skip one that cannot be decoded instead of failing whole."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    entries = []
    for item in value:
        try:
            entries.append(_structure_file_entry(item, FileEntry))
        except (KeyError, TypeError, ValueError):
            continue
    return entries


converter.register_structure_hook(FileEntry, _structure_file_entry)
converter.register_structure_hook_func(lambda t: t == list[FileEntry], _structure_file_list)


@api_model
@attrs.frozen(kw_only=True)
class PluginFile:
    """A file the plugin API uploaded or deleted."""

    virtual_path: str
    platform_path: str | None = None
    size_bytes: int | None = None
    printer_response: Any = None
