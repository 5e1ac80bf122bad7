"""The sans-I/O error table: 6xx codes, parents, Retry-After, ordinary statuses."""

from __future__ import annotations

import email.utils
import json
from pathlib import Path

import pytest

import oe_async
from oe_async import RetryPolicy, errors
from oe_async.errors import decode_http_error, parse_retry_after
from oe_async.retry import RETRYABLE_RELAY_STATUSES

T, U, NEITHER = "temporary", "needs_user_action", "neither"
#: code: (class, the one question it answers). OctoEverywhere's table also calls 605, 610,
#: 611 and 613 temporary ("can end without this app doing anything"); here temporary means
#: "retrying by myself soon may help", which none of them does.
EXPECTED = {
    600: (oe_async.ServiceError, T),
    601: (oe_async.PrinterOfflineError, T),
    602: (oe_async.PluginTimeoutError, T),
    603: (oe_async.AppConnectionNotFoundError, U),
    604: (oe_async.AppConnectionRevokedError, U),
    605: (oe_async.SupporterPerksRequiredError, U),
    606: (oe_async.InvalidCredentialsError, U),
    607: (oe_async.DownloadLimitError, U),
    608: (oe_async.UploadLimitError, U),
    609: (oe_async.WebcamLimitError, T),
    610: (oe_async.PluginUpdateRequiredError, U),
    611: (oe_async.NoBetaAccessError, U),
    612: (oe_async.PluginError, T),
    613: (oe_async.NoActivePrintError, NEITHER),
}
PLUGIN_EXPECTED = {
    750: (oe_async.PluginCommandFailedError, NEITHER),
    751: (oe_async.PluginCommandFailedError, NEITHER),
    752: (oe_async.PluginCommandFailedError, NEITHER),
    753: (oe_async.PluginCommandFailedError, NEITHER),
    754: (oe_async.PluginCommandFailedError, NEITHER),
    785: (oe_async.PrinterSoftwareNotConnectedError, T),
    786: (oe_async.InvalidPrinterStateError, NEITHER),
    787: (oe_async.TooManyClientsError, T),
    788: (oe_async.UnsupportedOnPlatformError, NEITHER),
    789: (oe_async.PluginNotAuthorizedError, U),
    404: (oe_async.PluginCommandFailedError, NEITHER),  # a command's own code
}


def answers(err: oe_async.OctoEverywhereError) -> str:
    assert not (err.temporary and err.needs_user_action), "never both"
    return T if err.temporary else U if err.needs_user_action else NEITHER


@pytest.mark.parametrize(("status", "expected"), sorted(EXPECTED.items()))
def test_each_documented_code_maps_to_its_class(status: int, expected: tuple[type, str]) -> None:
    cls, kind = expected
    err = decode_http_error(status, {}, b"", app_id="my-app")
    assert type(err) is cls
    assert isinstance(err, oe_async.RelayError)
    assert isinstance(err, oe_async.OctoEverywhereError)
    assert err.status == status
    assert answers(err) == kind
    assert err.message
    assert str(err) == f"{err.message} (OctoEverywhere status {status})"


@pytest.mark.parametrize(("status", "expected"), sorted(PLUGIN_EXPECTED.items()))
def test_each_plugin_code_answers_one_question(status: int, expected: tuple[type, str]) -> None:
    cls, kind = expected
    err = errors.plugin_error(status, "")
    assert type(err) is cls
    assert err.plugin_status == status
    assert answers(err) == kind
    assert err.message == cls.default_message  # an empty Error gets a sentence
    assert str(err) == f"{err.message} (plugin status {status})"


def test_the_default_retry_policy_retries_temporary_relay_codes_only() -> None:
    """retry.py, the flags and README agree: a retried code is temporary, and only 609
    among the temporary ones is left to the caller (its wait is longer than a retry)."""
    for status in range(600, 614):
        err = decode_http_error(status, {}, b"")
        assert isinstance(err, oe_async.RelayError)
        retried = RetryPolicy.is_retryable_error(err)
        assert retried == (err.temporary and status != 609), status
        if err.needs_user_action:
            assert not retried
    assert RetryPolicy.is_retryable_error(oe_async.CommunicationError("x"))
    assert {600, 601, 602, 612} == RETRYABLE_RELAY_STATUSES


def test_readme_tables_agree_with_the_flags() -> None:
    """The README's error table and the retry policy of docs/requests-and-errors.md."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    guide = (root / "docs" / "requests-and-errors.md").read_text(encoding="utf-8")
    table = readme.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for status, (cls, kind) in EXPECTED.items():
        row = next(r for r in rows if f"({status})" in r)
        assert cls.__name__ in row
        assert (
            row.split("|")[2].strip()
            == {T: "temporary", U: "needs the user", NEITHER: "neither"}[kind]
        ), row
    retries = guide.split("\n## Retries\n", 1)[1].split("\n## ", 1)[0]
    assert "600/601/602/612" in retries


EVERY_ERROR: list[oe_async.OctoEverywhereError] = [
    oe_async.OctoEverywhereError(),
    oe_async.InvalidArgumentError("size must be a non-negative integer"),
    oe_async.PortalError(),
    oe_async.ClientClosedError(),
    oe_async.CommunicationError(),
    oe_async.RequestTimeoutError(),
    oe_async.UnexpectedResponseError(),
    oe_async.UploadSourceError(),
    oe_async.RelayError(status=650),
    oe_async.PluginCommandError(),
    oe_async.PrinterHTTPError(404, reason="Not Found", method="GET", path="/x"),
    oe_async.AppAPIError(400),
    *(errors.relay_error(status) for status in range(600, 614)),
    *(errors.plugin_error(status) for status in PLUGIN_EXPECTED),
]


@pytest.mark.parametrize("err", EVERY_ERROR, ids=lambda e: type(e).__name__)
def test_every_error_has_one_user_facing_message(err: oe_async.OctoEverywhereError) -> None:
    assert isinstance(err.message, str)
    assert err.message.strip() == err.message
    assert err.message
    assert err.message in str(err)
    answers(err)


def test_message_is_the_text_given() -> None:
    err = oe_async.CommunicationError("GET /api/job: cannot connect (Connection refused)")
    assert err.message == "GET /api/job: cannot connect (Connection refused)"
    assert str(err) == err.message
    assert oe_async.CommunicationError().message.startswith("The printer could not be reached")


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


def test_error_body_kept_whole_up_to_64_kib() -> None:
    err = decode_http_error(500, {}, b"x" * 100_000)
    assert isinstance(err, oe_async.PrinterHTTPError)
    assert len(err.body) == errors.MAX_ERROR_BODY == 64 * 1024
    body = json.dumps({"error": {"message": "m", "traceback": "t" * 30_000}}).encode()
    err = decode_http_error(500, {}, body)
    assert isinstance(err, oe_async.PrinterHTTPError)
    assert err.body == body
    assert json.loads(err.body)["error"]["message"] == "m"


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
