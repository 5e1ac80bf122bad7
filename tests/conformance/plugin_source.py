"""Where the real OctoEverywhere plugin's source comes from, and its extraction at test time.

The plugin (QuinnDamerell/OctoPrint-OctoEverywhere on GitHub, AGPL) is never part of this
repository: ``OE_PLUGIN_SOURCE`` names a local copy (a bare git directory such as a
``git clone --mirror``, or a checkout), read at test time and extracted into a temporary
directory. Its third-party requirements (requests, octoflatbuffers, sentry-sdk, ...,
OctoPrint for the OctoPrint platform) live in ``.venv-plugin``, which ``make
plugin-conformance`` builds; anywhere else these tests skip, saying why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Final

import attrs

#: The default location on the development machine (a bare mirror of the GitHub repository).
DEFAULT_SOURCE: Final = "/work/.mirror/QuinnDamerell+OctoPrint-OctoEverywhere/repo"
#: The packages of the plugin the conformance harness imports (nothing else is extracted).
PACKAGES: Final = (
    "octoeverywhere",
    "linux_host",
    "octoprint_octoeverywhere",
    "moonraker_octoeverywhere",
    "bambu_octoeverywhere",
    "prusalink_octoeverywhere",
    "elegoo_octoeverywhere",
    "elegoo_cc2_octoeverywhere",
)
#: What the plugin imports from PyPI (its requirements.txt, and OctoPrint for its platform).
REQUIRED_MODULES: Final = (
    "requests",
    "octoflatbuffers",
    "sentry_sdk",
    "octowebsocket",
    "octoprint",
)


@attrs.frozen
class PluginSource:
    """An extracted copy of the plugin: its directory and the commit it came from."""

    root: Path
    commit: str
    origin: str


def source_location() -> str:
    """``OE_PLUGIN_SOURCE``, or the development machine's mirror."""
    return os.environ.get("OE_PLUGIN_SOURCE", DEFAULT_SOURCE)


def why_unavailable() -> str | None:
    """Why the conformance suite cannot run here (None when it can)."""
    location = source_location()
    if not Path(location).exists():
        return (
            f"the OctoEverywhere plugin's source is not at {location}: set OE_PLUGIN_SOURCE to "
            "a clone (or bare git directory) of QuinnDamerell/OctoPrint-OctoEverywhere"
        )
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"the plugin's requirements are not installed here ({', '.join(missing)}): "
            "run `make plugin-conformance`, which builds .venv-plugin for them"
        )
    return None


def _git(location: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", location, *args],
        check=True,
        capture_output=True,
    ).stdout


def source_commit() -> str:
    """The commit of ``OE_PLUGIN_SOURCE`` (its HEAD), for the report."""
    location = source_location()
    try:
        return f"{_git(location, 'rev-parse', 'HEAD').decode().strip()} ({location})"
    except (OSError, subprocess.CalledProcessError):
        return f"{location} (not a git directory)"


def extract(dest: Path) -> PluginSource:
    """Extract the plugin's packages into ``dest`` (blocking: run it off the event loop)."""
    location = source_location()
    is_git = (Path(location) / "HEAD").exists() or (Path(location) / ".git").exists()
    if is_git:
        commit = _git(location, "rev-parse", "HEAD").decode().strip()
        archive = _git(location, "archive", "--format=tar", "HEAD", *PACKAGES)
        with tempfile.TemporaryFile() as handle:
            handle.write(archive)
            handle.seek(0)
            with tarfile.open(fileobj=handle) as tar:
                tar.extractall(dest, filter="data")
    else:  # a plain directory: copy the packages
        commit = "unknown (not a git directory)"
        for package in PACKAGES:
            shutil.copytree(Path(location) / package, dest / package)
    return PluginSource(root=dest, commit=commit, origin=location)
