"""The one retry policy the request funnel applies to every request."""

from __future__ import annotations

import random
from typing import Final

import attrs

from .errors import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RelayError,
    WebcamLimitError,
)

__all__ = ["IDEMPOTENT_METHODS", "RETRYABLE_RELAY_STATUSES", "ReconnectPolicy", "RetryPolicy"]

#: Methods that may be repeated without changing the outcome (RFC 9110 9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Relay codes worth another try: unknown error, printer offline, plugin timeout, plugin error.
#: These are the ``temporary`` codes except 609, whose wait is longer than a retry (the
#: webcam stream waits it out). Never the ones that need the user (603-608, 610, 611: their
#: ``needs_user_action`` is True) or 613 (it ends when a print starts, not with time).
RETRYABLE_RELAY_STATUSES: Final = frozenset({600, 601, 602, 612})

_rng = random.SystemRandom()


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidArgumentError(f"RetryPolicy.{attribute.name} must be a number >= 0")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    A request is retried only when all of these hold: its method is idempotent (or the
    caller passed ``idempotent=True``), its body can be sent again (bytes, a form of plain
    values, or a factory; never a consumed stream), attempts remain, and it failed with a
    network error, a timeout, or relay status 600/601/602/612.

    Delays use "full jitter": uniform in ``[0, min(max_delay, base_delay * 2**n)]``. A
    ``Retry-After`` from the server replaces the drawn delay when it is at most
    ``max_retry_after``; a longer one ends the retries (the error carries it).

    Attributes:
        attempts: total attempts including the first (1 disables retries).
        base_delay: seconds; the first backoff window.
        max_delay: seconds; the cap on a drawn delay.
        max_retry_after: seconds; the longest ``Retry-After`` waited for within a call.

    """

    attempts: int = attrs.field(default=3)
    base_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=10.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=10.0, validator=_non_negative)

    @attempts.validator
    def _check_attempts(self, _: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError("RetryPolicy.attempts must be an integer >= 1")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(attempts=1)

    def backoff(self, retry_number: int) -> float:
        """Draw the delay before retry ``retry_number`` (1 for the first retry)."""
        window = min(self.max_delay, self.base_delay * (2 ** max(0, retry_number - 1)))
        return _rng.uniform(0.0, window)

    def delay(self, retry_number: int, error: OctoEverywhereError) -> float | None:
        """The wait before the next attempt, or None when the caller should not wait.

        A ``Retry-After`` from the server replaces the backoff draw; one longer than
        ``max_retry_after`` ends the retries at once (sleeping less than the server asked is
        pointless, sleeping longer blocks the caller): the error's ``retry_after`` tells
        the caller when to come back.
        """
        retry_after = error.retry_after
        if retry_after is not None:
            return float(retry_after) if retry_after <= self.max_retry_after else None
        return self.backoff(retry_number)

    @staticmethod
    def is_retryable_error(error: OctoEverywhereError) -> bool:
        """True for errors a retry may cure (network, timeout, 600/601/602/612)."""
        if isinstance(error, RelayError):
            return error.status in RETRYABLE_RELAY_STATUSES
        return isinstance(error, CommunicationError)


def is_temporary(error: OctoEverywhereError) -> bool:
    """True when trying the same request again by itself, after a short wait, may succeed.

    Reconnecting streams (webcam frames, subscriptions, the Gadget poller) keep going on
    these and stop on the rest, including every error whose ``needs_user_action`` is True.
    """
    return bool(getattr(error, "temporary", False))


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """How a long-lived stream (webcam frames, a WebSocket subscription) renews itself.

    A stream that ends normally (e.g. the relay's per-stream time limit) is reopened at once.
    A failed open, or a stream that drops before delivering anything, is a *failure*: the
    next open waits a full-jitter backoff (uniform in ``[0, min(max_delay, base_delay *
    2**(n-1))]``, or the server's ``Retry-After``), and after ``max_failures`` failures in a
    row (None: never) the stream ends with the last error. A 609
    (:class:`oe_async.WebcamLimitError`) waits at least ``webcam_limit_delay``, doubling on
    repeats: no reconnect storm. Permanent errors (revoked connection, 4xx from the
    printer...) end the stream at once.
    """

    max_failures: int | None = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    webcam_limit_delay: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.max_failures is not None and self.max_failures < 1:
            raise InvalidArgumentError("ReconnectPolicy.max_failures must be >= 1 or None")
        if min(self.base_delay, self.max_delay, self.webcam_limit_delay) < 0:
            raise InvalidArgumentError("ReconnectPolicy delays must not be negative")

    def delay(self, failures: int, error: OctoEverywhereError) -> float:
        """Seconds to wait before the next open after ``failures`` failures in a row."""
        retry_after = error.retry_after
        server_wait = min(float(retry_after), 10 * self.max_delay) if retry_after else 0.0
        if isinstance(error, WebcamLimitError):
            cap = max(self.max_delay, self.webcam_limit_delay)
            backoff = min(self.webcam_limit_delay * 2.0 ** (failures - 1), cap)
            return max(backoff, server_wait)
        if server_wait:
            return server_wait
        window = min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
        return _rng.uniform(0.0, window)
