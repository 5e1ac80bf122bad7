"""The base of the API's enums that read a value this version does not know as ``UNKNOWN``."""

from __future__ import annotations

import enum
from typing import Self

__all__ = ["LenientEnum"]


class LenientEnum(enum.Enum):
    """An enum that reads a value it does not know as its ``UNKNOWN`` member.

    A newer OctoEverywhere or plugin may send values this version has never seen; a model
    holding one still decodes. Put it before the enum type and declare ``UNKNOWN``:
    ``class GadgetColor(LenientEnum, enum.StrEnum)``.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self:
        return cls["UNKNOWN"]
