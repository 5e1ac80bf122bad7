"""The origin rule and the middleware object (pure parts)."""

from __future__ import annotations

import pytest
from yarl import URL

from oe_async.auth import AuthMiddleware, BasicAuth, is_loopback_host, origin_of, redact_url


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://a.example", "https://a.example:443/x?y", True),
        ("https://A.Example", "https://a.example", True),
        ("https://a.example", "wss://a.example/ws", True),
        ("http://a.example", "ws://a.example:80", True),
        ("https://a.example", "http://a.example", False),
        ("https://a.example", "https://a.example:8443", False),
        ("https://a.example", "https://b.example", False),
        ("https://a.example", "https://x.a.example", False),
    ],
)
def test_origin_equality(a: str, b: str, same: bool) -> None:
    assert (origin_of(URL(a)) == origin_of(URL(b))) is same


def test_headers_for_only_the_pinned_origin() -> None:
    mw = AuthMiddleware({origin_of(URL("https://relay.example")): {"Authorization": "Basic x"}})
    assert mw.headers_for(URL("https://relay.example/api")) == {"Authorization": "Basic x"}
    assert mw.headers_for(URL("https://relay.example:444/api")) == {}
    assert mw.headers_for(URL("http://relay.example/api")) == {}
    assert "Basic x" not in repr(mw)


def test_basic_header_value() -> None:
    assert BasicAuth("user", "pass").header_value == "Basic dXNlcjpwYXNz"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://app-secret123.octoeverywhere.com/path?q=1", "https://***.octoeverywhere.com"),
        ("https://octoeverywhere.com/x", "https://octoeverywhere.com"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080"),
        ("http://user:pw@a.b.c/x", "http://***.b.c"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        # Names are never loopback: DNS (or the hosts file) decides where they point.
        ("localhost", False),
        ("localhost.", False),
        ("attacker.localhost", False),
        ("127.1", False),  # a resolver's shorthand, not an address literal
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
