"""Suite-wide secret canary: simulator secrets must never reach logs, reprs, errors or diagnostics.

Every secret a :class:`~oe_async.testing.Simulator` hands out contains
:data:`~oe_async.testing.SECRET_MARKER`. While a test runs, :class:`SecretWatch` records

* every log record of every logger, formatted (tracebacks included), with the ``oe_async``
  and ``aiohttp`` loggers turned up to DEBUG;
* every :class:`~oe_async.OctoEverywhereError` created (its ``str`` and ``repr``);
* every instance of a library class created (its ``repr``; ``diagnostics()`` for printers);
* every simulator started (its :meth:`~oe_async.testing.Simulator.secrets`, including the
  encoded ``Authorization`` values, which cannot carry the marker).

At the end of the test it searches all of that for the marker and those secrets.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import pkgutil
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import oe_async
from oe_async.errors import OctoEverywhereError
from oe_async.testing import SECRET_MARKER, Simulator

#: Library modules whose classes are watched (the simulator and the CLI are not the library).
_SKIPPED = ("oe_async.testing", "oe_async.cli", "oe_async.__main__")
_LOUD_LOGGERS = ("oe_async", "aiohttp")


def library_classes() -> list[type]:
    """Classes defined in the library that have their own ``__init__`` (not errors, enums)."""
    found: list[type] = []
    for info in pkgutil.walk_packages(oe_async.__path__, "oe_async."):
        if any(info.name == skip or info.name.startswith(skip + ".") for skip in _SKIPPED):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module.__name__
                and "__init__" in cls.__dict__
                and not issubclass(cls, BaseException)
                and not inspect.isabstract(cls)
                and cls.__dict__.get("_is_protocol") is not True
            ):
                found.append(cls)
    return found


def spellings(values: Iterable[str]) -> set[str]:
    """Each secret, plus the credential alone of an ``Authorization`` value.

    ``Basic <base64>`` carries no marker once the scheme is cut off: a redaction that hid
    only the scheme word (``Authorization: **REDACTED** b2Ut...``) went unnoticed.
    """
    found: set[str] = set()
    for value in values:
        found.add(value)
        scheme, _, credential = value.partition(" ")
        if scheme in ("Basic", "Bearer") and credential:
            found.add(credential)
    return found


class _Capture(logging.Handler):
    def __init__(self, check: Callable[[str, str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._check = check

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        self._check("log", text)


class SecretWatch:
    """Patches the hooks above for one test; :attr:`leaks` lists what it found.

    Texts are checked as they appear and only leaks are kept, so watching costs no memory
    over a long test (the leak checks run thousands of cycles under it).
    """

    _classes: list[type] | None = None

    def __init__(self) -> None:
        self.secrets: set[str] = {SECRET_MARKER}
        self.leaks: list[str] = []
        #: How many texts of each kind were checked ("log", "repr", "error message"...).
        self.checked: dict[str, int] = {}
        self.live: weakref.WeakSet[object] = weakref.WeakSet()
        self.capture = _Capture(self.check)
        self._undo: list[Callable[[], None]] = []

    def check(self, where: str, text: str) -> None:
        """Record ``text`` as a leak if it holds a secret."""
        kind = where.split(" of ", maxsplit=1)[0]
        self.checked[kind] = self.checked.get(kind, 0) + 1
        if any(secret in text for secret in self.secrets):
            self.leaks.append(f"{where}: {text[:300]!r}")

    def check_object(self, obj: object) -> None:
        self.check(f"repr of {type(obj).__name__}", repr(obj))
        if isinstance(obj, OctoEverywhereError):
            self.check("error message", str(obj))
            # Everything reachable from a raised error: its chain (aiohttp's exceptions
            # record the request headers), and each link's args and attributes.
            link: BaseException | None = obj
            seen: set[int] = set()
            while link is not None and id(link) not in seen:
                seen.add(id(link))
                self.check(
                    "error chain",
                    f"{link!r} {link.args!r} {getattr(link, '__dict__', {})!r}",
                )
                link = link.__cause__ or link.__context__
        if isinstance(obj, oe_async.PrinterConnection):
            self.check("diagnostics", repr(obj.diagnostics()))

    def _patch(self, owner: type, name: str, replacement: Any) -> None:
        if name in owner.__dict__:
            original = owner.__dict__[name]
            self._undo.append(lambda: setattr(owner, name, original))
        else:  # inherited: add ours, remove it afterwards
            self._undo.append(lambda: delattr(owner, name))
        setattr(owner, name, replacement)

    def _watch_init(self, cls: type) -> None:
        original = getattr(cls, "__init__")  # noqa: B009 (the inherited one, too)
        watch = self

        @functools.wraps(original)
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            watch.check_object(self)
            with contextlib.suppress(TypeError):  # no __weakref__ slot: checked once
                watch.live.add(self)

        self._patch(cls, "__init__", init)

    def __enter__(self) -> SecretWatch:
        root = logging.getLogger()
        root.addHandler(self.capture)
        self._undo.append(lambda: root.removeHandler(self.capture))
        for name in _LOUD_LOGGERS:
            logger = logging.getLogger(name)
            level = logger.level
            logger.setLevel(logging.DEBUG)
            self._undo.append(functools.partial(logger.setLevel, level))
        self._watch_init(OctoEverywhereError)
        if SecretWatch._classes is None:
            SecretWatch._classes = library_classes()
        for cls in SecretWatch._classes:
            self._watch_init(cls)
        original_start = Simulator.__dict__["start"]
        secrets = self.secrets

        async def start(sim: Simulator) -> None:
            await original_start(sim)
            secrets.update(spellings(sim.secrets()))

        self._patch(Simulator, "start", start)
        return self

    def __exit__(self, *exc: object) -> None:
        for obj in list(self.live):  # as they are now: closed, failed, renewed...
            self.check_object(obj)
        for undo in reversed(self._undo):
            undo()
