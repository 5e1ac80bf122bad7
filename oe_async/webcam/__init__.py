"""Webcam streams and snapshots: the thin aiohttp adapter around :mod:`oe_async.mjpeg`.

``printer.webcam.frames()`` opens an MJPEG stream through the request funnel and yields
:class:`oe_async.mjpeg.Frame` objects; with ``reconnect`` it renews the stream when the relay
ends it (each stream lasts at most the account's ``max_webcam_stream_seconds``), backs off on
609 and on temporary failures, and keeps frame indices continuous.

``frames(shared=True)`` gives many consumers of one camera one upstream stream: a shared
stream reads it in a task of its own (a ``FrameStream`` that reopens only while someone
watches) and hands each frame to every consumer's small buffer (:mod:`oe_async._fanout`).

The package holds three concepts: the :class:`Webcam` façade and its snapshots
(``_webcam``), a stream of one's own (``_stream``), and the shared streams (``_shared``).
Import the names from here.
"""

from __future__ import annotations

from ._shared import DEFAULT_BUFFER as DEFAULT_BUFFER
from ._shared import DEFAULT_LINGER as DEFAULT_LINGER
from ._stream import COALESCE_BELOW as COALESCE_BELOW
from ._stream import COALESCE_READS as COALESCE_READS
from ._stream import DEFAULT_SNAPSHOT_PATH as DEFAULT_SNAPSHOT_PATH
from ._stream import DEFAULT_STREAM_PATH as DEFAULT_STREAM_PATH
from ._stream import PLUGIN_SNAPSHOT as PLUGIN_SNAPSHOT
from ._stream import PLUGIN_STREAM as PLUGIN_STREAM
from ._stream import TRANSFORM_HEADER as TRANSFORM_HEADER
from ._stream import FrameStream, StreamState
from ._webcam import Webcam

__all__ = ["FrameStream", "StreamState", "Webcam"]
