"""The MQTT errors an app meets: a refused CONNECT (by return code) and refused subscriptions.

Each is an :class:`oe_async.OctoEverywhereError` with a ``message`` for users and the two
flags (``temporary``, ``needs_user_action``) every oe_async error has::

    OctoEverywhereError
    └── MQTTError
        ├── MQTTProtocolError (also UnexpectedResponseError)  malformed or unexpected packets
        ├── MQTTSubscribeError                                  SUBACK 0x80 for a filter
        └── MQTTConnectionRefusedError                          CONNACK return code 1-255
            ├── MQTTProtocolVersionError        1  the broker does not speak MQTT 3.1.1
            ├── MQTTClientIdRejectedError       2  the client id was refused
            ├── MQTTBrokerUnavailableError      3  temporary: the printer's broker is down
            ├── MQTTBadCredentialsError         4  needs_user_action
            └── MQTTNotAuthorizedError          5  needs_user_action

Through OctoEverywhere's relay, return code 3 is what an app sees while the plugin has no
connection to the printer's own broker (printer off, rebooting, LAN trouble): the relay
answers every new CONNECT with it until the printer is back. A dropped connection, a
keepalive that gets no answer and a timeout are the usual
:class:`oe_async.CommunicationError` / :class:`oe_async.RequestTimeoutError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final

from .errors._base import NEEDS_USER, NEITHER, TEMPORARY, CodeTable
from .mqtt_packets import MQTTError, MQTTProtocolError, SubscribeResult

__all__ = [
    "MQTTBadCredentialsError",
    "MQTTBrokerUnavailableError",
    "MQTTClientIdRejectedError",
    "MQTTConnectionRefusedError",
    "MQTTError",
    "MQTTNotAuthorizedError",
    "MQTTProtocolError",
    "MQTTProtocolVersionError",
    "MQTTSubscribeError",
    "connack_error",
]

# fmt: off
#: The CONNACK return codes MQTT 3.1.1 defines: (code, class, what it answers, message).
REFUSALS: Final[CodeTable[MQTTConnectionRefusedError]] = CodeTable("return_code", (
    (1, "MQTTProtocolVersionError", NEITHER,
        "The printer's MQTT broker does not accept this protocol version."),
    (2, "MQTTClientIdRejectedError", NEITHER,
        "The printer's MQTT broker refused the client id."),
    (3, "MQTTBrokerUnavailableError", TEMPORARY,
        "The printer's MQTT broker is not available now. Try again shortly."),
    (4, "MQTTBadCredentialsError", NEEDS_USER,
        "The printer's MQTT broker refused the user name or password."),
    (5, "MQTTNotAuthorizedError", NEEDS_USER,
        "The printer's MQTT broker does not allow this client to connect."),
))
# fmt: on


@REFUSALS.family
class MQTTConnectionRefusedError(MQTTError):
    """The broker refused the MQTT CONNECT (CONNACK return code other than 0).

    Attributes:
        return_code: the CONNACK return code (1-5 are defined by MQTT 3.1.1; others are
            reported with this class).

    """

    return_code: int = 0
    default_message: ClassVar[str] = "The printer's MQTT broker refused the connection."

    def __init__(self, message: str | None = None, *, return_code: int | None = None) -> None:
        if return_code is not None:
            self.return_code = return_code
        message = message or self.default_message
        super().__init__(message)
        self._set_message(message, f"{message} (MQTT CONNACK return code {self.return_code})")


class MQTTProtocolVersionError(MQTTConnectionRefusedError, code=1):
    """1: the broker does not accept MQTT 3.1.1 (the protocol level oe_async speaks)."""


class MQTTClientIdRejectedError(MQTTConnectionRefusedError, code=2):
    """2: the broker refused the client id (pass another ``client_id``, or none)."""


class MQTTBrokerUnavailableError(MQTTConnectionRefusedError, code=3):
    """3: the broker is not available now (temporary).

    Through OctoEverywhere this means the plugin is not connected to the printer's own MQTT
    broker (printer off or rebooting): try again later, with a back-off.
    """


class MQTTBadCredentialsError(MQTTConnectionRefusedError, code=4):
    """4: bad user name or password (a person must fix them)."""


class MQTTNotAuthorizedError(MQTTConnectionRefusedError, code=5):
    """5: not authorised (a person must grant access)."""


REFUSALS.check()


def connack_error(return_code: int) -> MQTTConnectionRefusedError:
    """The error for a CONNACK return code other than 0 (a generic one for unknown codes)."""
    cls = REFUSALS.get(return_code)
    if cls is not None:
        return cls()
    return MQTTConnectionRefusedError(return_code=return_code)


class MQTTSubscribeError(MQTTError):
    """The broker refused one or more topic filters of a SUBSCRIBE (SUBACK code 0x80).

    The filters it granted stay subscribed. Temporary: through OctoEverywhere a refusal
    usually means the printer's broker did not answer the plugin in time, or dropped it.

    Attributes:
        results: one :class:`oe_async.SubscribeResult` per filter, in the order asked.

    """

    temporary = True
    default_message = "The printer's MQTT broker refused a subscription."

    def __init__(self, results: Sequence[SubscribeResult]) -> None:
        #: One result per filter, in the order asked (``granted_qos`` None: refused).
        self.results: tuple[SubscribeResult, ...] = tuple(results)
        refused = sum(1 for result in self.results if not result.ok)
        message = (
            self.default_message
            if len(self.results) == 1
            else f"The printer's MQTT broker refused {refused} of {len(self.results)} "
            "subscriptions."
        )
        super().__init__(message)
