"""The base of every oe_async error, and the errors the client raises on its own.

Bad input, a closed client, network failures and answers it cannot decode; and
:class:`CodeTable`, how a family of coded errors (6xx, plugin statuses, CONNACK) is declared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final, Generic, TypeVar


class OctoEverywhereError(Exception):
    """Base class of every exception oe_async raises on purpose.

    Attributes:
        message: one short sentence for the user; never contains a URL, token or password.
            ``str(err)`` adds the details a log needs (status codes, method and path).
        temporary: True when trying the same call again by itself, after a short wait, may
            succeed (network, printer offline, 600/601/602/609/612...). Retry or poll on it.
        needs_user_action: True when the call keeps failing until a person acts: connect
            again (603/604/606), restore Supporter Perks (605), a smaller file or a larger
            account limit (607/608), update the plugin (610), beta access (611), the plugin's
            printer credentials (plugin 789). Show ``message``; stop polling.
        retry_after: seconds the server asked us to wait (``Retry-After``), else None;
            an integration can schedule its next poll with it.

    ``temporary`` and ``needs_user_action`` are never both True; an error may be neither
    (a bad argument, most of the printer's own 4xx, no active print to follow).

    """

    #: One short sentence for the user (never a URL, token or password).
    message: str
    temporary: bool = False
    needs_user_action: bool = False
    retry_after: float | None = None
    default_message: ClassVar[str] = "The request to the printer failed."

    def __init__(self, message: str | None = None, *args: object) -> None:
        self.message = message or self.default_message
        super().__init__(self.message, *args)

    def __init_subclass__(cls, *, code: int | None = None, **kwargs: Any) -> None:
        """``class PrinterOfflineError(RelayError, code=601)``: the row of its family's table."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            CodeTable.of(cls).declare(cls, code)

    def _set_message(self, message: str, text: str) -> None:
        """Set ``message`` (for users) and the ``str()`` text (it adds details for logs)."""
        self.message = message
        Exception.__init__(self, text)


#: What a coded error answers (the two flags of :class:`OctoEverywhereError`).
TEMPORARY: Final = "temporary"
NEEDS_USER: Final = "needs_user_action"
NEITHER: Final = "neither"

_E = TypeVar("_E", bound=OctoEverywhereError)


class CodeTable(Generic[_E]):
    """One family of coded errors, declared from one table.

    OctoEverywhere's 6xx codes, the plugin's command statuses, MQTT's CONNACK return codes:
    each row is ``(code, class name, what it answers, default message)``, what it answers
    being :data:`TEMPORARY`, :data:`NEEDS_USER` or :data:`NEITHER`. A class of the family
    names its row with ``code=`` (``class PrinterOfflineError(RelayError, code=601)``): it
    stays an ordinary class with its own docstring, and takes its code (as ``attribute``),
    its flags and its default message from the row. The family's base is marked with
    :meth:`family`; :meth:`get` finds the class of a code.
    """

    #: Each family's base class and its table.
    _families: ClassVar[dict[type[OctoEverywhereError], CodeTable[Any]]] = {}

    def __init__(self, attribute: str, rows: Iterable[tuple[int, str, str, str]]) -> None:
        #: The class attribute that holds the code (``status``, ``plugin_status``...).
        self.attribute: Final = attribute
        self._rows = {row[0]: row for row in rows}
        self._classes: dict[int, type[_E]] = {}

    def family(self, base: type[_E]) -> type[_E]:
        """Class decorator: ``base`` and its subclasses take their ``code=`` from this table."""
        self._families[base] = self
        return base

    @classmethod
    def of(cls, error: type[OctoEverywhereError]) -> CodeTable[Any]:
        """The table of the family ``error`` belongs to."""
        for base in error.__mro__:
            table = cls._families.get(base)
            if table is not None:
                return table
        raise TypeError(f"{error.__name__}: code= needs a family with a CodeTable")

    def declare(self, cls: type[_E], code: int) -> None:
        """Give ``cls`` its row: called when the class is created (``code=``)."""
        _, name, answers, message = self._rows[code]
        if cls.__name__ != name:
            raise TypeError(f"code {code} is {name}'s, not {cls.__name__}'s")
        setattr(cls, self.attribute, code)
        # Set where they differ from what the class inherits: the class shows what it adds.
        for flag, value in (
            ("temporary", answers == TEMPORARY),
            (NEEDS_USER, answers == NEEDS_USER),
        ):
            if getattr(cls, flag) is not value:
                setattr(cls, flag, value)
        cls.default_message = message
        self._classes[code] = cls

    def get(self, code: int) -> type[_E] | None:
        """The class declared for ``code``, or None."""
        return self._classes.get(code)

    def check(self) -> None:
        """Raise unless every row has its class (run once the family is declared)."""
        missing = sorted(set(self._rows) - set(self._classes))
        if missing:
            raise TypeError(f"codes without a class: {missing}")


class InvalidArgumentError(OctoEverywhereError, ValueError):
    """An argument was rejected before anything was sent; the message names it."""

    default_message = "An argument was not valid; nothing was sent."


class PortalError(InvalidArgumentError):
    """The portal's completion URL reports a failure or lacks what a connection needs."""

    default_message = "The connection to the printer was not completed."


class ClientClosedError(OctoEverywhereError):
    """The :class:`oe_async.OctoEverywhere` client was closed.

    Raised by every call made after ``close()``, and by every stream, download, WebSocket
    and subscription that was still running when it closed (they end within a second).
    Not temporary: this client will never work again; make a new one.
    """

    default_message = "The client was closed."


class CommunicationError(OctoEverywhereError):
    """The request did not complete: connection refused or dropped, DNS, TLS, bad framing.

    Always temporary from the library's point of view; retry later.
    """

    temporary = True
    default_message = "The printer could not be reached. Try again shortly."

    def __init__(
        self, message: str | None = None, *args: object, detail: str | None = None
    ) -> None:
        """``message`` is for users; ``detail`` (method, path, cause) goes to ``str(err)``."""
        super().__init__(message, *args)
        if detail is not None:
            self._set_message(self.message, detail)


class RequestTimeoutError(CommunicationError, TimeoutError):
    """A connect, read or total timeout expired. Also a built-in ``TimeoutError``."""

    default_message = "The printer did not answer in time. Try again shortly."


class ConnectionPoolExhaustedError(CommunicationError):
    """Every connection oe_async may use was busy for the whole wait (temporary).

    The message names the pool, its limit and how many connections were busy. Raise the
    limit (``OctoEverywhere(connections=ConnectionBudget(...))``, or a bigger
    ``TCPConnector(limit=...)`` on a borrowed session) or run fewer long-lived streams.
    """

    def __init__(self, message: str, *, pool: str, limit: int, busy: int) -> None:
        super().__init__(message)
        #: ``"requests"`` or ``"streams"`` (or ``"session"`` for a borrowed session).
        self.pool: str = pool
        #: The number of connections that pool may hold.
        self.limit: int = limit
        #: How many were busy when the wait ended.
        self.busy: int = busy


class UnexpectedResponseError(OctoEverywhereError):
    """A success status came with a body oe_async cannot decode (not JSON, missing fields)."""

    default_message = "The answer could not be understood."


class UploadSourceError(OctoEverywhereError):
    """The upload's own source failed or changed while it was being sent.

    A read error, a file that grew or shrank, an iterator that yielded something other than
    bytes. The request was aborted: nothing truncated reached the printer as a whole file.
    """

    default_message = "The file could not be read while it was being uploaded."
