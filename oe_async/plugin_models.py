"""attrs models for the printer-agnostic plugin API (status, files, webcams, connection info).

Decoding is lenient: unknown keys are ignored (or kept in ``extra`` where the API documents
platform-specific keys), missing optional keys become None, an unknown job state becomes
``JobState.UNKNOWN`` and unknown feature bits are kept. The shapes are the real plugin's
(``octoeverywhere/commandhandler.py`` and each platform's command handler in
QuinnDamerell/OctoPrint-OctoEverywhere), checked by ``make plugin-conformance``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._convert import api_model, converter, wire
from ._enums import LenientEnum
from .models import WebcamList

__all__ = [
    "CurrentPrint",
    "Features",
    "FileDetails",
    "FileEntry",
    "GadgetSummary",
    "JobState",
    "JobStatus",
    "Light",
    "OctoEverywhereStatus",
    "PluginConnectionInfo",
    "PluginFile",
    "PrinterStatus",
    "Temps",
]


class JobState(LenientEnum, enum.StrEnum):
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
        return super()._missing_(value)


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

    ``lights`` is None when the platform cannot tell (the plugin sends ``null``, or no key:
    OctoPrint, PrusaLink), ``[]`` when it knows there are none, else each controllable
    light. ``material_system`` is the raw ``MaterialSystem`` object (sources, tools, units,
    routes) when asked for with ``include_material_system=True``; None otherwise (also when
    the platform cannot report one).
    """

    state: JobState = JobState.UNKNOWN
    sub_state: str | None = None
    error: str | None = None
    lights: list[Light] | None = None
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
    """A file the plugin API uploaded, deleted or started printing.

    ``virtual_path`` is where the file is now (the printer may rename an upload: Moonraker
    does, and the plugin reports the stored name); ``printer_response`` is the printer's
    own answer, decoded JSON when it was JSON (a string otherwise, None when there was
    none). ``size_bytes`` is set for uploads only.
    """

    virtual_path: str
    platform_path: str | None = None
    size_bytes: int | None = None
    printer_response: Any = None


@api_model
@attrs.frozen(kw_only=True)
class FileDetails:
    """A file's details (``files/details``): what the platform knows, the rest None.

    Bambu Lab reports only the size and time; Moonraker the slicer's metadata for
    ``gcode/`` files; OctoPrint its analysis. ``platform_details`` is the platform's own
    metadata object as it sent it (Moonraker's ``server.files.metadata``, OctoPrint's file
    object), None when it has none.
    """

    virtual_path: str
    platform_path: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    modified_time_sec: int | None = None
    est_print_time_sec: int | None = None
    est_filament_used_mm: int | None = None
    est_filament_weight_mg: int | None = None
    layer_count: int | None = None
    layer_height_mm: float | None = None
    first_layer_height_mm: float | None = None
    object_height_mm: float | None = None
    nozzle_diameter_mm: float | None = None
    filament_type: str | None = None
    filament_name: str | None = None
    bed_temp_c: float | None = wire("BedTempC", default=None)
    hotend_temp_c: float | None = wire("HotendTempC", default=None)
    chamber_temp_c: float | None = wire("ChamberTempC", default=None)
    print_start_time_sec: int | None = None
    slicer: str | None = None
    slicer_version: str | None = None
    thumbnail_count: int | None = None
    platform_details: Any = attrs.field(default=None, repr=False)


def _blank_is_none(value: str | None) -> str | None:
    """The plugin's interface says unsupported values may be empty strings: None here."""
    return value if value else None


@api_model
@attrs.frozen(kw_only=True, repr=False)
class PluginConnectionInfo:
    """How the plugin reaches the printer (``get-connection-info``), for local use.

    ``local_ip``/``local_port`` are the printer's LAN address as the plugin knows it; the
    rest are the printer's own credentials where the platform has them (Bambu Lab: the
    LAN ``access_code`` and ``serial_number``; Elegoo Centauri Carbon 2: the same;
    PrusaLink: ``api_key``, ``username``, ``password``; OctoPrint, Moonraker and Elegoo
    only the address). Fields the platform does not have are None (an empty string from
    the plugin counts as none). The credentials, and the serial number (it names the
    printer's MQTT topics, as the spec lists it with them), are secrets: ``repr()`` shows only
    whether each is set, and :func:`oe_async.diagnostics.redact` hides them; keep them on the
    device that asked, and use them only for the printer's own LAN address.
    """

    local_ip: str | None = attrs.field(default=None, converter=_blank_is_none)
    local_port: int | None = None
    serial_number: str | None = attrs.field(default=None, converter=_blank_is_none)
    access_code: str | None = attrs.field(default=None, converter=_blank_is_none)
    api_key: str | None = attrs.field(default=None, converter=_blank_is_none)
    username: str | None = attrs.field(default=None, converter=_blank_is_none)
    password: str | None = attrs.field(default=None, converter=_blank_is_none)

    def __repr__(self) -> str:
        shown = [
            f"local_ip={self.local_ip!r}",
            f"local_port={self.local_port!r}",
        ]
        shown += [
            f"{name}={'***' if getattr(self, name) else None}"
            for name in ("serial_number", "access_code", "api_key", "username", "password")
        ]
        return f"PluginConnectionInfo({', '.join(shown)})"

    __str__ = __repr__
