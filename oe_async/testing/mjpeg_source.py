r"""What the simulator's cameras send: real JPEG frames, framed with selectable quirks.

Pure functions and state (no I/O except :func:`load_jpegs`, which callers run in an
executor). Quirks, each reproducing something a real camera server does:

``no_length``         parts without ``Content-Length`` (the client must scan)
``quoted``            ``boundary="frame"`` in the Content-Type
``spaces``            ``boundary = frame``
``dashes_in_header``  ``boundary=--frame`` while parts use ``--frame``
``params``            more parameters after the boundary
``bare``              parts start with ``frame`` (no dashes)
``crlf_first``        parts start with ``\\r\\n--frame`` and bodies have no trailing CRLF
``lf``                LF-only line ends
``header_case``       header names in odd case
``no_first_boundary`` the first part has no boundary line before it
``glued``             a body is followed directly by the next boundary
``empty_length``      ``Content-Length:`` with no value
``dup_length``        ``Content-Length`` sent twice
``timestamp``         ``X-Timestamp`` part headers
``close``             a closing boundary when the stream ends
``tiny_chunks``       every byte sent as an HTTP chunk of its own (a camera behind a proxy
                      that flushes per byte; also what a chunk flood looks like)
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import attrs

__all__ = [
    "QUIRKS",
    "WebcamSettings",
    "build_part",
    "chunked",
    "closing",
    "content_type",
    "load_jpegs",
]

BOUNDARY: Final = b"frame"
QUIRKS: Final = frozenset(
    {
        "no_length",
        "quoted",
        "spaces",
        "dashes_in_header",
        "params",
        "bare",
        "crlf_first",
        "lf",
        "header_case",
        "no_first_boundary",
        "glued",
        "empty_length",
        "dup_length",
        "timestamp",
        "close",
        "tiny_chunks",
    }
)


@attrs.define(kw_only=True)
class WebcamSettings:
    """The simulated webcams (``sim.state.webcam``); change at any time."""

    #: Frames per second (0: as fast as the connection allows).
    fps: float = 15.0
    #: End each stream after this many frames (None: only the stream time limit).
    frames_per_stream: int | None = None
    #: End each stream after this many seconds (None: the account's
    #: ``max_webcam_stream_seconds``), like the relay does.
    stream_seconds: float | None = None
    #: Quirks applied to every stream (a request may add more with ``?quirks=a,b``).
    quirks: frozenset[str] = frozenset()
    #: Serve the ~100 KB frame instead of the small ones (benchmarks).
    large: bool = False
    #: Override the ``x-oe-webcam-transform`` header on every stream and snapshot. None:
    #: the plugin's webcam endpoints send the value matching ``webcams[index]`` (``none``,
    #: or ``fliph flipv rotate=<deg>``); the printer's own ``/webcam/`` URLs send none.
    transform: str | None = None
    #: Answer 609 when more than this many streams opened within ``window_seconds``.
    max_opens: int | None = None
    window_seconds: float = 10.0
    #: ``Retry-After`` seconds sent with a 609 (None: no header).
    retry_after: int | None = None
    #: What the plugin API's ``webcam/list`` reports.
    webcams: list[dict[str, object]] = attrs.field(
        factory=lambda: [
            {
                "Name": "Nozzle cam",
                "FlipH": False,
                "FlipV": True,
                "Rotation": 90,
                "Enabled": True,
                "SnapshotUrl": "http://127.0.0.1/webcam/?action=snapshot",
                "StreamUrl": "http://127.0.0.1/webcam/?action=stream",
            },
            {
                "Name": "Room",
                "FlipH": False,
                "FlipV": False,
                "Rotation": 0,
                "Enabled": True,
                "SnapshotUrl": "http://127.0.0.1/webcam2/?action=snapshot",
                "StreamUrl": "http://127.0.0.1/webcam2/?action=stream",
            },
        ]
    )
    default_index: int = 0


def load_jpegs() -> tuple[list[bytes], bytes]:
    """The packaged frames (small ones, and the ~100 KB one). Blocking: run off the loop."""
    folder = resources.files("oe_async.testing") / "jpegs"
    small = [(folder / f"frame_{number:02d}.jpg").read_bytes() for number in range(8)]
    return small, (folder / "large.jpg").read_bytes()


def content_type(quirks: frozenset[str]) -> str:
    """The response ``Content-Type`` for a stream with these quirks."""
    value = BOUNDARY.decode()
    if "dashes_in_header" in quirks:
        value = "--" + value
    if "quoted" in quirks:
        value = f'"{value}"'
    sep = " = " if "spaces" in quirks else "="
    extra = "; charset=binary" if "params" in quirks else ""
    return f"multipart/x-mixed-replace; boundary{sep}{value}{extra}"


def build_part(frame: bytes, quirks: frozenset[str], *, number: int, timestamp: float) -> bytes:
    """One part of the stream (part ``number`` of this response) with the quirks applied."""
    nl = b"\n" if "lf" in quirks else b"\r\n"
    delimiter = BOUNDARY if "bare" in quirks else b"--" + BOUNDARY
    if "header_case" in quirks:
        type_name, length_name = b"CONTENT-TYPE", b"cOnTeNt-LeNgTh"
    else:
        type_name, length_name = b"Content-Type", b"Content-Length"
    headers = type_name + b": image/jpeg" + nl
    if "empty_length" in quirks:
        headers += length_name + b":" + nl
    elif "no_length" not in quirks:
        headers += length_name + b": %d" % len(frame) + nl
        if "dup_length" in quirks:
            headers += length_name + b": %d" % len(frame) + nl
    if "timestamp" in quirks:
        headers += b"X-Timestamp: %.6f" % timestamp + nl
    if "crlf_first" in quirks:
        start = b"\r\n" + delimiter + b"\r\n"
        return start + headers + nl + frame
    start = b"" if number == 0 and "no_first_boundary" in quirks else delimiter + nl
    end = b"" if "glued" in quirks and "no_length" not in quirks else nl
    return start + headers + nl + frame + end


def chunked(data: bytes, size: int = 1) -> bytes:
    """``data`` in HTTP/1.1 chunked transfer coding, ``size`` bytes per chunk, then the end.

    For raw servers (benchmarks, tests) that write a prebuilt body: ``size=1`` is what a
    chunk flood, or a camera behind a proxy flushing every byte, sends.
    """
    pieces = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


def closing(quirks: frozenset[str]) -> bytes:
    """The closing boundary (only sent with the ``close`` quirk)."""
    nl = b"\n" if "lf" in quirks else b"\r\n"
    delimiter = BOUNDARY if "bare" in quirks else b"--" + BOUNDARY
    prefix = nl if "crlf_first" in quirks or "glued" in quirks else b""
    return prefix + delimiter + b"--" + nl
