"""The CLI's stored login: one JSON file, created with mode 0600, secrets never printed."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from oe_async.errors import InvalidArgumentError
from oe_async.models import AppConnection

__all__ = ["DEFAULT_APP_ID", "CliConfig", "NotLoggedInError", "default_config_path"]

DEFAULT_APP_ID = "oe-async-cli"


class NotLoggedInError(InvalidArgumentError):
    """There is no stored App Connection (or the file is unreadable)."""


def default_config_path() -> Path:
    """``$OE_ASYNC_CONFIG``, else ``$XDG_CONFIG_HOME/oe-async/connection.json``."""
    explicit = os.environ.get("OE_ASYNC_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "oe-async" / "connection.json"


@attrs.frozen(kw_only=True)
class CliConfig:
    """What ``oe-async login`` stores."""

    connection: AppConnection
    app_id: str = DEFAULT_APP_ID
    app_api_url: str | None = None

    def to_json(self) -> str:
        """The file's content (secrets included: never print it)."""
        data: dict[str, Any] = {"app_id": self.app_id, "connection": self.connection.to_dict()}
        if self.app_api_url:
            data["app_api_url"] = self.app_api_url
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> CliConfig:
        """Read the stored login (blocking: call it before the event loop starts)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotLoggedInError(
                f"not logged in: no App Connection at {path} "
                "(run `oe-async login <completion-url>`)"
            ) from None
        except (OSError, ValueError):
            raise NotLoggedInError(f"cannot read the stored App Connection at {path}") from None
        if not isinstance(data, dict) or not isinstance(data.get("connection"), dict):
            raise NotLoggedInError(f"the stored App Connection at {path} is malformed")
        return cls(
            connection=AppConnection.from_dict(data["connection"]),
            app_id=str(data.get("app_id") or DEFAULT_APP_ID),
            app_api_url=data.get("app_api_url"),
        )

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600 (folder 0700); never readable by others."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".connection.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
