"""The body of the part being read: views into the fed chunks, made a Frame once complete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._frame import EOI, SOI, Frame, MJPEGError

if TYPE_CHECKING:
    from ._headers import PartHeaders

_NEWLINES: Final = b"\r\n"


class FrameBody:
    """A frame's bytes as they arrive, never copied until the frame is complete.

    Attributes:
        parts: views into fed chunks, or whole fed chunks (a lone one becomes the frame's
            data without a copy).
        size: the bytes in ``parts``.
        tail: while scanning for a boundary, the body's last few bytes (a boundary line
            can straddle two chunks only if a line feed is among them).

    """

    __slots__ = ("parts", "size", "tail")

    def __init__(self) -> None:
        self.parts: list[memoryview | bytes] = []
        self.size = 0
        self.tail = b""

    def reset(self) -> None:
        """Start an empty body (the frame's bytes stay with whoever holds them)."""
        self.parts = []
        self.size = 0
        self.tail = b""

    def take_frame(
        self, index: int, received_at: float, headers: PartHeaders, transform: str | None
    ) -> Frame:
        """The complete body as a :class:`Frame`; the body is then empty for the next part.

        One copy of the bytes (a lone whole fed chunk: none).
        """
        parts = self.parts
        self.parts = []
        self.size = 0
        self.tail = b""
        return Frame(
            data=bytes(parts[0]) if len(parts) == 1 else b"".join(parts),
            index=index,
            received_at=received_at,
            content_type=headers.content_type,
            timestamp=headers.timestamp,
            transform=transform,
        )

    def append(self, view: memoryview, start: int, stop: int, keep: int, limit: int) -> None:
        """Add ``view[start:stop]``, keeping the last ``keep`` bytes in ``tail``.

        Raises:
            MJPEGError: the body is now over ``limit`` bytes (``max_frame_size``); it is
                dropped.

        """
        if stop > start:
            self.parts.append(view[start:stop])
            self.size += stop - start
            if stop - start >= keep:
                self.tail = bytes(view[stop - keep : stop])
            else:
                self.tail = (self.tail + bytes(view[start:stop]))[-keep:]
        if self.size > limit:
            size = self.size
            self.reset()
            raise MJPEGError(
                f"frame larger than max_frame_size ({size} > {limit} bytes) "
                "and no boundary in sight"
            )

    def end_of_image(self, chunk: bytes, pos: int, end: int) -> int:
        """Where the JPEG ends in ``chunk[pos:end]`` (just after its EOI marker), else -1.

        The marker may straddle the body so far and ``chunk``.
        """
        if self.parts and self.last(1) == EOI[:1] and chunk.startswith(EOI[1:], pos):
            return pos + 1
        found = chunk.find(EOI, pos, end)
        return found + len(EOI) if found >= 0 else -1

    def last(self, size: int) -> bytes:
        """The last ``size`` bytes of the body so far (a small copy)."""
        pieces: list[bytes] = []
        need = size
        for part in reversed(self.parts):
            if need <= 0:
                break
            piece = bytes(part[-need:])
            pieces.append(piece)
            need -= len(piece)
        return b"".join(reversed(pieces))

    def first(self, size: int) -> bytes:
        """The first ``size`` bytes of the body so far (a small copy)."""
        out = b""
        for part in self.parts:
            out += bytes(part[: size - len(out)])
            if len(out) >= size:
                break
        return out

    def drop_last(self, size: int) -> None:
        """Drop the body's last ``size`` bytes (the start of a boundary line)."""
        while size > 0 and self.parts:
            last = self.parts[-1]
            if len(last) <= size:
                self.parts.pop()
                size -= len(last)
                self.size -= len(last)
            else:
                self.parts[-1] = last[: len(last) - size]
                self.size -= size
                size = 0

    def trim_trailing_newlines(self) -> None:
        """Drop the line ends before a boundary line (not part of the image)."""
        while self.parts:
            last = self.parts[-1]
            keep = len(last)
            while keep and last[keep - 1] in _NEWLINES:
                keep -= 1
            self.size -= len(last) - keep
            if keep:
                self.parts[-1] = last[:keep]
                return
            self.parts.pop()

    def is_whole_jpeg(self) -> bool:
        """True when the body starts with SOI and ends with EOI."""
        if self.size < len(SOI) + len(EOI):
            return False
        head = self.parts[0]
        start = bytes(head[:2]) if len(head) >= 2 else self.first(2)
        return start == SOI and self.last(2) == EOI
