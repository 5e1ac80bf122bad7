"""The one cattrs converter: JSON payloads <-> attrs models.

API models are marked with :func:`api_model`; their fields travel under PascalCase names
(``is_online`` <-> ``IsOnline``) unless a field names its wire key with :func:`wire`. Unknown
keys are ignored so new server fields never break old clients; missing optional keys become
their defaults (None). Other attrs classes (``AppConnection``) keep their snake_case names.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from yarl import URL

from .errors import UnexpectedResponseError

__all__ = [
    "api_model",
    "converter",
    "describe_error",
    "stored_converter",
    "structure",
    "structure_list",
    "wire",
]

T = TypeVar("T")
_LOGGER = logging.getLogger(__package__)

_WIRE_KEY: Final = "oe_async.wire"
_API_MODEL_FLAG: Final = "__oe_api_model__"

converter: Final = cattrs.Converter(forbid_extra_keys=False)


def wire(name: str, **kwargs: Any) -> Any:
    """Declare an attrs field whose JSON key is ``name`` (instead of the PascalCase default)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata[_WIRE_KEY] = name
    return attrs.field(metadata=metadata, **kwargs)


def api_model(cls: type[T]) -> type[T]:
    """Mark an attrs class as an API payload (PascalCase keys, lenient decoding)."""
    setattr(cls, _API_MODEL_FLAG, True)
    return cls


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _overrides(cls: type[Any]) -> dict[str, Any]:
    return {
        a.name: override(rename=a.metadata.get(_WIRE_KEY) or _pascal(a.name))
        for a in attrs.fields(cls)
        if a.init
    }


def _is_api_model(cls: Any) -> bool:
    return isinstance(cls, type) and cls.__dict__.get(_API_MODEL_FLAG, False) is True


def _structure_factory(cls: type[Any]) -> Callable[[Any, Any], Any]:
    structure_dict = make_dict_structure_fn(cls, converter, **_overrides(cls))

    def structure_model(value: Any, type_: Any) -> Any:
        # Servers send null for an object they have nothing to say about: use the defaults.
        return structure_dict({} if value is None else value, type_)

    return structure_model


def _unstructure_factory(cls: type[Any]) -> Callable[[Any], Any]:
    return make_dict_unstructure_fn(cls, converter, **_overrides(cls))


converter.register_structure_hook_factory(_is_api_model, _structure_factory)
converter.register_unstructure_hook_factory(_is_api_model, _unstructure_factory)


def _is_list_of_api_models(cls: Any) -> bool:
    args = typing.get_args(cls)
    return typing.get_origin(cls) is list and len(args) == 1 and _is_api_model(args[0])


def _tolerant_list_factory(cls: Any) -> Callable[[Any, Any], list[Any]]:
    """Lists of API models skip an item that cannot be decoded instead of failing whole."""
    (item_type,) = typing.get_args(cls)

    def structure_list(value: Any, _: Any) -> list[Any]:
        if value is None:  # null for "none of them"
            return []
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        items = []
        for position, item in enumerate(value):
            try:
                items.append(converter.structure(item, item_type))
            except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as err:
                _LOGGER.debug(
                    "skipped %s #%d: %s",
                    item_type.__name__,
                    position,
                    "; ".join(describe_error(err, item_type)),
                )
        return items

    return structure_list


converter.register_structure_hook_factory(_is_list_of_api_models, _tolerant_list_factory)


def _structure_datetime(value: Any, _: Any) -> datetime:
    """ISO-8601 (with or without ``Z``, up to 7 fractional digits) -> aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip())
    else:
        raise TypeError(f"expected an ISO-8601 string, got {type(value).__name__}")
    if parsed.tzinfo is None:  # the App APIs document UTC; some builds omit the suffix
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


converter.register_structure_hook(datetime, _structure_datetime)
converter.register_unstructure_hook(datetime, lambda value: value.isoformat())
converter.register_structure_hook(URL, lambda value, _: URL(str(value)))
converter.register_unstructure_hook(URL, str)


def _exactly(kind: type[T]) -> Callable[[Any, Any], T]:
    """A structure hook that takes only ``kind`` itself (no ``str(x)``, no ``bool(x)``)."""
    name = {str: "a string", bool: "true or false"}.get(kind, kind.__name__)

    def take(value: Any, _: Any) -> T:
        # bool is not an int here, nor 1 a bool; a str subclass is still a string.
        exact = type(value) is kind or (kind is str and isinstance(value, str))
        if not exact:
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        taken: T = value
        return taken

    return take


#: The converter for data an app stored (:meth:`oe_async.AppConnection.from_dict`): strict,
#: unlike the API one. A value of the wrong type is an error, never converted: ``"false"``
#: would become True, a null user name the credential ``"None"``, a list its text.
stored_converter: Final = cattrs.Converter(forbid_extra_keys=False)
stored_converter.register_structure_hook(str, _exactly(str))
stored_converter.register_structure_hook(bool, _exactly(bool))
# The string itself: AppConnection's own converter checks it (control characters...).
stored_converter.register_structure_hook(URL, _exactly(str))
stored_converter.register_unstructure_hook(URL, str)


def structure(data: Any, cls: type[T], *, what: str) -> T:
    """Decode a JSON payload into ``cls``; any mismatch raises :class:`UnexpectedResponseError`.

    ``what`` names the payload in the message (e.g. "Info API answer"). Messages list the
    offending paths, never the values (they may be secrets).
    """
    if not isinstance(data, Mapping):
        raise UnexpectedResponseError(f"{what}: expected a JSON object, got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as err:
        details = "; ".join(describe_error(err, cls))
        raise UnexpectedResponseError(f"{what} could not be decoded: {details}") from None


def structure_list(data: Any, cls: type[T], *, what: str) -> list[T]:
    """Decode a JSON list of ``cls`` (items that cannot be decoded are skipped and logged)."""
    if not isinstance(data, list):
        raise UnexpectedResponseError(f"{what}: expected a JSON list, got {type(data).__name__}")
    return converter.structure(data, list[cls])  # type: ignore[valid-type]


def _wire_name(cls: Any, name: str) -> str:
    if isinstance(cls, type) and attrs.has(cls):
        for a in attrs.fields(cls):
            if a.name == name:
                if _is_api_model(cls):
                    return str(a.metadata.get(_WIRE_KEY) or _pascal(a.name))
                return name
    return name


def describe_error(err: BaseException, cls: Any, path: str = "$") -> list[str]:
    """List decoding problems as ``"<problem> @ <JSON path>"`` using the wire key names.

    Values never appear (they may be secrets): only what was expected and where.
    """
    if isinstance(err, cattrs.ClassValidationError):
        with_notes, without = err.group_exceptions()
        problems: list[str] = []
        for exc, note in with_notes:
            problems += describe_error(exc, note.type, f"{path}.{_wire_name(cls, note.name)}")
        for exc in without:
            problems += describe_error(exc, None, path)
        return problems
    if isinstance(err, cattrs.IterableValidationError):
        iter_notes, iter_without = err.group_exceptions()
        problems = []
        for exc, inote in iter_notes:
            problems += describe_error(exc, inote.type, f"{path}[{inote.index!r}]")
        for exc in iter_without:
            problems += describe_error(exc, None, path)
        return problems
    if isinstance(err, KeyError):
        return [f"required field missing @ {path}"]
    if isinstance(err, TypeError) and str(err).startswith("expected "):
        return [f"{err} @ {path}"]  # our own wording: it names types, never the value
    expected = getattr(cls, "__name__", None) or (str(cls) if cls is not None else "")
    suffix = f", expected {expected}" if expected else ""
    return [f"invalid value{suffix} @ {path}"]
