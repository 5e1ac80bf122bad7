"""Console output, progress bars and the mapping from errors to exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from oe_async import errors
from oe_async.cli.config import NotLoggedInError
from oe_async.transfer import ProgressCallback

__all__ = ["EXIT_CODES", "error_line", "exit_code", "key_value_table", "print_json", "progress_bar"]

#: One exit code per error family, stable for scripts.
EXIT_OK: Final = 0
EXIT_UNEXPECTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_BAD_INPUT: Final = 3
EXIT_NOT_LOGGED_IN: Final = 4
EXIT_NETWORK: Final = 5
EXIT_REAUTH: Final = 6
EXIT_SUPPORTER: Final = 7
EXIT_SIZE_LIMIT: Final = 8
EXIT_OFFLINE: Final = 9
EXIT_RELAY: Final = 10
EXIT_PRINTER: Final = 11
EXIT_DATA: Final = 12

EXIT_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (NotLoggedInError, EXIT_NOT_LOGGED_IN),
    (errors.InvalidArgumentError, EXIT_BAD_INPUT),
    (errors.CommunicationError, EXIT_NETWORK),
    (errors.ReauthorizationRequiredError, EXIT_REAUTH),
    (errors.SupporterPerksRequiredError, EXIT_SUPPORTER),
    (errors.SizeLimitError, EXIT_SIZE_LIMIT),
    (errors.PrinterOfflineError, EXIT_OFFLINE),
    (errors.RelayError, EXIT_RELAY),
    (errors.HTTPStatusError, EXIT_PRINTER),
    (errors.PluginCommandError, EXIT_PRINTER),
    (errors.UploadSourceError, EXIT_BAD_INPUT),
    (errors.UnexpectedResponseError, EXIT_DATA),
    (errors.OctoEverywhereError, EXIT_DATA),
)

_HINTS: Final[Mapping[type[BaseException], str]] = {
    errors.ReauthorizationRequiredError: "run `oe-async login` with a new completion URL",
    errors.CommunicationError: "check the network and try again",
    errors.PrinterOfflineError: "the printer must be on and connected to OctoEverywhere",
}


def exit_code(err: BaseException) -> int:
    """The exit code of an expected error's family."""
    for cls, code in EXIT_CODES:
        if isinstance(err, cls):
            return code
    return EXIT_UNEXPECTED


def error_line(err: BaseException) -> str:
    """One line for the user: the message, and what to do when there is something to do."""
    message = getattr(err, "message", None) or str(err)
    if isinstance(err, errors.RelayError):
        message = f"{message} (OctoEverywhere status {err.status})"
    if isinstance(err, errors.SupporterPerksRequiredError):
        message = f"{message} See {err.recovery_url}"
    for cls, hint in _HINTS.items():
        if isinstance(err, cls):
            return f"{message}; {hint}"
    return message


def print_json(console: Console, data: Any) -> None:
    """Machine-readable output (``--json``)."""
    console.print_json(json.dumps(data, default=str))


def key_value_table(title: str, rows: Mapping[str, Any]) -> Table:
    """A two-column table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, "-" if value is None else str(value))
    return table


@contextmanager
def progress_bar(
    console: Console, description: str, total: int | None = None
) -> Iterator[ProgressCallback]:
    """Yield the ``progress`` callback for an oe_async transfer.

    On a terminal: a live bar. Elsewhere (CI, pipes): one line at the end. Pass the stderr
    console so ``--json`` output on stdout stays clean.
    """
    if not console.is_terminal:
        last = [0, total]

        def record(done: int, total_bytes: int | None) -> None:
            last[:] = [done, total_bytes]

        yield record
        console.print(f"{description}: {last[0]:,} bytes", highlight=False)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(description, total=total)

        def update(done: int, total_bytes: int | None) -> None:
            progress.update(task, completed=done, total=total_bytes)

        yield update
