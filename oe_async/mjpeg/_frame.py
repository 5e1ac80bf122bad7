"""Frames, the stream's bounds, and the camera's transform (``x-oe-webcam-transform``)."""

from __future__ import annotations

from typing import Final

import attrs

from oe_async.errors import OctoEverywhereError

DEFAULT_MAX_FRAME_SIZE: Final = 8 * 1024 * 1024
DEFAULT_MAX_HEADER_SIZE: Final = 8 * 1024
#: The JPEG start- and end-of-image markers.
SOI: Final = b"\xff\xd8"
EOI: Final = b"\xff\xd9"


class MJPEGError(OctoEverywhereError):
    """The stream cannot be parsed safely: a size bound was passed or no boundary was found."""


#: ``x-oe-webcam-transform`` rotations, clockwise degrees (as ``WebcamInfo.rotation``).
_ROTATIONS: Final = (0, 90, 180, 270)


def parse_transform(value: str | None) -> tuple[bool, bool, int]:
    """``(flip_h, flip_v, rotation)`` from an ``x-oe-webcam-transform`` header value.

    The OctoEverywhere plugin sends ``none``, or space-separated tokens ``fliph``,
    ``flipv`` and ``rotate=<degrees>`` (``"fliph rotate=90 "``), the same settings the
    plugin API's ``webcam/list`` reports as ``FlipH``, ``FlipV`` and ``Rotation``. Parsing is
    lenient: any case, commas as separators, ``rotate90``; unknown tokens and rotations
    other than 0/90/180/270 are ignored. None or an empty value means no transform.
    """
    flip_h = flip_v = False
    rotation = 0
    if not value:
        return flip_h, flip_v, rotation
    for word in value.lower().replace(",", " ").split():
        if word == "fliph":
            flip_h = True
        elif word == "flipv":
            flip_v = True
        elif word.startswith("rotate"):
            digits = word.removeprefix("rotate").lstrip("=:").strip()
            if digits.isdigit() and int(digits) % 360 in _ROTATIONS:
                rotation = int(digits) % 360
    return flip_h, flip_v, rotation


def transform_header(*, flip_h: bool, flip_v: bool, rotation: int) -> str:
    """The ``x-oe-webcam-transform`` value the plugin sends for these settings."""
    tokens = [name for name, on in (("fliph", flip_h), ("flipv", flip_v)) if on]
    if rotation % 360:
        tokens.append(f"rotate={rotation % 360}")
    return " ".join(tokens) if tokens else "none"


@attrs.frozen(kw_only=True, slots=True)
class Frame:
    """One image from a camera stream, or a snapshot.

    Attributes:
        data: the image bytes (JPEG for every camera seen so far).
        index: position in the stream, continuous across stream renewals.
        received_at: ``time.monotonic()`` when the frame was complete.
        content_type: the part's ``Content-Type`` (default ``image/jpeg``).
        timestamp: the part's ``X-Timestamp`` in seconds, when the server sent one.
        transform: the relay's ``x-oe-webcam-transform`` header as sent, if any: ``none``
            or space-separated ``fliph``, ``flipv``, ``rotate=<degrees>`` (see
            :func:`parse_transform`). Read it through :attr:`flip_h`, :attr:`flip_v` and
            :attr:`rotation`, which mean what the same-named fields of
            :class:`oe_async.WebcamInfo` (``printer.plugin.webcams()``) mean for the
            same camera; the rotation is clockwise (the plugin reports OctoPrint's
            counter-clockwise ``rotate90`` as 270).

    """

    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    index: int
    received_at: float
    content_type: str = "image/jpeg"
    timestamp: float | None = None
    transform: str | None = None

    @property
    def flip_h(self) -> bool:
        """Mirror the image horizontally (the user's webcam setting)."""
        return parse_transform(self.transform)[0]

    @property
    def flip_v(self) -> bool:
        """Flip the image vertically (the user's webcam setting)."""
        return parse_transform(self.transform)[1]

    @property
    def rotation(self) -> int:
        """Rotate the image clockwise by 0, 90, 180 or 270 degrees."""
        return parse_transform(self.transform)[2]
