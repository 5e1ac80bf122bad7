"""Console output, progress bars and the mapping from errors to exit codes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
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

__all__ = [
    "EXIT_CODES",
    "error_line",
    "exit_code",
    "key_value_table",
    "print_json",
    "progress_bar",
    "shown",
]

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
EXIT_LOCAL_FILE: Final = 13

#: Each exit code and the error families it stands for. The first row that matches wins,
#: so a family comes before its parent (NotLoggedInError is an InvalidArgumentError, the
#: relay's own families are RelayErrors).
EXIT_CODES: Final[tuple[tuple[int, tuple[type[BaseException], ...]], ...]] = (
    (EXIT_NOT_LOGGED_IN, (NotLoggedInError,)),
    (EXIT_BAD_INPUT, (errors.InvalidArgumentError, errors.UploadSourceError)),
    (EXIT_NETWORK, (errors.CommunicationError,)),
    (EXIT_REAUTH, (errors.ReauthorizationRequiredError,)),
    (EXIT_SUPPORTER, (errors.SupporterPerksRequiredError,)),
    (EXIT_SIZE_LIMIT, (errors.SizeLimitError,)),
    (EXIT_OFFLINE, (errors.PrinterOfflineError,)),
    (EXIT_RELAY, (errors.RelayError,)),
    (EXIT_PRINTER, (errors.HTTPStatusError, errors.PluginCommandError)),
    (EXIT_DATA, (errors.UnexpectedResponseError, errors.OctoEverywhereError)),
    # The local file system (a full disk, no permission): after the library's errors, as
    # RequestTimeoutError is also an OSError (TimeoutError).
    (EXIT_LOCAL_FILE, (OSError,)),
)

_HINTS: Final[Mapping[type[BaseException], str]] = {
    errors.ReauthorizationRequiredError: "run `oe-async login` with a new completion URL",
    errors.CommunicationError: "check the network and try again",
    errors.PrinterOfflineError: "the printer must be on and connected to OctoEverywhere",
}


#: Characters a terminal would act on or that reorder what the user sees: C0 and C1 controls
#: (ESC starts colour, cursor and screen-clearing sequences; U+009B is a one-byte CSI), DEL,
#: line and paragraph separators, and the bidirectional marks, embeddings and isolates.
_UNPRINTABLE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object) -> str:
    r"""``value`` as text that is safe to put in rich markup and print on a terminal.

    Use it for everything that came from the network or a file name (printer names, file
    names, status text, error messages, URLs): square-bracket markup is escaped so it is
    shown, not interpreted (``[/nope]`` cannot crash, ``[link=...]`` makes no hyperlink), and
    control characters are shown as ``\x1b``-style escapes instead of reaching the terminal.
    """
    return escape(_UNPRINTABLE.sub(_visible, str(value)))


def exit_code(err: BaseException) -> int:
    """The exit code of an expected error's family."""
    for code, families in EXIT_CODES:
        if isinstance(err, families):
            return code
    return EXIT_UNEXPECTED


def error_line(err: BaseException) -> str:
    """One line for the user: the message, and what to do when there is something to do.

    The result is escaped with :func:`shown` (messages carry server text): print it with
    markup on, as is.
    """
    message = getattr(err, "message", None) or str(err)
    if isinstance(err, errors.CommunicationError) and str(err) != message:
        message = f"{message} ({err})"  # a terminal user wants the cause too
    if isinstance(err, errors.RelayError):
        message = f"{message} (OctoEverywhere status {err.status})"
    if isinstance(err, errors.SupporterPerksRequiredError):
        message = f"{message} See {err.recovery_url}"
    for cls, hint in _HINTS.items():
        if isinstance(err, cls):
            return shown(f"{message}; {hint}")
    return shown(message)


def print_json(console: Console, data: Any) -> None:
    r"""Machine-readable output (``--json``).

    ASCII only, so every control character in a value is a JSON escape (``\u001b``),
    never a terminal code.
    """
    console.print_json(json.dumps(data, default=str), ensure_ascii=True)


def key_value_table(title: str, rows: Mapping[str, Any]) -> Table:
    """A two-column table; every value goes through :func:`shown`."""
    table = Table(title=shown(title), show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows.items():
        table.add_row(shown(key), "-" if value is None else shown(value))
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
        console.print(f"{shown(description)}: {last[0]:,} bytes", highlight=False)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(shown(description), total=total)

        def update(done: int, total_bytes: int | None) -> None:
            progress.update(task, completed=done, total=total_bytes)

        yield update
