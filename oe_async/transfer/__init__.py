"""Streaming uploads and downloads: progress, account limits, resume, no blocking I/O.

Bytes are streamed in chunks, never held whole in memory. Every file operation (stat,
open, read, write, fsync, rename, unlink) runs in the default executor, never on the event
loop. Everything goes through the printer's request funnel.

:class:`Files` (``printer.files``) is the feature; it is made of the upload sources and
streaming body (``_uploads``), the download stream and resume checks (``_downloads``), the
local file a download is written to and installed from (``_sinks``), progress reports
(``_progress``) and the executor helpers (``_offload``). Import the names from here.
"""

from __future__ import annotations

from ._downloads import MAX_RESTARTS as MAX_RESTARTS
from ._downloads import MAX_STALLED_RESUMES as MAX_STALLED_RESUMES
from ._downloads import AnswerCheck as AnswerCheck
from ._downloads import DownloadStream
from ._files import Files, LimitsSource
from ._offload import acquire_off_loop as acquire_off_loop
from ._offload import finish_off_loop as finish_off_loop
from ._offload import off_loop as off_loop
from ._offload import off_loop_to_completion as off_loop_to_completion
from ._offload import run_to_completion as run_to_completion
from ._offload import settle as settle
from ._progress import PROGRESS_STEP as PROGRESS_STEP
from ._progress import Progress as Progress
from ._progress import ProgressCallback
from ._sinks import NAME_TRIES as NAME_TRIES
from ._sinks import WRITE_BATCH as WRITE_BATCH
from ._uploads import CHUNK_SIZE as CHUNK_SIZE
from ._uploads import FAIR_SHARE as FAIR_SHARE
from ._uploads import FormValue, UploadResult, UploadSource
from ._uploads import SourcePayload as SourcePayload
from ._uploads import form_disposition as form_disposition
from ._uploads import open_source as open_source

__all__ = [
    "DownloadStream",
    "Files",
    "FormValue",
    "LimitsSource",
    "ProgressCallback",
    "UploadResult",
    "UploadSource",
]
