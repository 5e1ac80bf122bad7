"""Streaming uploads and downloads against the simulator."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest

import oe_async
from oe_async import OctoEverywhere, PrinterConnection, RetryPolicy
from oe_async import transfer as transfer_module
from oe_async.testing import Simulator
from oe_async.transfer import _uploads

from .helpers import acquired_connections, listdir

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 100 MiB file (written by a sync fixture, outside the event loop)."""
    path = tmp_path_factory.mktemp("big") / "part.gcode"
    hasher = hashlib.sha256()
    block = bytes(range(256)) * 4096  # 1 MiB
    with path.open("wb") as f:
        for i in range(100):
            chunk = block[i:] + block[:i]
            f.write(chunk)
            hasher.update(chunk)
    return path, hasher.hexdigest()


class TestUpload:
    async def test_100_mib_from_a_path_streams_off_the_loop(
        self,
        printer: PrinterConnection,
        sim: Simulator,
        big_file: tuple[Path, str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, digest = big_file
        sim.files.keep_limit = 0  # the simulator hashes and drops the bytes
        loop_thread = threading.get_ident()
        read_threads: set[int] = set()

        class Recording(io.BufferedReader):
            def read(self, size: int | None = -1, /) -> bytes:
                read_threads.add(threading.get_ident())
                return super().read(size)

        def recording_open(p: Path) -> IO[bytes]:
            read_threads.add(threading.get_ident())  # the open itself
            return Recording(io.FileIO(p, "rb"))

        monkeypatch.setattr(_uploads, "_open_for_reading", recording_open)
        calls: list[tuple[int, int | None]] = []

        tracemalloc.start()
        try:
            result = await printer.files.upload(
                "/api/files/local", path, progress=lambda done, total: calls.append((done, total))
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

        assert result.status == 201
        assert result.data["files"]["local"]["name"] == "part.gcode"
        assert sim.uploads[-1].sha256 == digest
        assert sim.uploads[-1].size == 100 * MiB
        assert read_threads, "reads were recorded"
        assert loop_thread not in read_threads, "a file read ran on the event loop thread"
        assert calls[-1] == (100 * MiB, 100 * MiB)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert all(t == 100 * MiB for _, t in calls)
        gaps = [b - a for (a, _), (b, _) in zip([(0, 0), *calls], calls, strict=False)]
        assert max(gaps) <= MiB + transfer_module.CHUNK_SIZE
        assert peak < 24 * MiB, f"peak traced memory {peak / MiB:.1f} MiB for a 100 MiB upload"

    @pytest.mark.parametrize(
        "kind", ["bytes", "bytearray", "memoryview", "file object", "async iterator", "path"]
    )
    async def test_every_source_kind_arrives_byte_identical(
        self, printer: PrinterConnection, sim: Simulator, kind: str, tmp_path: Path
    ) -> None:
        data = bytes(range(256)) * 5000 + b"tail"

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 7777):
                yield data[i : i + 7777]

        source: object = {
            "bytes": data,
            "bytearray": bytearray(data),
            "memoryview": memoryview(data),
            "file object": io.BytesIO(data),
            "async iterator": chunks(),
        }.get(kind)
        if kind == "path":
            source = tmp_path / "kind.gcode"
            await asyncio.to_thread(Path(source).write_bytes, data)  # type: ignore[arg-type]
        await printer.files.upload("/api/files/local", source, filename="kind.gcode")  # type: ignore[arg-type]
        assert sim.uploads[-1].sha256 == sha(data)
        assert sim.uploads[-1].size == len(data)

    async def test_moonraker_form_fields(self, printer: PrinterConnection, sim: Simulator) -> None:
        answer = await printer.files.upload(
            "/server/files/upload",
            b"G28\n",
            filename="m.gcode",
            form={"root": "gcodes", "path": "jobs", "print": True},
        )
        assert answer.data["item"]["path"] == "jobs/m.gcode"  # Moonraker's bare answer
        assert answer.data["print_started"] is True
        assert "gcodes/jobs/m.gcode" in sim.files

    async def test_octoprint_select_and_folder(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        answer = await printer.files.upload(
            "/api/files/local", b"G1\n", filename="o.gcode", form={"select": True, "path": "f"}
        )
        assert answer.data["effectiveSelect"] is True
        assert "f/o.gcode" in sim.files

    async def test_raw_put_to_the_plugin_api(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        answer = await printer.files.upload(
            "/octoeverywhere-command-api/files/upload?path=gcode/r.gcode", b"raw", raw=True
        )
        assert answer.data["Result"]["SizeBytes"] == 3
        request = sim.requests_to("relay", "/octoeverywhere-command-api/files/upload")[0]
        assert request.method == "PUT"
        assert request.headers["Content-Length"] == "3"

    async def test_non_json_answer_returns_the_response(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(200, path="/api/files/local", body=b"OK", headers={"Content-Type": "text/plain"})
        result = await printer.files.upload("/api/files/local", b"x", filename="t.gcode")
        assert result.status == 200
        assert result.data is None
        assert result.text == "OK"
        assert result.body == b"OK"

    async def test_async_progress_callback(self, printer: PrinterConnection) -> None:
        seen: list[int] = []

        async def progress(done: int, total: int | None) -> None:
            await asyncio.sleep(0)
            seen.append(done)

        await printer.files.upload(
            "/api/files/local", b"x" * (3 * MiB + 5), filename="p.gcode", progress=progress
        )
        assert seen == [MiB, 2 * MiB, 3 * MiB, 3 * MiB + 5]

    async def test_unknown_size_iterable_reports_completion_with_the_total(
        self, printer: PrinterConnection
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a" * 10
            yield b"b" * 5

        calls: list[tuple[int, int | None]] = []
        await printer.files.upload(
            "/api/files/local",
            chunks(),
            filename="u.gcode",
            progress=lambda d, t: calls.append((d, t)),
        )
        assert calls == [(15, 15)]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"source": "/nonexistent/file.gcode"}, "does not exist"),
            ({"source": 42}, "upload source must be"),
            ({"source": io.StringIO("text")}, "binary mode"),
            ({"source": b"x", "raw": True, "form": {"a": 1}}, "form fields"),
            ({"source": b"x"}, "filename is required"),
            ({"source": b"x", "filename": "a\0b"}, "NUL"),
            ({"source": b"x", "filename": "a", "form": {"k\0": 1}}, "NUL"),
            ({"source": b"x", "filename": "a", "form": {"a": object()}}, "form values"),
            ({"source": b"x", "filename": "a", "size": 5}, "size=5"),
            ({"source": b"x", "filename": "a", "size": -1}, "non-negative"),
            ({"source": b"x", "filename": "a", "field": ""}, "field"),
            ({"source": b"x", "filename": "a", "progress": "nope"}, "progress"),
        ],
    )
    async def test_bad_input_is_refused_before_sending(
        self, printer: PrinterConnection, sim: Simulator, kwargs: dict[str, object], message: str
    ) -> None:
        with pytest.raises(oe_async.InvalidArgumentError, match=message):
            await printer.files.upload("/api/files/local", **kwargs)  # type: ignore[arg-type]
        assert sim.requests_to("relay") == []

    async def test_a_directory_is_not_a_file(
        self, printer: PrinterConnection, tmp_path: Path
    ) -> None:
        with pytest.raises(oe_async.InvalidArgumentError, match="not a regular file"):
            await printer.files.upload("/api/files/local", tmp_path)


class TestUploadSourceFailures:
    async def test_an_iterable_that_yields_text_aborts(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def chunks() -> AsyncIterator[object]:
            yield b"ok"
            yield "not bytes"

        with pytest.raises(oe_async.UploadSourceError, match="yielded str"):
            await printer.files.upload("/api/files/local", chunks(), filename="x.gcode")  # type: ignore[arg-type]
        assert sim.uploads == []

    async def test_a_short_source_never_reaches_the_printer_as_a_file(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * 100

        with pytest.raises(oe_async.UploadSourceError, match="ended after 100 of the 1000"):
            await printer.files.upload(
                "/octoeverywhere-command-api/files/upload?path=a", chunks(), raw=True, size=1000
            )
        assert sim.uploads == []

    async def test_a_long_source_is_not_truncated_silently(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * 100
            yield b"y" * 100

        with pytest.raises(oe_async.UploadSourceError, match="grew"):
            await printer.files.upload(
                "/octoeverywhere-command-api/files/upload?path=a", chunks(), raw=True, size=150
            )
        assert sim.uploads == []

    async def test_an_iterable_that_raises_is_reported_as_the_source(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"x"
            raise OSError(5, "Input/output error")

        with pytest.raises(oe_async.UploadSourceError, match="Input/output error"):
            await printer.files.upload("/api/files/local", chunks(), filename="e.gcode")
        assert sim.uploads == []


class TestLimits:
    async def test_precheck_raises_before_any_upload_request(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.limits = oe_async.PrinterLimits(max_upload_bytes=1000, max_download_bytes=10**9)
        with pytest.raises(oe_async.UploadLimitError) as excinfo:
            await printer.files.upload("/api/files/local", b"x" * 5000, filename="big.gcode")
        assert excinfo.value.limit == 1000
        assert excinfo.value.size is not None
        assert excinfo.value.size == 5000  # the file's size, not the multipart body's
        assert excinfo.value.client_side is True
        assert str(excinfo.value) == (
            "The file is 5000 bytes (5185 with the upload form around it); the account's "
            "upload limit is 1000 bytes. Nothing was sent."
        )
        assert "status 608" not in str(excinfo.value)  # no such answer came
        assert excinfo.value.message == str(excinfo.value)
        assert sim.requests_to("relay") == []
        assert len(sim.requests_to("app_api")) == 1  # limits fetched once

        with pytest.raises(oe_async.UploadLimitError) as excinfo:
            await printer.files.upload(
                "/api/files/local", b"x" * 5000, filename="big.gcode", raw=True
            )
        assert excinfo.value.size == 5000
        assert str(excinfo.value).startswith("The file is 5000 bytes; the account's upload")
        assert sim.requests_to("relay") == []
        assert len(sim.requests_to("app_api")) == 1  # ... and remembered

    async def test_relay_608_maps_when_the_precheck_cannot_run(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(503, origin="app_api")  # the Info API is down: the pre-check is skipped
        sim.state.limits = oe_async.PrinterLimits(max_upload_bytes=1000)
        with pytest.raises(oe_async.UploadLimitError) as excinfo:
            await printer.files.upload("/api/files/local", b"x" * 5000, filename="big.gcode")
        assert excinfo.value.status == 608
        assert excinfo.value.client_side is False
        assert "(OctoEverywhere status 608)" in str(excinfo.value)  # this one did answer 608
        assert len(sim.requests_to("relay", "/api/files/local")) == 1

    async def test_relay_608_for_a_streamed_body_without_length(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.state.limits = oe_async.PrinterLimits(max_upload_bytes=100_000)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"x" * 64 * 1024

        with pytest.raises((oe_async.UploadLimitError, oe_async.CommunicationError)) as excinfo:
            await printer.files.upload(
                "/octoeverywhere-command-api/files/upload?path=a", chunks(), raw=True
            )
        if isinstance(excinfo.value, oe_async.UploadLimitError):
            assert excinfo.value.status == 608
        assert sim.uploads == []

    async def test_relay_607_maps(self, printer: PrinterConnection, sim: Simulator) -> None:
        sim.files.add_synthetic("huge.gcode", 3000)
        sim.state.limits = oe_async.PrinterLimits(max_download_bytes=1000)
        sim.fail(503, origin="app_api")  # no pre-check: the relay says 607
        with pytest.raises(oe_async.DownloadLimitError) as excinfo:
            async with printer.files.download("/downloads/files/local/huge.gcode"):
                pass
        assert excinfo.value.status == 607

    async def test_download_content_length_over_the_limit(
        self, printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
    ) -> None:
        sim.files.add_synthetic("huge.gcode", 3000)
        low = {"IsOnline": True, "PrinterLimits": {"MaxDownloadFileSizeBytes": 1000}}
        sim.fail(200, origin="app_api", body=json.dumps(low).encode(), times=1)
        with pytest.raises(oe_async.DownloadLimitError) as excinfo:
            async with printer.files.download("/downloads/files/local/huge.gcode") as chunks:
                pytest.fail(f"the body should not be offered ({chunks.total})")
        assert (excinfo.value.limit, excinfo.value.size) == (1000, 3000)
        assert excinfo.value.client_side is True
        assert str(excinfo.value) == (
            "The file is 3000 bytes; the account's download limit is 1000 bytes. "
            "The download was not started."
        )
        assert acquired_connections(oe) == 0

    async def test_download_streamed_count_over_the_limit(
        self, printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
    ) -> None:
        sim.files.add_synthetic("huge.gcode", 3 * MiB)
        sim.state.transfer.chunked = True  # no Content-Length to check up front
        low = {"IsOnline": True, "PrinterLimits": {"MaxDownloadFileSizeBytes": MiB}}
        sim.fail(200, origin="app_api", body=json.dumps(low).encode(), times=1)
        received = 0
        with pytest.raises(
            oe_async.DownloadLimitError, match="passed the account's download limit"
        ):
            async with printer.files.download("/downloads/files/local/huge.gcode") as chunks:
                assert chunks.total is None
                async for chunk in chunks:
                    received += len(chunk)
        assert received <= MiB
        assert acquired_connections(oe) == 0


class TestDownload:
    async def test_streams_chunks_with_progress(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        simfile = sim.files.add_synthetic("d.gcode", 5 * MiB + 3)
        calls: list[tuple[int, int | None]] = []
        hasher = hashlib.sha256()
        async with printer.files.download(
            "/downloads/files/local/d.gcode", progress=lambda d, t: calls.append((d, t))
        ) as chunks:
            assert chunks.total == 5 * MiB + 3
            async for chunk in chunks:
                hasher.update(chunk)
        assert hasher.hexdigest() == simfile.digest()
        assert calls[-1] == (5 * MiB + 3, 5 * MiB + 3)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert sim.requests_to("relay")[0].headers["Accept-Encoding"] == "identity"

    async def test_early_exit_releases_the_connection(
        self, printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator
    ) -> None:
        sim.files.add_synthetic("d.gcode", 20 * MiB)
        async with printer.files.download("/downloads/files/local/d.gcode") as chunks:
            async for _ in chunks:
                break
        assert acquired_connections(oe) == 0

    async def test_missing_file_is_a_printer_error(self, printer: PrinterConnection) -> None:
        with pytest.raises(oe_async.PrinterHTTPError) as excinfo:
            async with printer.files.download("/downloads/files/local/nope.gcode"):
                pass
        assert excinfo.value.status == 404

    async def test_a_drop_while_streaming_is_a_communication_error(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.files.add_synthetic("d.gcode", 4 * MiB)
        sim.state.transfer.drop_after = MiB
        with pytest.raises(oe_async.CommunicationError, match="cut short"):
            async with printer.files.download("/downloads/files/local/d.gcode") as chunks:
                async for _ in chunks:
                    pass


class TestDownloadTo:
    async def test_resume_after_injected_drops_is_byte_identical(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        simfile = sim.files.add_synthetic("r.gcode", 6 * MiB + 17, seed=7)
        sim.state.transfer.drop_after = 2 * MiB + 5
        sim.state.transfer.drop_times = 2
        calls: list[tuple[int, int | None]] = []
        dest = tmp_path / "r.gcode"
        result = await printer.files.download_to(
            "/downloads/files/local/r.gcode", dest, progress=lambda d, t: calls.append((d, t))
        )
        assert result == dest
        content = await asyncio.to_thread(dest.read_bytes)
        assert sha(content) == simfile.digest()
        ranges = [r.headers.get("Range") for r in sim.requests_to("relay", "/downloads/*")]
        assert ranges == [None, f"bytes={2 * MiB + 5}-", f"bytes={4 * MiB + 10}-"]
        if_range = [r.headers.get("If-Range") for r in sim.requests_to("relay", "/downloads/*")]
        assert if_range[1] == simfile.etag
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert calls[-1] == (6 * MiB + 17, 6 * MiB + 17)
        assert await listdir(tmp_path) == ["r.gcode"]

    async def test_a_changed_file_restarts_from_zero(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        sim.files.add_synthetic("c.gcode", 3 * MiB, seed=1)
        sim.state.transfer.drop_after = MiB
        sim.state.transfer.drop_times = 1
        dest = tmp_path / "c.gcode"
        task = asyncio.create_task(
            printer.files.download_to("/downloads/files/local/c.gcode", dest)
        )
        # Replace the file as soon as the first attempt was cut: If-Range no longer matches.
        while len(sim.requests_to("relay", "/downloads/*")) < 1:
            await asyncio.sleep(0.001)
        new = sim.files.add_synthetic("c.gcode", 2 * MiB, seed=2)
        await task
        assert sha(await asyncio.to_thread(dest.read_bytes)) == new.digest()

    async def test_without_resume_a_drop_fails_and_leaves_dest_untouched(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        sim.files.add_synthetic("f.gcode", 3 * MiB)
        sim.state.transfer.drop_after = MiB
        dest = tmp_path / "f.gcode"
        await asyncio.to_thread(dest.write_bytes, b"previous content")
        with pytest.raises(oe_async.CommunicationError):
            await printer.files.download_to("/downloads/files/local/f.gcode", dest, resume=False)
        assert await asyncio.to_thread(dest.read_bytes) == b"previous content"
        assert await listdir(tmp_path) == ["f.gcode"]

    async def test_no_ranges_means_no_resume(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        sim.files.add_synthetic("n.gcode", 3 * MiB)
        sim.state.transfer.drop_after = MiB
        sim.state.transfer.ranges = False
        with pytest.raises(oe_async.CommunicationError):
            await printer.files.download_to("/downloads/files/local/n.gcode", tmp_path / "n.gcode")
        assert await listdir(tmp_path) == []

    async def test_a_server_that_keeps_dropping_is_given_up_on(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        sim.files.add_synthetic("k.gcode", 3 * MiB)
        sim.state.transfer.drop_after = 0  # every attempt dies before the first byte
        with pytest.raises(oe_async.CommunicationError):
            await printer.files.download_to("/downloads/files/local/k.gcode", tmp_path / "k.gcode")
        assert await listdir(tmp_path) == []

    async def test_http_errors_leave_nothing_behind(
        self, printer: PrinterConnection, tmp_path: Path
    ) -> None:
        with pytest.raises(oe_async.PrinterHTTPError):
            await printer.files.download_to(
                "/downloads/files/local/missing.gcode", tmp_path / "m.gcode"
            )
        assert await listdir(tmp_path) == []

    async def test_bad_destinations(
        self, printer: PrinterConnection, sim: Simulator, tmp_path: Path
    ) -> None:
        with pytest.raises(oe_async.InvalidArgumentError, match="is a directory"):
            await printer.files.download_to("/downloads/files/local/x", tmp_path)
        with pytest.raises(oe_async.InvalidArgumentError, match="does not exist"):
            await printer.files.download_to("/downloads/files/local/x", tmp_path / "no" / "x")
        assert sim.requests == []


class TestRetrySafety:
    async def test_retry_with_a_stream_source_is_refused(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"x"

        with pytest.raises(oe_async.InvalidArgumentError, match="can be sent only once"):
            await printer.files.upload("/api/files/local", chunks(), filename="s.gcode", retry=True)
        with pytest.raises(oe_async.InvalidArgumentError, match="can be sent only once"):
            await printer.files.upload(
                "/api/files/local", io.BytesIO(b"x"), filename="s.gcode", retry=True
            )
        assert sim.requests_to("relay") == []

    async def test_a_consumed_iterator_is_never_resent(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"payload"

        sim.fail(601, path="/api/files/local", times=1)
        with pytest.raises(oe_async.PrinterOfflineError):
            await printer.files.upload("/api/files/local", chunks(), filename="s.gcode")
        assert len(sim.requests_to("relay", "/api/files/local")) == 1
        assert sim.uploads == []

    async def test_uploads_are_not_retried_by_default(
        self, printer: PrinterConnection, sim: Simulator
    ) -> None:
        sim.fail(601, path="/api/files/local", times=1)
        with pytest.raises(oe_async.PrinterOfflineError):
            await printer.files.upload("/api/files/local", b"data", filename="d.gcode")
        assert len(sim.requests_to("relay", "/api/files/local")) == 1

    @pytest.mark.parametrize("kind", ["bytes", "path"])
    async def test_replayable_sources_are_resent_whole_when_opted_in(
        self, printer: PrinterConnection, sim: Simulator, kind: str, tmp_path: Path
    ) -> None:
        data = b"0123456789" * 100_000
        source: object = data
        if kind == "path":
            source = tmp_path / "again.gcode"
            await asyncio.to_thread(Path(source).write_bytes, data)  # type: ignore[arg-type]
        sim.fail(601, path="/api/files/local", times=2)
        calls: list[int] = []
        await printer.files.upload(
            "/api/files/local",
            source,
            filename="again.gcode",
            retry=True,  # type: ignore[arg-type]
            progress=lambda d, t: calls.append(d),
        )
        assert len(sim.requests_to("relay", "/api/files/local")) == 3
        assert sim.uploads[-1].sha256 == sha(data)
        assert calls == sorted(calls)
        assert calls.count(len(data)) == 1


class TestCancellation:
    CYCLES = 200

    async def test_cancelled_downloads(
        self, printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator, tmp_path: Path
    ) -> None:
        sim.files.add_synthetic("slow.gcode", 64 * MiB)
        sim.state.transfer.trickle = (64 * 1024, 0.002)
        for i in range(self.CYCLES):
            started = asyncio.Event()
            target = tmp_path / f"out{i % 3}.gcode"
            task = asyncio.create_task(
                printer.files.download_to(
                    "/downloads/files/local/slow.gcode",
                    target,
                    progress=lambda d, t, ev=started: ev.set(),
                )
                if i % 2
                else _consume(printer, "/downloads/files/local/slow.gcode", started)
            )
            await asyncio.wait_for(started.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert acquired_connections(oe) == 0
            left = await listdir(tmp_path)
            assert left == [], f"cycle {i} left {left}"

    async def test_cancelled_uploads(
        self, printer: PrinterConnection, oe: OctoEverywhere, sim: Simulator, tmp_path: Path
    ) -> None:
        path = tmp_path / "up.gcode"
        await asyncio.to_thread(path.write_bytes, b"u" * 8 * MiB)
        for i in range(self.CYCLES):
            started = asyncio.Event()

            async def slow(ev: asyncio.Event = started) -> AsyncIterator[bytes]:
                for _ in range(1000):
                    ev.set()
                    yield b"s" * 65536
                    await asyncio.sleep(0.001)

            source: object = slow() if i % 2 else path
            task = asyncio.create_task(
                printer.files.upload(
                    "/api/files/local",
                    source,
                    filename="up.gcode",  # type: ignore[arg-type]
                    progress=lambda d, t, ev=started: ev.set(),
                )
            )
            await asyncio.wait_for(started.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert acquired_connections(oe) == 0
        assert sim.uploads == []

    async def test_a_cancelled_upload_closes_its_async_generator_at_once(
        self, printer: PrinterConnection
    ) -> None:
        started, closed = asyncio.Event(), asyncio.Event()

        async def source() -> AsyncIterator[bytes]:
            try:
                while True:
                    started.set()
                    yield b"s" * 65536
                    await asyncio.sleep(0.001)
            finally:
                closed.set()

        task = asyncio.create_task(printer.files.upload("/api/files/local", source(), filename="g"))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert closed.is_set()  # not left for loop shutdown to finalise

    async def test_a_failed_upload_closes_its_async_generator(
        self, printer: PrinterConnection
    ) -> None:
        closed = asyncio.Event()

        async def source() -> AsyncIterator[object]:
            try:
                yield b"fine"
                yield "not bytes"
            finally:
                closed.set()

        with pytest.raises(oe_async.UploadSourceError, match="yielded str"):
            await printer.files.upload("/api/files/local", source(), filename="g")  # type: ignore[arg-type]
        assert closed.is_set()


async def _consume(printer: PrinterConnection, path: str, started: asyncio.Event) -> None:
    async with printer.files.download(path) as chunks:
        async for _ in chunks:
            started.set()


async def test_transfers_use_the_stream_timeout(printer: PrinterConnection, sim: Simulator) -> None:
    sim.files.add_synthetic("t.gcode", MiB)
    sim.state.transfer.trickle = (1024, 0.5)
    with pytest.raises(oe_async.RequestTimeoutError):
        async with printer.files.download(
            "/downloads/files/local/t.gcode", timeout=_read_timeout(0.2)
        ) as chunks:
            async for _ in chunks:
                pass


def _read_timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_read=seconds)


def test_retry_policy_never_is_one_attempt() -> None:
    assert RetryPolicy.never().attempts == 1
