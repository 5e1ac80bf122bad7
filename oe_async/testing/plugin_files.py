"""The plugin's file path rules, shared by the simulator's file and command routes (pure).

As the real plugin's ``FileSystemCommandHelper.ParsePathArg`` checks a ``path`` argument:
``<root>/<file>`` with a known root, no empty, ``.`` or ``..`` segments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oe_async.testing.files import FileStore

__all__ = ["check_file_path", "platform_path", "unsupported_files"]


def check_file_path(args: Mapping[str, Any] | None, roots: tuple[str, ...]) -> str:
    """The file's virtual path; ValueError (the plugin's message) when it is not valid."""
    path = None if args is None else args.get("path", args.get("Path"))
    normalised = str(path or "").replace("\\", "/").strip().strip("/")
    parts = normalised.split("/")
    if not normalised or any(part in ("", ".", "..") for part in parts):
        raise ValueError("Missing or invalid Path. Provide a file path like 'gcode/<file>'.")
    if parts[0].lower() not in roots:
        raise ValueError(f"Unsupported path root '{parts[0]}'.")
    if len(parts) < 2:
        raise ValueError("Invalid path. Include a file under its root.")
    return FileStore.normalise(normalised)


def platform_path(virtual: str) -> str:
    """The path the plugin reports for a file: relative to its root (as Bambu's FTP has it)."""
    return virtual.split("/", 1)[1] if "/" in virtual else virtual


def unsupported_files(platform: str | None) -> str:
    """The plugin's 788 message on a platform without file commands."""
    name = {"prusalink": "PrusaLink", "elegoo": "Elegoo", "elegoo_cc2": "Elegoo CC2"}.get(
        platform or "", str(platform)
    )
    return (
        f"File commands are unsupported on {name}. Use a platform with file system support "
        "for files/list, files/upload, files/download, and files/delete."
    )
