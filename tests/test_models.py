"""AppConnection: URL rules, redaction, persistence."""

from __future__ import annotations

import json

import pytest
from yarl import URL

from oe_async import AppConnection, BasicAuth, BearerAuth, InvalidArgumentError

PASSWORD = "pw-SeCrEt-5f1c9e"
TOKEN = "tok-ToKeN-9a8b7c"
APP_TOKEN = "app-ApPtOkEn-123abc"
SUBDOMAIN = "app-f00dfacecafe1234"
URL_TEXT = f"https://{SUBDOMAIN}.octoeverywhere.com"


def make(**kw: object) -> AppConnection:
    fields: dict[str, object] = {
        "url": URL_TEXT,
        "auth": BasicAuth("octo-user", PASSWORD),
        "app_token": APP_TOKEN,
        "id": "conn-42",
        "printer_name": "Voron",
        "local_ip": "192.168.1.20",
        "octoprint_api_key": "opkey-XyZ",
    }
    fields.update(kw)
    return AppConnection(**fields)  # type: ignore[arg-type]


def test_url_is_normalised_to_a_base() -> None:
    conn = make()
    assert conn.url == URL(URL_TEXT + "/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://app-x.octoeverywhere.com", "https"),
        ("ftp://app-x.octoeverywhere.com", "https"),
        ("app-x.octoeverywhere.com", "absolute"),
        ("/relative", "absolute"),
        ("https://user:pw@app-x.octoeverywhere.com", "user info"),
        ("https://app-x.octoeverywhere.com/?q=1", "query"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        make(url=url)


def test_http_needs_loopback_and_an_explicit_opt_in() -> None:
    with pytest.raises(InvalidArgumentError, match="allow_insecure_loopback"):
        make(url="http://127.0.0.1:8080")
    assert make(url="http://127.0.0.1:8080", allow_insecure_loopback=True).url.port == 8080
    with pytest.raises(InvalidArgumentError, match="by its address"):
        make(url="http://localhost:1", allow_insecure_loopback=True)
    assert make(url="http://[::1]:1", allow_insecure_loopback=True)
    with pytest.raises(InvalidArgumentError, match="https"):
        make(url="http://192.168.1.5", allow_insecure_loopback=True)
    with pytest.raises(InvalidArgumentError, match="https"):
        make(url="http://example.com", allow_insecure_loopback=True)


def test_bad_auth_and_token_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="auth"):
        make(auth=("user", "pw"))
    with pytest.raises(InvalidArgumentError, match="app_token"):
        make(app_token="")
    with pytest.raises(InvalidArgumentError, match="app_token"):
        make(app_token="has space")
    with pytest.raises(InvalidArgumentError, match=":"):
        BasicAuth("a:b", "pw")
    with pytest.raises(InvalidArgumentError, match="control"):
        BasicAuth("a", "pw\r\nX-Evil: 1")
    with pytest.raises(InvalidArgumentError, match="whitespace"):
        BearerAuth("a b")
    with pytest.raises(InvalidArgumentError, match="empty"):
        BearerAuth("")


@pytest.mark.parametrize("auth", [BasicAuth("octo-user", PASSWORD), BearerAuth(TOKEN)])
def test_repr_and_str_hide_every_secret(auth: BasicAuth | BearerAuth) -> None:
    conn = make(auth=auth)
    for text in (repr(conn), str(conn), repr(auth), str(auth)):
        for secret in (PASSWORD, TOKEN, APP_TOKEN, SUBDOMAIN, "opkey-XyZ", "octo-user", "conn-42"):
            assert secret not in text
    assert "***.octoeverywhere.com" in repr(conn)
    assert "Voron" in repr(conn)


@pytest.mark.parametrize("auth", [BasicAuth("octo-user", PASSWORD), BearerAuth(TOKEN)])
def test_round_trips_through_a_plain_json_dict(auth: BasicAuth | BearerAuth) -> None:
    conn = make(auth=auth)
    data = conn.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert URL(data["url"]) == URL(URL_TEXT)
    assert data["auth"]["type"] in {"basic", "bearer"}
    assert AppConnection.from_dict(json.loads(json.dumps(data))) == conn


def test_from_dict_names_what_is_wrong() -> None:
    good = make().to_dict()
    missing = {k: v for k, v in good.items() if k != "auth"}
    with pytest.raises(InvalidArgumentError, match="auth"):
        AppConnection.from_dict(missing)
    # app_token may be absent (a relay-only connection), but not empty.
    assert AppConnection.from_dict({k: v for k, v in good.items() if k != "app_token"})
    with pytest.raises(InvalidArgumentError, match="app_token"):
        AppConnection.from_dict({**good, "app_token": " "})
    with pytest.raises(InvalidArgumentError, match="https"):
        AppConnection.from_dict({**good, "url": "http://example.com"})
    with pytest.raises(InvalidArgumentError, match="mapping"):
        AppConnection.from_dict("nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError) as excinfo:
        AppConnection.from_dict({**good, "auth": {"type": "basic", "username": "u"}})
    assert PASSWORD not in str(excinfo.value)


def test_frozen() -> None:
    conn = make()
    with pytest.raises(AttributeError):
        conn.app_token = "x"  # type: ignore[misc]
