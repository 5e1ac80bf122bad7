"""Portal start URL and completion URL parsing."""

from __future__ import annotations

import pytest
from yarl import URL

from oe_async import (
    AppConnection,
    BasicAuth,
    BearerAuth,
    InvalidArgumentError,
    PortalError,
    portal_url,
)

COMPLETE = "https://octoeverywhere.com/appportal/v1/complete"
FIELDS = {
    "success": "true",
    "id": "conn-1",
    "url": "https://app-abcdef123456.octoeverywhere.com",
    "appApiToken": "apptok-1",
    "printername": "My Prusa",
    "printerLastKnownLocalIp": "192.168.1.50",
    "authBasicHttpUser": "user-1",
    "authBasicHttpPassword": "pass-1",
    "octoPrintApiKey": "op-1",
}


def query_url(fields: dict[str, str]) -> str:
    return str(URL(COMPLETE).with_query(fields))


def test_query_form() -> None:
    conn = AppConnection.from_completion_url(query_url(FIELDS))
    assert conn.url == URL("https://app-abcdef123456.octoeverywhere.com/")
    assert conn.auth == BasicAuth("user-1", "pass-1")
    assert conn.app_token == "apptok-1"
    assert conn.id == "conn-1"
    assert conn.printer_name == "My Prusa"
    assert conn.local_ip == "192.168.1.50"
    assert conn.octoprint_api_key == "op-1"


def test_fragment_form() -> None:
    fragment = URL.build(query=FIELDS).raw_query_string
    conn = AppConnection.from_completion_url(f"myapp://oe/done#{fragment}")
    assert conn.auth == BasicAuth("user-1", "pass-1")
    assert conn.printer_name == "My Prusa"


def test_legacy_lowercase_basic_auth_keys() -> None:
    fields = {k: v for k, v in FIELDS.items() if not k.startswith("authBasic")}
    fields["authbasichttpuser"] = "legacy-user"
    fields["authbasichttppassword"] = "legacy-pass"
    conn = AppConnection.from_completion_url(query_url(fields))
    assert conn.auth == BasicAuth("legacy-user", "legacy-pass")


def test_bearer_token() -> None:
    fields = {k: v for k, v in FIELDS.items() if not k.startswith("authBasic")}
    fields["authBearerToken"] = "bearer-1"
    assert AppConnection.from_completion_url(query_url(fields)).auth == BearerAuth("bearer-1")


def test_success_false_is_a_clear_error() -> None:
    with pytest.raises(PortalError, match="success=false"):
        AppConnection.from_completion_url(query_url({"success": "false"}))


def test_http_connection_url_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="https"):
        AppConnection.from_completion_url(
            query_url({**FIELDS, "url": "http://app-x.octoeverywhere.com"})
        )


def test_missing_keys_are_all_named_and_no_value_leaks() -> None:
    fields = {
        k: v for k, v in FIELDS.items() if k not in {"url", "appApiToken", "authBasicHttpPassword"}
    }
    with pytest.raises(PortalError) as excinfo:
        AppConnection.from_completion_url(query_url(fields))
    message = str(excinfo.value)
    assert "url" in message
    assert "appApiToken" in message
    assert "authBasicHttpPassword" in message
    assert "user-1" not in message


def test_no_credentials_at_all_is_named() -> None:
    fields = {k: v for k, v in FIELDS.items() if not k.startswith("auth")}
    with pytest.raises(PortalError, match="authBearerToken"):
        AppConnection.from_completion_url(query_url(fields))


def test_no_parameters() -> None:
    with pytest.raises(PortalError, match="no parameters"):
        AppConnection.from_completion_url(COMPLETE)


def test_portal_url_with_every_option() -> None:
    url = portal_url(
        "my-app",
        return_url="https://myapp.example/done?state=abc&x=1",
        printer_id="printer-9",
        app_logo_url="https://myapp.example/logo.png",
        octoprint_api_key_app_name="My App",
    )
    assert url.origin() == URL("https://octoeverywhere.com")
    assert url.path == "/appportal/v1/"
    assert url.query["appid"] == "my-app"
    assert url.query["returnUrl"] == "https://myapp.example/done?state=abc&x=1"
    assert url.query["printerId"] == "printer-9"
    assert url.query["appLogoUrl"] == "https://myapp.example/logo.png"
    assert url.query["octoPrintApiKeyAppName"] == "My App"
    assert "state%3Dabc%26x%3D1" in str(url)  # the return URL's own query is encoded whole


def test_portal_url_minimal() -> None:
    assert str(portal_url("my-app")) == "https://octoeverywhere.com/appportal/v1/?appid=my-app"


@pytest.mark.parametrize("name", ["x", "y" * 61, " a "])
def test_app_name_must_be_2_to_60_characters(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="2-60"):
        portal_url("my-app", octoprint_api_key_app_name=name)


@pytest.mark.parametrize("name", ["ab", "z" * 60])
def test_app_name_bounds_are_inclusive(name: str) -> None:
    assert (
        portal_url("my-app", octoprint_api_key_app_name=name).query["octoPrintApiKeyAppName"]
        == name
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"return_url": "/relative"}, "return_url"),
        ({"app_logo_url": "http://x.example/l.png"}, "app_logo_url"),
        ({"printer_id": " "}, "printer_id"),
    ],
)
def test_portal_url_rejects_bad_options(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        portal_url("my-app", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("app_id", ["", "has space", "a/b", "x" * 200])
def test_bad_app_id(app_id: str) -> None:
    with pytest.raises(InvalidArgumentError, match="app_id"):
        portal_url(app_id)


def test_unusable_credentials_are_a_portal_error_without_the_value() -> None:
    """Found by fuzzing: a control character in the user name raised a bare
    InvalidArgumentError from BasicAuth instead of the documented PortalError."""
    url = (
        f"{COMPLETE}?success=true&id=t&url=https://app-x.octoeverywhere.com&appApiToken=t"
        "&authBasicHttpUser=bad%1Fuser&authBasicHttpPassword=secret-pw"
    )
    with pytest.raises(PortalError, match="credentials are not usable") as caught:
        AppConnection.from_completion_url(url)
    assert "bad" not in str(caught.value)
    assert "secret-pw" not in str(caught.value)
