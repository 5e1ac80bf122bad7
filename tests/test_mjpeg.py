"""The sans-I/O MJPEG parser: a quirk corpus, split invariance, bounds, fuzzing."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oe_async.mjpeg import (
    Frame,
    MJPEGError,
    MJPEGParser,
    boundary_from_content_type,
)

MiB = 1024 * 1024


def jpeg(fill: bytes, size: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + (fill * size)[:size] + b"\xff\xd9"


J = [jpeg(b"a", 300), jpeg(b"bc", 1000), jpeg(b"\r\n--x", 77)]
CT = "multipart/x-mixed-replace; boundary=frame"


def part(
    data: bytes,
    *,
    boundary: bytes = b"--frame",
    nl: bytes = b"\r\n",
    length: bool = True,
    extra: bytes = b"",
) -> bytes:
    headers = b"Content-Type: image/jpeg" + nl
    if length:
        headers += b"Content-Length: %d" % len(data) + nl
    return boundary + nl + headers + extra + nl + data + nl


def run(
    stream: bytes, content_type: str | None, splits: list[int] | None = None, **kw: object
) -> list[Frame]:
    parser = MJPEGParser.from_content_type(content_type, **kw)  # type: ignore[arg-type]
    frames: list[Frame] = []
    if splits is None:
        frames += parser.feed(stream)
    else:
        last = 0
        for cut in [*sorted(splits), len(stream)]:
            frames += parser.feed(stream[last:cut])
            last = cut
    return frames + parser.close()


def every_split(stream: bytes, content_type: str | None) -> list[list[bytes]]:
    rng = random.Random(len(stream))
    variants = [
        None,
        list(range(1, len(stream))),
        list(range(0, len(stream), 7)),
        list(range(0, len(stream), 64)),
    ]
    variants += [sorted(rng.sample(range(len(stream)), 5)) for _ in range(20)]
    return [[f.data for f in run(stream, content_type, v)] for v in variants]


def both(*frames: bytes) -> bytes:
    return b"".join(frames)


# Each case: (Content-Type header, the stream). Every case carries the frames J, in order.
CORPUS: dict[str, tuple[str | None, bytes]] = {
    "go2rtc_standard": (CT, both(*(part(j) for j in J))),
    "mjpg_streamer_timestamps": (
        "multipart/x-mixed-replace;boundary=boundarydonotcross",
        both(
            *(
                part(
                    j, boundary=b"--boundarydonotcross", extra=b"X-Timestamp: 1700000000.%d\r\n" % i
                )
                for i, j in enumerate(J)
            )
        ),
    ),
    "quoted_boundary": ('multipart/x-mixed-replace; boundary="frame"', both(*(part(j) for j in J))),
    "spaces_around_equals": (
        "multipart/x-mixed-replace; boundary = frame",
        both(*(part(j) for j in J)),
    ),
    "dashes_in_header_only": (
        "multipart/x-mixed-replace;boundary=--frame",
        both(*(part(j) for j in J)),
    ),
    "dashes_in_header_and_doubled_in_body": (
        "multipart/x-mixed-replace;boundary=--frame",
        both(*(part(j, boundary=b"----frame") for j in J)),
    ),
    "params_after_boundary": (
        "multipart/x-mixed-replace; boundary=frame; charset=utf-8",
        both(*(part(j) for j in J)),
    ),
    "bare_boundary_parts": (CT, both(*(part(j, boundary=b"frame") for j in J))),
    "crlf_before_each_boundary_esp32": (
        "multipart/x-mixed-replace;boundary=123456789000000000000987654321",
        both(
            *(
                b"\r\n--123456789000000000000987654321\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: 0.000000\r\n\r\n"
                % len(j)
                + j
                for j in J
            )
        ),
    ),
    "lf_only": (CT, both(*(part(j, nl=b"\n") for j in J))),
    "lf_only_no_length": (CT, both(*(part(j, nl=b"\n", length=False) for j in J))),
    "header_names_in_any_case": (
        CT,
        both(
            *(
                b"--frame\r\nCONTENT-TYPE: image/jpeg\r\ncOnTeNt-LeNgTh: %d\r\n\r\n" % len(j)
                + j
                + b"\r\n"
                for j in J
            )
        ),
    ),
    "first_frame_without_boundary_headers_first": (
        CT,
        b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(J[0])
        + J[0]
        + b"\r\n"
        + part(J[1])
        + part(J[2]),
    ),
    "first_frame_without_boundary_jpeg_first": (CT, J[0] + b"\r\n" + part(J[1]) + part(J[2])),
    "content_length_glued_to_next_boundary": (
        CT,
        both(*(b"--frame\r\nContent-Length: %d\r\n\r\n" % len(j) + j for j in J)),
    ),
    "empty_content_length": (
        CT,
        both(
            *(
                b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: \r\n\r\n" + j + b"\r\n"
                for j in J
            )
        ),
    ),
    "duplicated_content_length": (
        CT,
        both(
            *(
                b"--frame\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(j), len(j))
                + j
                + b"\r\n"
                for j in J
            )
        ),
    ),
    "comma_duplicated_content_length": (
        CT,
        both(
            *(
                b"--frame\r\nContent-Length: %d, %d\r\n\r\n" % (len(j), len(j)) + j + b"\r\n"
                for j in J
            )
        ),
    ),
    "conflicting_content_length_falls_back_to_scanning": (
        CT,
        both(
            *(
                b"--frame\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(j) + j + b"\r\n"
                for j in J
            )
        ),
    ),
    "no_content_length": (CT, both(*(part(j, length=False) for j in J))),
    "no_part_headers_at_all": (CT, both(*(b"--frame\r\n\r\n" + j + b"\r\n" for j in J))),
    "jpeg_right_after_boundary_line": (CT, both(*(b"--frame\r\n" + j + b"\r\n" for j in J))),
    "closing_boundary_then_junk": (CT, both(*(part(j) for j in J)) + b"--frame--\r\nignored junk"),
    "ends_without_closing_boundary_scanning": (CT, both(*(part(j, length=False) for j in J))[:-2]),
    "boundary_learned_from_the_stream": (
        "multipart/x-mixed-replace",
        both(*(part(j, length=False) for j in J)),
    ),
    "no_content_type_at_all": (None, both(*(part(j) for j in J))),
    "transport_padding_after_boundary": (
        CT,
        both(*(b"--frame  \r\nContent-Length: %d\r\n\r\n" % len(j) + j + b"\r\n" for j in J)),
    ),
    "junk_between_parts": (CT, both(*(part(j) + b"garbage\xff\x00 between\r\n" for j in J))),
    "preamble_before_first_boundary": (
        CT,
        b"HTTP/1.0 200 OK\r\nServer: cam\r\n\r\n" + both(*(part(j) for j in J)),
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_quirk_corpus_yields_every_frame_bit_exact(name: str) -> None:
    content_type, stream = CORPUS[name]
    for frames in every_split(stream, content_type):
        assert frames == J, name


def test_timestamps_and_content_types_are_carried() -> None:
    content_type, stream = CORPUS["mjpg_streamer_timestamps"]
    frames = run(stream, content_type)
    assert [f.timestamp for f in frames] == [1700000000.0, 1700000000.1, 1700000000.2]
    assert {f.content_type for f in frames} == {"image/jpeg"}
    assert [f.index for f in frames] == [0, 1, 2]


def test_the_common_headers_and_any_others_mean_the_same() -> None:
    # mjpg-streamer's exact header block takes a one-match fast path; any other spelling,
    # order or extra header takes the general one. Both must read the same values.
    data = J[0]
    common = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: 1700000000.25\r\n"
    other = b"X-Timestamp:1700000000.25\r\ncontent-length: %d\r\nContent-Type:image/jpeg \r\n"
    for block in (common, other):
        stream = b"--frame\r\n" + block % len(data) + b"\r\n" + data + b"\r\n"
        [frame] = MJPEGParser("frame").feed(stream + b"--frame\r\n")
        assert (frame.data, frame.timestamp, frame.content_type) == (
            data,
            1700000000.25,
            "image/jpeg",
        )
    # The fast path keeps the bounds: a declared length over max_frame_size is refused.
    too_big = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 999999\r\n\r\n"
    with pytest.raises(MJPEGError, match="larger than max_frame_size"):
        MJPEGParser("frame", max_frame_size=1000).feed(too_big)


def test_line_ends_between_parts_at_a_chunk_end_keep_the_fast_path() -> None:
    # One HTTP chunk per part, each ending in the CRLF after its JPEG: every frame parsed.
    chunks = [part(j) for j in J] * 3
    parser = MJPEGParser("frame")
    got = [f.data for chunk in chunks for f in parser.feed(chunk)]
    assert got == J * 3


def test_indices_start_where_asked_and_transform_is_copied() -> None:
    _, stream = CORPUS["go2rtc_standard"]
    frames = run(stream, CT, first_index=10, transform="flipH")
    assert [f.index for f in frames] == [10, 11, 12]
    assert {f.transform for f in frames} == {"flipH"}
    assert "bytes>" in repr(frames[0])  # the repr does not dump the image


def test_frames_with_any_bytes_inside_survive_the_length_path() -> None:
    evil = jpeg(b"\r\n--frame\r\nContent-Length: 3\r\n\r\n", 500)
    stream = part(evil) + part(J[0])
    assert [f.data for f in run(stream, CT)] == [evil, J[0]]


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/x-mixed-replace;boundary=frame", b"frame"),
        ('multipart/x-mixed-replace; boundary="--b x"', b"b x"),
        ("multipart/x-mixed-replace; Boundary = --abc ; q=1", b"abc"),
        ("multipart/x-mixed-replace", None),
        ("multipart/x-mixed-replace; boundary=", None),
        ("multipart/x-mixed-replace; boundary=caf\u00e9", None),
        (None, None),
    ],
)
def test_boundary_from_content_type(content_type: str | None, boundary: bytes | None) -> None:
    assert boundary_from_content_type(content_type) == boundary


class TestBounds:
    def test_declared_length_of_2_pow_40_is_rejected_before_allocating(self) -> None:
        parser = MJPEGParser("frame")
        with pytest.raises(MJPEGError, match="max_frame_size"):
            parser.feed(b"--frame\r\nContent-Length: %d\r\n\r\n" % 2**40)
        assert parser.buffered < 1024

    def test_absurdly_long_length_digits(self) -> None:
        with pytest.raises(MJPEGError, match="max_frame_size"):
            MJPEGParser("frame").feed(b"--frame\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")

    def test_part_headers_over_the_cap(self) -> None:
        parser = MJPEGParser("frame", max_header_size=8192)
        parser.feed(b"--frame\r\n")
        with pytest.raises(MJPEGError, match="max_header_size"):
            for _ in range(100):
                parser.feed(b"X-Long: " + b"y" * 1000 + b"\r\n")
        assert parser.buffered <= 8192 + 1024

    def test_a_frame_over_the_cap_without_boundary(self) -> None:
        parser = MJPEGParser("frame", max_frame_size=MiB)
        parser.feed(b"--frame\r\n\r\n\xff\xd8")
        fed = 0
        with pytest.raises(MJPEGError, match="max_frame_size"):
            while fed < 4 * MiB:
                parser.feed(b"z" * 65536)
                fed += 65536
        assert fed <= MiB + 65536
        assert parser.buffered == 0

    def test_boundary_free_garbage_is_rejected_after_at_most_the_cap(self) -> None:
        """1 GiB would be fed if the parser never gave up; it must stop by the cap."""
        cap = 8 * MiB
        parser = MJPEGParser("boundarydonotcross", max_frame_size=cap)
        # Random garbage that happens to start with "Name: ..." is rejected as oversized
        # part headers instead: either way it is rejected early, with bounded memory.
        # Without JPEG start-of-image markers: garbage holding one where the parser looks
        # for a boundary-less first frame is bounded by max_frame_size instead (the test
        # above). Seeded: an os.urandom block did that in one CI run.
        garbage = bytearray(random.Random(1).randbytes(65536).replace(b"\xff\xd8", b"\x00\x00"))
        garbage[0] = 0  # nor across two blocks (one ending in 0xff)
        block = bytes(garbage)
        fed = 0
        peak = 0
        with pytest.raises(MJPEGError, match=r"no multipart boundary|larger than max_header_size"):
            while fed < 1024 * MiB:
                parser.feed(block)
                fed += len(block)
                peak = max(peak, parser.buffered)
        assert fed <= cap + 2 * len(block)
        assert peak < 16 * 1024

    def test_binary_garbage_is_rejected_for_having_no_boundary(self) -> None:
        parser = MJPEGParser("boundarydonotcross", max_frame_size=MiB)
        block = bytes(range(256)) * 256
        with pytest.raises(MJPEGError, match="no multipart boundary"):
            for _ in range(1024):
                parser.feed(block)

    def test_garbage_with_unknown_boundary_is_bounded_too(self) -> None:
        parser = MJPEGParser(None, max_frame_size=MiB)
        block = b"\xff\xd8" + random.Random(2).randbytes(65534).replace(b"\xff\xd9", b"\x00\x00")
        with pytest.raises(MJPEGError):
            for _ in range(1024):
                parser.feed(block)
        assert parser.buffered == 0

    def test_bad_constructor_arguments(self) -> None:
        with pytest.raises(MJPEGError):
            MJPEGParser("---")
        with pytest.raises(MJPEGError):
            MJPEGParser("b", max_frame_size=0)


class TestEndOfStream:
    def test_truncated_last_frame_is_dropped_quietly(self) -> None:
        parser = MJPEGParser("frame")
        frames = parser.feed(part(J[0]) + part(J[1])[:-200])
        assert [f.data for f in frames + parser.close()] == [J[0]]
        assert parser.truncated == 1

    def test_truncated_scanned_frame_is_not_mistaken_for_a_jpeg(self) -> None:
        parser = MJPEGParser("frame")
        frames = parser.feed(part(J[0], length=False) + part(J[1], length=False)[:-50])
        assert [f.data for f in frames + parser.close()] == [J[0]]
        assert parser.truncated == 1

    def test_feed_after_close_is_ignored(self) -> None:
        parser = MJPEGParser("frame")
        parser.close()
        assert parser.feed(part(J[0])) == []
        assert parser.close() == []


def test_skip_until_drops_frames_without_materialising_them() -> None:
    now = [0.0]
    parser = MJPEGParser("frame", clock=lambda: now[0])
    parser.skip_until = 1.0
    assert parser.feed(part(J[0]) + part(J[1])) == []
    assert parser.skipped == 2
    now[0] = 1.5
    frames = parser.feed(part(J[2]))
    assert [f.data for f in frames] == [J[2]]
    assert frames[0].index == 2  # skipped frames still count
    assert frames[0].received_at == 1.5


# ------------------------------------------------------------------ properties

jpegs = st.binary(min_size=0, max_size=3000).map(lambda b: b"\xff\xd8" + b + b"\xff\xd9")


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, bytes, list[bytes], bool]:
    boundary = draw(st.sampled_from([b"frame", b"boundarydonotcross", b"x", b"--myboundary"]))
    core = boundary.lstrip(b"-")
    with_length = draw(st.booleans())
    frames = draw(st.lists(jpegs, min_size=1, max_size=6))
    if not with_length:
        # Scanning cannot tell a boundary line inside an image from a real one.
        frames = [f for f in frames if b"\n" + core not in f and not f.startswith(core)]
        frames = frames or [b"\xff\xd8\xff\xd9"]
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    dashes = draw(st.sampled_from([b"--", b""]))
    stream = b"".join(
        dashes
        + core
        + nl
        + b"Content-Type: image/jpeg"
        + nl
        + (b"Content-Length: %d" % len(f) + nl if with_length else b"")
        + nl
        + f
        + nl
        for f in frames
    )
    if draw(st.booleans()):
        stream += dashes + core + b"--" + nl
    quoted = draw(st.booleans())
    value = b'"' + boundary + b'"' if quoted else boundary
    return "multipart/x-mixed-replace; boundary=" + value.decode(), stream, frames, with_length


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=streams(), cuts=st.lists(st.integers(min_value=0, max_value=30_000), max_size=30))
def test_any_split_yields_identical_frames(
    data: tuple[str, bytes, list[bytes], bool], cuts: list[int]
) -> None:
    content_type, stream, frames, _ = data
    splits = sorted({c % (len(stream) + 1) for c in cuts})
    assert [f.data for f in run(stream, content_type, splits)] == frames


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    boundary=st.one_of(st.none(), st.sampled_from(["frame", "x", "boundarydonotcross"])),
    chunks=st.lists(st.binary(max_size=2000), max_size=40),
)
def test_random_bytes_only_ever_raise_mjpeg_error(
    boundary: str | None, chunks: list[bytes]
) -> None:
    parser = MJPEGParser(boundary, max_frame_size=4096, max_header_size=512)
    try:
        for chunk in chunks:
            for frame in parser.feed(chunk):
                assert len(frame.data) <= 4096
            assert parser.buffered <= 4096 + 512 + 64
        parser.close()
    except MJPEGError:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.binary(max_size=200),
    data=streams(),
    cuts=st.lists(st.integers(min_value=0, max_value=30_000), max_size=10),
)
def test_structured_noise_never_escapes_as_another_exception(
    prefix: bytes, data: tuple[str, bytes, list[bytes], bool], cuts: list[int]
) -> None:
    content_type, stream, _, _ = data
    mutated = bytearray(prefix + stream)
    for cut in cuts:
        if mutated:
            mutated[cut % len(mutated)] ^= 0xFF
    with contextlib.suppress(MJPEGError):
        run(
            bytes(mutated),
            content_type,
            sorted({c % (len(mutated) + 1) for c in cuts}),
            max_frame_size=65536,
        )
