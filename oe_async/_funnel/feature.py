"""The base of a feature namespace built on one printer's funnel (``printer.files``...)."""

from __future__ import annotations

from .funnel import Funnel


class Feature:
    """A namespace over one printer connection's :class:`Funnel`: ``printer.<feature>``.

    It holds the funnel (``self._funnel``, for the subclass) and names it in the repr,
    ``<Files of <Funnel printer ... route=relay>>``: the funnel's repr is secret-free.
    A subclass with fields of its own calls ``super().__init__(funnel)`` and adds their
    names to its own ``__slots__``.

    Args:
        funnel: the printer connection's request funnel.

    """

    __slots__ = ("_funnel",)

    def __init__(self, funnel: Funnel) -> None:
        self._funnel = funnel

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._funnel!r}>"
