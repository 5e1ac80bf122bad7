"""Every type a public signature mentions can be imported from ``oe_async``.

Walks the annotations of every public class (its fields, properties and public methods)
and every public function in ``oe_async.__all__``; each class defined in ``oe_async`` that
appears there must be exported too, so an app can annotate its own code without reaching
into submodules.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import oe_async

EXPORTED = {id(getattr(oe_async, name)) for name in oe_async.__all__}


def _extra_names() -> dict[str, Any]:
    """Names that modules import only under TYPE_CHECKING, for resolving annotations."""
    import collections.abc  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415
    from aiohttp.abc import AbstractStreamWriter  # noqa: PLC0415

    from oe_async import _funnel, _transport  # noqa: PLC0415

    names: dict[str, Any] = {**vars(collections.abc), **vars(typing)}
    names.update(vars(oe_async))
    names.update(
        aiohttp=aiohttp,
        AbstractStreamWriter=AbstractStreamWriter,
        Funnel=_funnel.Funnel,
        Call=_funnel.Call,
        Transport=_transport.Transport,
    )
    return names


EXTRA = _extra_names()


def _hints(obj: Callable[..., Any] | type) -> dict[str, Any]:
    return typing.get_type_hints(obj, localns=EXTRA, include_extras=True)


def _classes_in(annotation: Any) -> Iterator[type]:
    """Every class an annotation names, through unions, generics and callables."""
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        yield annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, list):  # Callable[[A, B], R]
            for item in arg:
                yield from _classes_in(item)
        else:
            yield from _classes_in(arg)
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        yield origin


def _signatures(obj: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, hints) for a public function or for each public member of a class."""
    if inspect.isfunction(obj):
        yield obj.__qualname__, _hints(obj)
        return
    if not inspect.isclass(obj):
        return
    if obj.__module__.startswith("oe_async"):
        yield f"{obj.__qualname__} fields", _hints(obj)
    for name, member in vars(obj).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property) and member.fget is not None:
            yield f"{obj.__qualname__}.{name}", _hints(member.fget)
        elif isinstance(member, cached_property):
            yield f"{obj.__qualname__}.{name}", _hints(member.func)
        elif isinstance(member, staticmethod | classmethod):
            yield f"{obj.__qualname__}.{name}", _hints(member.__func__)
        elif inspect.isfunction(member):
            yield f"{obj.__qualname__}.{name}", _hints(inspect.unwrap(member))


def test_every_type_in_a_public_signature_is_exported() -> None:
    missing: dict[str, set[str]] = {}
    walked = 0
    for name in oe_async.__all__:
        for where, hints in _signatures(getattr(oe_async, name)):
            walked += 1
            for annotation in hints.values():
                for cls in _classes_in(annotation):
                    if cls.__module__.startswith("oe_async") and id(cls) not in EXPORTED:
                        missing.setdefault(cls.__qualname__, set()).add(where)
    assert walked > 150  # the walk really covers the API
    assert not missing, "\n".join(f"{cls}: used by {sorted(uses)}" for cls, uses in missing.items())


def test_the_aliases_apps_annotate_with_are_exported() -> None:
    for alias in (
        "UploadSource",
        "FormValue",
        "ProgressCallback",
        "MessageHandler",
        "StateHandler",
        "StatusHandler",
        "Hello",
        "Auth",
        "DEFAULT_TIMEOUT",
        "DEFAULT_STREAM_TIMEOUT",
    ):
        assert alias in oe_async.__all__, alias
