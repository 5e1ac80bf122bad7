"""The sans-I/O error table: 6xx codes, parents, Retry-After, ordinary statuses."""

from __future__ import annotations

import email.utils

import pytest

import oe_async
from oe_async import errors
from oe_async.errors import decode_http_error, parse_retry_after

EXPECTED = {
    600: (oe_async.ServiceError, True),
    601: (oe_async.PrinterOfflineError, True),
    602: (oe_async.PluginTimeoutError, True),
    603: (oe_async.AppConnectionNotFoundError, False),
    604: (oe_async.AppConnectionRevokedError, False),
    605: (oe_async.SupporterPerksRequiredError, True),
    606: (oe_async.InvalidCredentialsError, False),
    607: (oe_async.DownloadLimitError, False),
    608: (oe_async.UploadLimitError, False),
    609: (oe_async.WebcamLimitError, True),
    610: (oe_async.PluginUpdateRequiredError, True),
    611: (oe_async.NoBetaAccessError, True),
    612: (oe_async.PluginError, True),
    613: (oe_async.NoActivePrintError, True),
}


@pytest.mark.parametrize(("status", "expected"), sorted(EXPECTED.items()))
def test_each_documented_code_maps_to_its_class(status: int, expected: tuple[type, bool]) -> None:
    cls, temporary = expected
    err = decode_http_error(status, {}, b"", app_id="my-app")
    assert type(err) is cls
    assert isinstance(err, oe_async.RelayError)
    assert isinstance(err, oe_async.OctoEverywhereError)
    assert err.status == status
    assert err.temporary is temporary
    assert err.message
    assert str(status) in str(err)


def test_all_fourteen_codes_are_covered() -> None:
    assert sorted(EXPECTED) == list(range(600, 614))


@pytest.mark.parametrize("status", [614, 650, 699])
def test_unknown_6xx_is_a_plain_relay_error_with_its_code(status: int) -> None:
    err = decode_http_error(status, {}, b"")
    assert type(err) is oe_async.RelayError
    assert err.status == status
    assert err.temporary is True


def test_parents_group_what_an_app_handles_alike() -> None:
    for status in (603, 604, 606):
        assert isinstance(decode_http_error(status, {}, b""), oe_async.ReauthorizationRequiredError)
    for status in (607, 608):
        assert isinstance(decode_http_error(status, {}, b""), oe_async.SizeLimitError)
    for status in (600, 601, 602, 605, 609, 610, 611, 612, 613):
        err = decode_http_error(status, {}, b"")
        assert not isinstance(err, oe_async.ReauthorizationRequiredError | oe_async.SizeLimitError)


def test_605_recovery_url_carries_the_app_id() -> None:
    err = decode_http_error(605, {}, b"", app_id="my-app")
    assert isinstance(err, oe_async.SupporterPerksRequiredError)
    assert (
        err.recovery_url == "https://octoeverywhere.com/appportal/v1/nosupporterperks?appid=my-app"
    )


def test_printer_and_app_api_statuses_are_not_relay_errors() -> None:
    printer_err = decode_http_error(404, {}, b'{"error": "nope"}', method="GET", path="/api/x")
    assert type(printer_err) is oe_async.PrinterHTTPError
    assert not isinstance(printer_err, oe_async.RelayError)
    assert printer_err.status == 404
    assert printer_err.body == b'{"error": "nope"}'
    assert "404 Not Found" in str(printer_err)
    assert "GET /api/x" in str(printer_err)
    assert printer_err.temporary is False
    api_err = decode_http_error(400, {}, b"", printer=False)
    assert type(api_err) is oe_async.AppAPIError
    assert isinstance(decode_http_error(503, {}, b""), oe_async.HTTPStatusError)
    assert decode_http_error(503, {}, b"").temporary is True  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [200, 204, 301, 399])
def test_success_and_redirect_statuses_are_not_errors(status: int) -> None:
    assert decode_http_error(status, {}, b"") is None


def test_error_body_kept_short() -> None:
    err = decode_http_error(500, {}, b"x" * 100_000)
    assert isinstance(err, oe_async.PrinterHTTPError)
    assert len(err.body) == 1024


def test_timeout_error_is_also_builtin_timeout_error() -> None:
    err = oe_async.RequestTimeoutError("GET /x timed out")
    assert isinstance(err, TimeoutError)
    assert isinstance(err, oe_async.CommunicationError)
    assert isinstance(err, oe_async.OctoEverywhereError)


def test_invalid_argument_is_a_value_error() -> None:
    assert issubclass(oe_async.InvalidArgumentError, ValueError)
    assert issubclass(oe_async.PortalError, oe_async.InvalidArgumentError)


def test_every_public_exception_derives_from_the_base() -> None:
    for name in oe_async.__all__:
        obj = getattr(oe_async, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, oe_async.OctoEverywhereError), name


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("120") == 120.0
        assert decode_http_error(601, {"Retry-After": "7"}, b"").retry_after == 7.0  # type: ignore[union-attr]

    def test_http_date(self) -> None:
        now = 1_800_000_000.0
        header = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after(header, now=now) == pytest.approx(30.0)

    def test_date_in_the_past_is_zero(self) -> None:
        header = email.utils.formatdate(1_000_000_000, usegmt=True)
        assert parse_retry_after(header, now=1_800_000_000.0) == 0.0

    @pytest.mark.parametrize("value", [None, "", "  ", "soon", "-5", "1.5e3", "Wed, 99 Foo 2026"])
    def test_garbage_is_ignored(self, value: str | None) -> None:
        assert parse_retry_after(value) is None


def test_size_limit_error_reports_both_numbers() -> None:
    err = errors.UploadLimitError(limit=1000, size=5000)
    assert err.limit == 1000
    assert err.size == 5000
    assert "5000" in str(err)
    assert "1000" in str(err)
    assert err.status == 608
