"""The plugin's command statuses (750-789...): one table, a class per status with a meaning."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Final

from oe_async._redact import KnownSecrets, as_known_secrets, redact_text

from ._base import NEEDS_USER, NEITHER, TEMPORARY, CodeTable, OctoEverywhereError

# fmt: off
#: The plugin's command statuses with a class of their own:
#: (Status, class, what it answers, default message).
PLUGIN_CODES: Final[CodeTable[PluginCommandError]] = CodeTable("plugin_status", (
    (785, "PrinterSoftwareNotConnectedError", TEMPORARY,
        "The OctoEverywhere plugin is not connected to the printer's software."),
    (786, "InvalidPrinterStateError", NEITHER,
        "The printer is not in a state that allows this action."),
    (787, "TooManyClientsError", TEMPORARY,
        "Too many clients are connected to the printer."),
    (788, "UnsupportedOnPlatformError", NEITHER,
        "This printer does not support this action."),
    (789, "PluginNotAuthorizedError", NEEDS_USER,
        "The OctoEverywhere plugin is not authorised to control the printer."),
))
# fmt: on


@PLUGIN_CODES.family
class PluginCommandError(OctoEverywhereError):
    """A printer-agnostic plugin command answered with a ``Status`` other than 200.

    Attributes:
        plugin_status: the envelope's ``Status`` (750-789, or a command's own 4xx/5xx).
        message: the envelope's ``Error`` text (from the printer's plugin; secret-looking
            values hidden; it may hold any character: escape it for display), or a
            default sentence when it is empty.
        temporary: True for 785 and 787: the same command may succeed shortly.
        needs_user_action: True for 789: the plugin's printer credentials must be fixed.

    """

    plugin_status: int = 750
    temporary: bool = False
    default_message: ClassVar[str] = "The printer's OctoEverywhere plugin could not run it."

    def __init__(self, message: str | None = None, *, plugin_status: int | None = None) -> None:
        if plugin_status is not None:
            self.plugin_status = plugin_status
        # The plugin's own text, as it is (apps and the CLI escape it for display), with
        # secret-looking values (``token=...``, ``Authorization: ...``) hidden.
        message = redact_text(message or "", urls=False) or self.default_message
        self._set_message(message, f"{message} (plugin status {self.plugin_status})")


class PluginCommandFailedError(PluginCommandError):
    """Any plugin status without a class of its own (750-754, or a command-specific code)."""


class PrinterSoftwareNotConnectedError(PluginCommandError, code=785):
    """785: the plugin is not connected to the printer's software (OctoPrint, Klipper...)."""


class InvalidPrinterStateError(PluginCommandError, code=786):
    """786: the printer is not in a state that allows this (e.g. pause while idle)."""


class TooManyClientsError(PluginCommandError, code=787):
    """787: too many clients are connected to the printer."""


class UnsupportedOnPlatformError(PluginCommandError, code=788):
    """788: this printer platform does not support the command (e.g. files on PrusaLink)."""


class PluginNotAuthorizedError(PluginCommandError, code=789):
    """789: the plugin lacks valid credentials for the printer's own API."""


PLUGIN_CODES.check()


def plugin_error(
    plugin_status: int,
    message: str | None = None,
    *,
    secrets: KnownSecrets | Iterable[str] | None = None,
) -> PluginCommandError:
    """Map a plugin envelope ``Status`` to its exception (a generic one for unknown codes).

    ``secrets`` (the connection's own, see :func:`decode_http_error`) are hidden from the
    message wherever they appear.
    """
    cls = PLUGIN_CODES.get(plugin_status) or PluginCommandFailedError
    if message:
        message = as_known_secrets(secrets).hide(message)
    return cls(message, plugin_status=plugin_status)


#: Statuses a gateway (the relay) gives when it cannot get an answer from the printer.
