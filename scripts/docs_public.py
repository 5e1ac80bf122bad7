"""The API reference as an app sees it: no private type in a public signature.

pdoc documents what the code says. An app sees less: it cannot construct a `Files` (its
constructor takes the library's private funnel), it reads `BambuSession.pause()` without
caring that a private base class defines it, it writes ``aiohttp.WSMessage`` where pdoc would
print ``aiohttp._websocket.models.WSMessage``. :class:`PublicView` changes pdoc's documentation
objects before they are rendered (pdoc's documented way to adjust its output) so that:

- a class whose constructor takes only private types in some parameter (no app can call it)
  shows no constructor; its docstring starts with the public members that hand one out
  (``oe_async.PrinterConnection.files``);
- a union loses its private alternatives (``KnownSecrets | Iterable[str] | None`` shows as
  ``Iterable[str] | None``), a private default (a sentinel) shows as ``...``;
- a public type defined in a private module shows under its public name, found by identity
  in its public parent packages, so moving a class between private modules changes nothing;
- a private base class is not shown and its public members show as the class's own; members
  inherited from a class documented under another name (``oe_async.errors.X`` documented as
  ``oe_async.X``) are listed and linked.

A type of this package is public when the reference documents it (a documented module
exports it); any other type when it has no private part, or a public name as above.
:meth:`PublicView.leaks` finds whatever private name is still shown in the rendered pages.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import pdoc.doc

#: A dotted name (``a.b._c``) in a signature.
DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
#: A private name or module part (one underscore; ``__init__`` is not private).
PRIVATE = re.compile(r"^_(?!_)")
Located = tuple[pdoc.doc.Module, pdoc.doc.Doc[Any]]


class _Shown:
    """An annotation or default shown as the given text (pdoc prints its ``repr()``)."""

    def __init__(self, text: str, of: Any = None) -> None:
        self.text = text
        #: The annotation shown so (what a signature mentions is looked up in it).
        self.of = of

    def __repr__(self) -> str:
        return self.text


def resolve(path: str) -> Any:
    """The object a dotted path names (its longest importable module, then attributes)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def public_name(path: str) -> str | None:
    """``path`` when it has no private part; else the same object's name in one of its
    public parent packages (``aiohttp._websocket.models.WSMessage`` -> ``aiohttp.WSMessage``,
    ``_asyncio.Task`` -> ``asyncio.Task``); None when it has none."""
    parts = path.split(".")
    private = [index for index, part in enumerate(parts) if PRIVATE.match(part)]
    if not private:
        return path
    if private[-1] == len(parts) - 1:
        return None  # a private name itself: _BambuCommands
    obj, name = resolve(path), parts[-1]
    if obj is None:
        return None
    prefixes = [parts[:cut] for cut in range(private[0], 0, -1)]
    if private[0] == 0:  # a private top-level module: _asyncio for asyncio
        prefixes.append([parts[0].lstrip("_")])
    for prefix in prefixes:
        try:
            module = importlib.import_module(".".join(prefix))
        except ImportError:
            continue
        if getattr(module, name, None) is obj:
            return ".".join([*prefix, name])
    return None


def walk(doc: pdoc.doc.Doc[Any], seen: set[str] | None = None) -> Iterator[pdoc.doc.Doc[Any]]:
    """``doc`` and everything documented in it (a class's own members)."""
    seen = set() if seen is None else seen
    if doc.fullname in seen:
        return
    seen.add(doc.fullname)
    yield doc
    if isinstance(doc, pdoc.doc.Namespace):
        for member in doc.own_members if isinstance(doc, pdoc.doc.Class) else doc.members.values():
            yield from walk(member, seen)


def shown(module: pdoc.doc.Module, doc: pdoc.doc.Doc[Any]) -> bool:
    """Whether pdoc shows ``doc`` on ``module``'s page (as its default ``is_public``)."""
    if "@private" in doc.docstring:
        return False
    if doc.name.startswith("_") and doc.name != "__init__":
        return doc.name in getattr(module.obj, "__all__", ())
    return True


def _mentions(annotation: Any, cls: type) -> bool:
    if isinstance(annotation, _Shown):
        annotation = annotation.of
    return annotation is cls or any(_mentions(arg, cls) for arg in typing.get_args(annotation))


class PublicView:
    """The reference's documentation objects, adjusted to what an app sees."""

    def __init__(self, modules: list[pdoc.doc.Module], package: str) -> None:
        self.modules = modules
        self.package = package
        #: Classes and functions a reference module shows, by ``id()``: where.
        self.documented: dict[int, Located] = {}
        for module in modules:
            for member in module.members.values():
                kind_ok = isinstance(member, pdoc.doc.Class | pdoc.doc.Function)
                if kind_ok and shown(module, member):
                    self.documented.setdefault(id(member.obj), (module, member))

    def everything(self) -> list[pdoc.doc.Doc[Any]]:
        return [doc for module in self.modules for doc in walk(module)]

    def is_private_type(self, annotation: Any) -> bool:
        """A type no app can name: one of this package the reference does not document, or
        one without a public name."""
        if not isinstance(annotation, type) or annotation is type(None):
            return False
        if annotation.__module__.partition(".")[0] == self.package:
            return id(annotation) not in self.documented
        return public_name(f"{annotation.__module__}.{annotation.__qualname__}") is None

    def apply(self) -> list[str]:
        """Adjust every documentation object; the classes no app gets hold of, as problems."""
        classes = [doc for doc in self.everything() if isinstance(doc, pdoc.doc.Class)]
        for cls in classes:
            self._fold_private_bases(cls)
            self._relink_inherited(cls)
        hidden: list[pdoc.doc.Class] = []
        for doc in self.everything():
            if doc.name.startswith("_") and doc.name != "__init__":
                continue  # not shown: its signature may not even evaluate
            if isinstance(doc, pdoc.doc.Variable):
                doc.__dict__["annotation_str"] = _public_text(doc.annotation_str)
                doc.__dict__["default_value_str"] = _public_text(doc.default_value_str)
            elif isinstance(doc, pdoc.doc.Function) and not self._public_signature(doc):
                owner = doc.fullname.rpartition(".")[0]
                if doc.name == "__init__":
                    hidden.extend(cls for cls in classes if cls.fullname == owner)
        return [problem for cls in hidden for problem in self._hide_constructor(cls)]

    def _public_annotation(self, annotation: Any) -> str | None:
        """The annotation without its private alternatives (an app cannot have one); None
        when nothing but private types (and None) is left."""
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            alternatives = typing.get_args(annotation)
        else:
            alternatives = (annotation,)
        kept = [alt for alt in alternatives if not self.is_private_type(alt)]
        if all(alt is type(None) for alt in kept):
            return None
        if len(kept) == len(alternatives):
            return _annotation_text(annotation)
        return " | ".join(_annotation_text(alt) for alt in kept)

    def _public_signature(self, fn: pdoc.doc.Function) -> bool:
        """Show ``fn``'s signature as an app sees it; False when some parameter takes only
        private types (no app can call it)."""
        signature = fn.signature
        callable_by_apps = True
        parameters = []
        for parameter in signature.parameters.values():
            changes: dict[str, Any] = {}
            if parameter.annotation is not inspect.Parameter.empty:
                text = self._public_annotation(parameter.annotation)
                if text is None:
                    callable_by_apps = False
                elif text != inspect.formatannotation(parameter.annotation):
                    changes["annotation"] = _Shown(text, of=parameter.annotation)
            default = parameter.default
            if default is not inspect.Parameter.empty and self.is_private_type(type(default)):
                changes["default"] = _Shown("...")  # a private sentinel: "optional"
            parameters.append(parameter.replace(**changes) if changes else parameter)
        returns = signature.return_annotation
        if returns is not inspect.Signature.empty:
            text = _annotation_text(returns)
            if text != inspect.formatannotation(returns):
                returns = _Shown(text, of=returns)
        fn.__dict__["signature"] = signature.replace(
            parameters=parameters, return_annotation=returns
        )
        fn.__dict__.pop("signature_without_self", None)
        return callable_by_apps

    def _hide_constructor(self, cls: pdoc.doc.Class) -> list[str]:
        cls.__dict__["own_members"] = [m for m in cls.own_members if m.name != "__init__"]
        cls.members.pop("__init__", None)
        sources = self._sources(cls.obj)
        if not sources:
            return [
                f"{cls.fullname}: its constructor takes a private type and no public member"
                " hands one out: say where an app gets one (or make the type public)"
            ]
        verb = "hands" if len(sources) == 1 else "hand"
        note = f"*An app does not construct a `{cls.qualname}`: {', '.join(sources)} {verb} one.*"
        cls.__dict__["docstring"] = f"{note}\n\n{cls.docstring}"
        return []

    def _sources(self, cls: type) -> list[str]:
        """The public properties and functions whose type or result holds a ``cls``."""
        found = set()
        for doc in self.everything():
            if doc.name.startswith("_") or doc.obj is cls:
                continue
            if isinstance(doc, pdoc.doc.Variable):
                annotation, suffix = doc.annotation, ""
            elif isinstance(doc, pdoc.doc.Function):
                annotation, suffix = doc.signature.return_annotation, "()"
            else:
                continue
            if _mentions(annotation, cls):
                found.add(f"`{doc.fullname}{suffix}`")
        return sorted(found)

    def _fold_private_bases(self, cls: pdoc.doc.Class) -> None:
        """A private base class is not shown; its public members show as the class's own."""
        private = {
            (base.__module__, base.__qualname__)
            for base in cls.obj.__mro__[1:]
            if base.__module__.partition(".")[0] == self.package and self.is_private_type(base)
        }
        cls.__dict__["bases"] = [base for base in cls.bases if base[:2] not in private]
        if not private & set(cls.inherited_members):
            return  # the private bases give no public member (JobState's LenientEnum)
        inherited = dict(cls.inherited_members)
        folded = [
            member
            for key in private
            for member in inherited.pop(key, [])
            if not member.name.startswith("_")
        ]
        cls.__dict__["inherited_members"] = inherited
        cls.__dict__["own_members"] = [*cls.own_members, *folded]

    def _relink_inherited(self, cls: pdoc.doc.Class) -> None:
        """Members inherited from a class pdoc does not render where it is defined
        (``oe_async.errors.OctoEverywhereError``) but documents elsewhere
        (``oe_async.OctoEverywhereError``) are listed, and link, as from there."""
        inherited: dict[tuple[str, str], list[pdoc.doc.Doc[Any]]] = {}
        for key, members in cls.inherited_members.items():
            base = resolve(".".join(key))
            if id(base) in self.documented:
                page, base_doc = self.documented[id(base)]
                key = (page.modulename, base_doc.qualname)  # noqa: PLW2901
                for member in members:
                    member.taken_from = (key[0], f"{key[1]}.{member.name}")
            inherited[key] = members
        cls.__dict__["inherited_members"] = inherited
        cls.__dict__["bases"] = [
            (module, qualname, _public_text(text)) for module, qualname, text in cls.bases
        ]

    def leaks(self, signature: str) -> list[str]:
        """The private names a rendered signature shows: a dotted name with a private part,
        a ``_name``, a type of this package the reference does not document."""
        text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", signature)  # not inside string values
        found = set(re.findall(r"(?<![\w.])_(?!_)\w+", text))
        for token in DOTTED.findall(text):
            parts = token.split(".")
            private = any(PRIVATE.match(part) for part in parts)
            if private or (parts[0] == self.package and not self._documented_path(token)):
                found.add(token)
        return sorted(found)

    def _documented_path(self, path: str) -> bool:
        """A module of the reference, or a path through one to something it documents."""
        if any(module.modulename == path for module in self.modules):
            return True
        parts = path.split(".")
        for cut in range(2, len(parts) + 1):
            obj = resolve(".".join(parts[:cut]))
            if obj is None:
                return False
            if id(obj) in self.documented:
                return True
        return False


def _public_text(text: str) -> str:
    """``text`` with every dotted name that has a public name written with it."""
    return DOTTED.sub(lambda match: public_name(match.group(0)) or match.group(0), text)


def _annotation_text(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    return _public_text(inspect.formatannotation(annotation))
