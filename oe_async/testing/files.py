"""The fake printer's file store: kept uploads and generated (synthetic) files.

Contents up to ``KEEP_LIMIT`` are kept so they can be downloaded again. Large test files
can be *synthetic*: generated on the fly from a seed, so a 1 GiB download needs no memory
or disk.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Iterator
from typing import Final

import attrs

__all__ = ["FileStore", "SimFile", "TransferFaults", "synthetic_bytes"]

KEEP_LIMIT: Final = 256 * 1024 * 1024
CHUNK: Final = 256 * 1024
_BLOCK: Final = 1024 * 1024


@functools.lru_cache(maxsize=4)
def _block(seed: int) -> bytes:
    return random.Random(seed).randbytes(_BLOCK)  # noqa: S311 (test data, not crypto)


def synthetic_bytes(seed: int, offset: int, length: int) -> bytes:
    """Bytes ``[offset, offset+length)`` of the synthetic file generated from ``seed``."""
    block = _block(seed)
    parts: list[bytes] = []
    while length > 0:
        start = offset % _BLOCK
        take = min(length, _BLOCK - start)
        parts.append(block[start : start + take])
        offset += take
        length -= take
    return b"".join(parts)


@attrs.define(kw_only=True)
class SimFile:
    """A file on the fake printer."""

    path: str
    size: int
    sha256: str | None = None
    data: bytes | None = None
    seed: int | None = None
    modified: float = attrs.field(factory=time.time)

    @property
    def etag(self) -> str:
        """A strong validator that changes with the content."""
        if self.seed is not None:
            basis = f"{self.seed}-{self.size}-{self.modified}"
        else:
            basis = f"{self.sha256}-{self.modified}"
        return '"' + hashlib.sha256(basis.encode()).hexdigest()[:16] + '"'

    def read(self, offset: int, length: int) -> bytes:
        """Bytes of the file (synthetic or kept)."""
        if self.data is not None:
            return self.data[offset : offset + length]
        if self.seed is not None:
            return synthetic_bytes(self.seed, offset, min(length, self.size - offset))
        raise LookupError(f"the content of {self.path!r} was not kept (over KEEP_LIMIT)")

    def chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        """The whole content, chunk by chunk."""
        for offset in range(0, self.size, chunk):
            yield self.read(offset, chunk)

    def digest(self) -> str:
        """sha256 of the content (computed for synthetic files on first use)."""
        if self.sha256 is None:
            hasher = hashlib.sha256()
            for part in self.chunks(_BLOCK):
                hasher.update(part)
            self.sha256 = hasher.hexdigest()
        return self.sha256


@attrs.define(kw_only=True)
class TransferFaults:
    """Transfer misbehaviour, switchable at run time (``sim.state.transfer``)."""

    #: Close the connection after this many body bytes of a download.
    drop_after: int | None = None
    #: How many downloads to cut short (None: every one while ``drop_after`` is set).
    drop_times: int | None = None
    #: Send downloads as ``(bytes, seconds)``: this many bytes, then a pause.
    trickle: tuple[int, float] | None = None
    #: Advertise and honour ``Range`` requests.
    ranges: bool = True
    #: Send downloads without ``Content-Length`` (chunked transfer encoding).
    chunked: bool = False


class FileStore:
    """The fake printer's files, by normalised path (``folder/name.gcode``)."""

    def __init__(self, *, keep_limit: int = KEEP_LIMIT) -> None:
        self.files: dict[str, SimFile] = {}
        #: Uploads up to this size keep their content (so they can be downloaded again).
        self.keep_limit = keep_limit

    @staticmethod
    def normalise(path: str) -> str:
        """Strip slashes and collapse empty segments."""
        return "/".join(part for part in path.split("/") if part and part != ".")

    def add(self, path: str, data: bytes) -> SimFile:
        """Store ``data`` at ``path``."""
        path = self.normalise(path)
        simfile = SimFile(
            path=path, size=len(data), data=data, sha256=hashlib.sha256(data).hexdigest()
        )
        self.files[path] = simfile
        return simfile

    def add_synthetic(self, path: str, size: int, *, seed: int = 1) -> SimFile:
        """Store a generated file of ``size`` bytes (no memory needed)."""
        path = self.normalise(path)
        simfile = SimFile(path=path, size=size, seed=seed)
        self.files[path] = simfile
        return simfile

    def get(self, path: str) -> SimFile | None:
        """The file at ``path``, if any."""
        return self.files.get(self.normalise(path))

    def __contains__(self, path: str) -> bool:
        return self.normalise(path) in self.files
