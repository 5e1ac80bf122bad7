"""The CLI's stored login: one JSON file, created with mode 0600, secrets never printed."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs

from oe_async.errors import InvalidArgumentError
from oe_async.models import AppConnection

__all__ = ["DEFAULT_APP_ID", "CliConfig", "NotLoggedInError", "default_config_path"]

DEFAULT_APP_ID = "oe-async-cli"
#: A stored login is a few hundred bytes; anything much larger is not one.
MAX_CONFIG_SIZE: Final = 1024 * 1024


class NotLoggedInError(InvalidArgumentError):
    """There is no stored App Connection (or the file is unreadable or unsafe to use)."""


def check_private(path: Path, info: os.stat_result) -> str | None:
    """Refuse a login file others can change; a warning when others can read it.

    Blocking (called before the event loop starts). A file that another user owns, or that
    its group or everyone may write, could point this CLI (your uploads, your commands) at
    someone else's printer: refused, like ssh refuses such a key. One that others may read
    still loads (they cannot do more harm by our refusing), with a warning to tighten it and
    to revoke the connection if someone could have copied it. POSIX permissions only.
    """
    if os.name != "posix":
        return None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.getuid(), 0):
        raise NotLoggedInError(
            f"the stored App Connection at {path} belongs to another user; refusing to use it "
            "(run `oe-async login` again)"
        )
    if mode & 0o022:
        raise NotLoggedInError(
            f"the stored App Connection at {path} can be changed by other users (mode "
            f"{mode:04o}); refusing to use it: run `chmod 600 {path}` if you trust its "
            "content, else `oe-async login` again"
        )
    if mode & 0o044:
        return (
            f"{path} is readable by other users (mode {mode:04o}): run `chmod 600 {path}`, "
            "and revoke this App Connection in OctoEverywhere if others may have copied it"
        )
    return None


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
    def load(cls, path: Path, *, warn: Callable[[str], None] | None = None) -> CliConfig:
        """Read the stored login (blocking: call it before the event loop starts).

        Raises :class:`NotLoggedInError` when there is none, it cannot be read, it is
        malformed (deeply nested JSON included) or others can change it (see
        :func:`check_private`); ``warn`` gets the warning for a file others can read.
        """
        try:
            with path.open(encoding="utf-8") as handle:
                warning = check_private(path, os.fstat(handle.fileno()))
                data = json.loads(handle.read(MAX_CONFIG_SIZE + 1))
        except NotLoggedInError:  # from check_private (a ValueError: not "cannot read")
            raise
        except FileNotFoundError:
            raise NotLoggedInError(
                f"not logged in: no App Connection at {path} "
                "(run `oe-async login <completion-url>`)"
            ) from None
        except RecursionError:  # hostile nesting: a clear error, not a crash
            raise NotLoggedInError(
                f"the stored App Connection at {path} is malformed (nested too deeply)"
            ) from None
        except (OSError, ValueError):
            raise NotLoggedInError(f"cannot read the stored App Connection at {path}") from None
        if warning is not None and warn is not None:
            warn(warning)
        if not isinstance(data, dict) or not isinstance(data.get("connection"), dict):
            raise NotLoggedInError(f"the stored App Connection at {path} is malformed")
        app_id = data.get("app_id") or DEFAULT_APP_ID
        app_api_url = data.get("app_api_url")
        if not isinstance(app_id, str) or not isinstance(app_api_url, str | None):
            raise NotLoggedInError(f"the stored App Connection at {path} is malformed")
        return cls(
            connection=AppConnection.from_dict(data["connection"]),
            app_id=app_id,
            app_api_url=app_api_url,
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
