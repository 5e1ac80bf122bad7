"""Property-based fuzzing of every decoder that reads what a server or the portal sends.

Each property feeds arbitrary (and adversarially shaped) input to one decoder and allows
exactly one outcome besides success: the library's own documented error. Anything else
(KeyError, TypeError, OverflowError, a hang, a NaN or infinite delay) is a bug. Messages
must never repeat an input value that may be a secret.

``make test`` runs 150 examples per property; ``make fuzz`` runs >= 100,000 each (the
``fuzz`` profile, hang detection by a 5 s per-example deadline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from oe_async import AppConnection
from oe_async._convert import _WIRE_KEY, structure, structure_list
from oe_async._http import ChunkFloodGuard
from oe_async.errors import (
    InvalidArgumentError,
    OctoEverywhereError,
    PluginCommandError,
    PortalError,
    RelayError,
    UnexpectedResponseError,
    decode_http_error,
    parse_retry_after,
)
from oe_async.mjpeg import boundary_from_content_type
from oe_async.models import (
    ConnectionInfo,
    GadgetStatus,
    LiveLink,
    PrinterLimits,
    WebcamInfo,
    WebcamList,
)
from oe_async.plugin_api import unwrap_envelope
from oe_async.plugin_api._files import entries as _entries
from oe_async.plugin_models import PluginFile, PrinterStatus
from oe_async.portal import parse_completion_url
from oe_async.webhooks import WebhookEvent
from oe_async.websocket import relay_close_code

pytestmark = pytest.mark.fuzz

#: In make test (the "quick" profile) these run 40 examples each: hypothesis spends 3-20 ms
#: per example here, and the long runs belong to make fuzz (the "fuzz" profile: 100,000).
EXAMPLES = settings(
    max_examples=40 if settings.default.max_examples < 1000 else settings.default.max_examples,
    suppress_health_check=[HealthCheck.too_slow],
)

FIXTURES = Path(__file__).parent / "fixtures"
#: Values generated for secret-bearing inputs carry this, so messages can be checked.
MARK = "Zq9SECRETq9Z"

# ---------------------------------------------------------------------------- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # json.loads accepts NaN and Infinity, so servers can send them
    | st.text(max_size=40)
)


def json_values(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    key = st.text(max_size=12) if keys is None else keys | st.text(max_size=12)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(key, children, max_size=6)
        ),
        max_leaves=25,
    )


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _keys(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@st.composite
def _mutate(draw: st.DrawFn, base: Any, keys: st.SearchStrategy[str], anything: Any) -> Any:
    # One draw in ten replaces this subtree; otherwise dicts lose or gain keys, lists
    # lose, repeat or reorder items, and leaves stay as they were (valid).
    if draw(st.integers(0, 9)) == 0:
        return draw(anything)
    if isinstance(base, Mapping):
        out = {}
        for key, value in base.items():
            if draw(st.integers(0, 9)) != 0:  # dropped one time in ten
                out[key] = draw(_mutate(value, keys, anything))
        if draw(st.integers(0, 9)) == 0:
            out.update(draw(st.dictionaries(keys, anything, max_size=2)))
        return out
    if isinstance(base, list) and base:
        picks = draw(st.lists(st.integers(0, len(base) - 1), max_size=len(base) + 2))
        return [draw(_mutate(base[i], keys, anything)) for i in picks]
    return base


def mutated(base: Any, keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """``base`` with subtrees dropped, replaced by arbitrary JSON, repeated or extended."""
    return _mutate(base, keys, json_values(keys))


def model_keys(*classes: type) -> st.SearchStrategy[str]:
    names: set[str] = set()
    for cls in classes:
        for field in attrs.fields(cls):
            names.add(field.metadata.get(_WIRE_KEY) or field.name)
            names.add("".join(p[:1].upper() + p[1:] for p in field.name.split("_")))
    return st.sampled_from(sorted(names))


def only(
    call: Callable[[], Any], allowed: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """Run ``call``; return the error if it is an allowed one, re-raise anything else."""
    try:
        call()
    except allowed as err:
        str(err), repr(err)  # both must work
        return err
    return None


# ---------------------------------------------------------------------------- portal


PORTAL_KEYS = [
    "success",
    "id",
    "url",
    "appApiToken",
    "authBasicHttpUser",
    "authBasicHttpPassword",
    "authBearerToken",
    "printerName",
    "printerLastKnownLocalIp",
    "octoPrintApiKey",
]
portal_values = st.one_of(
    st.sampled_from(["true", "false", "True", "1", "0", "", "https://app-x.octoeverywhere.com"]),
    st.text(max_size=30).map(lambda t: MARK + t),
)
completion_urls = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda params, sep: "https://octoeverywhere.com/done" + sep + "&".join(params),
        st.lists(
            st.builds(
                lambda k, v: f"{k}={v}",
                st.sampled_from(PORTAL_KEYS) | st.text(max_size=10),
                portal_values,
            ),
            max_size=12,
        ),
        st.sampled_from(["?", "#", "?x=1#"]),
    ),
)


@EXAMPLES
@given(completion_urls)
def test_parse_completion_url(url: str) -> None:
    err = only(lambda: parse_completion_url(url), PortalError)
    if err is not None:
        assert MARK not in str(err)


@EXAMPLES
@given(completion_urls, st.booleans())
def test_app_connection_from_completion_url(url: str, loopback: bool) -> None:
    err = only(
        lambda: AppConnection.from_completion_url(url, allow_insecure_loopback=loopback),
        InvalidArgumentError,
    )
    if err is not None:
        assert MARK not in str(err)


stored_connections = mutated(
    {
        "url": "https://app-x.octoeverywhere.com",
        "auth": {"type": "basic", "username": MARK + "u", "password": MARK + "p"},
        "app_token": MARK + "t",
        "id": "id",
        "printer_name": "P",
    },
    st.sampled_from(["url", "auth", "type", "token", "username", "password", "app_token"]),
)


@EXAMPLES
@given(stored_connections)
def test_app_connection_from_dict(data: Any) -> None:
    err = only(lambda: AppConnection.from_dict(data), InvalidArgumentError)
    if err is not None:
        assert MARK not in str(err)


# ---------------------------------------------------------------------------- errors

retry_after_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.integers(min_value=0, max_value=10**400).map(str),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT", "120", " 5 ", "-1", "1.5", "²", "٣"]),
)


@EXAMPLES
@given(retry_after_values)
def test_parse_retry_after(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@EXAMPLES
@given(
    st.integers(min_value=0, max_value=999),
    retry_after_values,
    st.binary(max_size=300),
    st.booleans(),
)
def test_decode_http_error(
    status: int, retry_after: str | None, body: bytes, printer: bool
) -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    error = decode_http_error(status, headers, body, app_id="app", printer=printer)
    if status < 400:
        assert error is None
        return
    assert isinstance(error, OctoEverywhereError)
    assert isinstance(error, RelayError) == (600 <= status <= 699)
    assert error.retry_after is None or (
        math.isfinite(error.retry_after) and error.retry_after >= 0
    )
    str(error), repr(error)


@EXAMPLES
@given(
    st.one_of(st.integers(min_value=-(2**31), max_value=2**31), st.text(max_size=60)), st.booleans()
)
def test_relay_close_code(data: int | str, error_frame: bool) -> None:
    kind = aiohttp.WSMsgType.ERROR if error_frame else aiohttp.WSMsgType.CLOSE
    code = relay_close_code(aiohttp.WSMessage(kind, data, None))
    assert code is None or 600 <= code <= 699


# ---------------------------------------------------------------------------- App API and plugin

MODELS: list[tuple[type, Any]] = [
    (ConnectionInfo, {"PrinterName": "P", "Limits": {"MaxDownloadFileSizeBytes": 1}}),
    (PrinterLimits, {"MaxDownloadFileSizeBytes": 1, "MaxUploadFileSizeBytes": 2}),
    (LiveLink, {"Url": "https://octoeverywhere.com/l/x", "Id": "x"}),
    (WebcamInfo, {"Name": "cam", "Index": 0}),
    (WebcamList, {"Webcams": [{"Name": "cam"}]}),
    (GadgetStatus, _load("gadget_spec_example.json")),
    (PrinterStatus, _load("plugin_status_docs_example.json")["Result"]),
    (PluginFile, {"Name": "a.gcode", "SizeBytes": 3}),
]
ALL_KEYS = st.sampled_from(sorted(set().union(*(_keys(base) for _, base in MODELS)))) | model_keys(
    *(cls for cls, _ in MODELS)
)


@pytest.mark.parametrize(("cls", "base"), MODELS, ids=[cls.__name__ for cls, _ in MODELS])
@EXAMPLES
@given(data=st.data())
def test_structure_models(cls: type, base: Any, data: st.DataObject) -> None:
    payload = data.draw(mutated(base, ALL_KEYS))
    only(lambda: structure(payload, cls, what="answer"), UnexpectedResponseError)


@EXAMPLES
@given(mutated(_load("files_list_spec_example.json"), ALL_KEYS))
def test_file_lists(payload: Any) -> None:
    only(lambda: _entries(payload), UnexpectedResponseError)


@EXAMPLES
@given(json_values(ALL_KEYS))
def test_structure_list(payload: Any) -> None:
    only(lambda: structure_list(payload, WebcamInfo, what="list"), UnexpectedResponseError)


envelopes = mutated(
    {"Status": 200, "Result": {"Anything": 1}, "Error": None},
    st.sampled_from(["Status", "Result", "Result:", "Error"]),
)


@EXAMPLES
@given(envelopes)
def test_unwrap_envelope(payload: Any) -> None:
    only(
        lambda: unwrap_envelope(payload, command="status"),
        (PluginCommandError, UnexpectedResponseError),
    )


webhook_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    mutated(_load("webhook_payload_spec_example.json"), ALL_KEYS),
    mutated(_load("webhook_payload_spec_example.json"), ALL_KEYS).map(
        lambda v: json.dumps(v).encode()
    ),
)


@EXAMPLES
@given(webhook_bodies)
def test_webhook_parse(body: Any) -> None:
    only(lambda: WebhookEvent.parse(body), InvalidArgumentError)


# ---------------------------------------------------------------------------- framing


@EXAMPLES
@given(
    st.one_of(
        st.none(),
        st.text(max_size=120),
        st.builds(
            lambda b, q: f"multipart/x-mixed-replace;{' ' if q else ''}boundary={b}",
            st.text(max_size=90),
            st.booleans(),
        ),
    )
)
def test_boundary_from_content_type(content_type: str | None) -> None:
    boundary = boundary_from_content_type(content_type)
    assert boundary is None or (isinstance(boundary, bytes) and boundary)


@EXAMPLES
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=70_000), st.booleans()), max_size=300))
def test_chunk_flood_guard(reads: list[tuple[int, bool]]) -> None:
    guard = ChunkFloodGuard("body")
    chunks = size = 0
    for length, end in reads:
        try:
            guard.check(b"x" * length, end_of_chunk=end)
        except UnexpectedResponseError:
            assert chunks + end >= 4096
            assert size + length < (chunks + end) * 64
            return
        chunks += end
        size += length
