"""The marker every simulator secret carries, for leak checks.

Passwords, tokens and webhook secrets handed out by :class:`oe_async.testing.Simulator`
all contain :data:`SECRET_MARKER`: a test can assert that the marker never shows up in
captured logs, reprs, exception messages or diagnostics, without knowing which simulator
made the secret.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SECRET_MARKER"]

SECRET_MARKER: Final = "oe-sim-secret"  # noqa: S105 (a marker, not a password)
