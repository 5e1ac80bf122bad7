"""OctoEverywhere's own status codes (600-699): one table, one class per code.

The classes are grouped by parent: the plain relay errors, then those that need the portal
again (:class:`ReauthorizationRequiredError`), then the transfer limits (:class:`SizeLimitError`).
"""

from __future__ import annotations

from typing import ClassVar, Final

from yarl import URL

from ._base import NEEDS_USER, NEITHER, TEMPORARY, CodeTable, OctoEverywhereError

NO_SUPPORTER_PERKS_URL: Final = "https://octoeverywhere.com/appportal/v1/nosupporterperks"

# fmt: off
#: OctoEverywhere's own status codes: (status, class, what it answers, default message).
#: Its own table also calls 605, 610, 611 and 613 "temporary" (they can end without this
#: app doing anything); here that means "retrying by itself soon may help" (see RelayError).
RELAY_CODES: Final[CodeTable[RelayError]] = CodeTable("status", (
    (600, "ServiceError", TEMPORARY,
        "OctoEverywhere had a temporary problem. Try again shortly."),
    (601, "PrinterOfflineError", TEMPORARY,
        "The printer is offline: it is not connected to OctoEverywhere."),
    (602, "PluginTimeoutError", TEMPORARY,
        "The printer's OctoEverywhere plugin did not answer in time."),
    (603, "AppConnectionNotFoundError", NEEDS_USER,
        "This app's connection to the printer no longer exists. Connect again."),
    (604, "AppConnectionRevokedError", NEEDS_USER,
        "This app's connection to the printer was revoked or expired. Connect again."),
    (605, "SupporterPerksRequiredError", NEEDS_USER,
        "The printer owner's OctoEverywhere account needs Supporter Perks for this app."),
    (606, "InvalidCredentialsError", NEEDS_USER,
        "The app's credentials for this printer were refused. Connect again."),
    (607, "DownloadLimitError", NEEDS_USER,
        "The file is larger than the account's download limit."),
    (608, "UploadLimitError", NEEDS_USER,
        "The file is larger than the account's upload limit."),
    (609, "WebcamLimitError", TEMPORARY,
        "The webcam was opened too often in a short time. Wait a moment."),
    (610, "PluginUpdateRequiredError", NEEDS_USER,
        "The printer's OctoEverywhere plugin needs an update."),
    (611, "NoBetaAccessError", NEEDS_USER,
        "This feature needs OctoEverywhere beta access."),
    (612, "PluginError", TEMPORARY,
        "The printer's OctoEverywhere plugin reported an error."),
    (613, "NoActivePrintError", NEITHER,
        "There is no active print to follow."),
))
# fmt: on


@RELAY_CODES.family
class RelayError(OctoEverywhereError):
    """OctoEverywhere answered with one of its own status codes (600-699).

    Attributes:
        status: the 6xx code (plain ``int``).
        temporary: True for 600, 601, 602, 609, 612 and unknown codes.
        needs_user_action: True for 603-608, 610 and 611.
        message: a short sentence suitable for showing to the user.
        retry_after: seconds the server asked us to wait (``Retry-After``), else None.

    OctoEverywhere's own table also calls 605, 610, 611 and 613 "temporary", meaning they
    can end without this app doing anything (the owner re-subscribes, the plugin is
    updated, a print starts). Here ``temporary`` means "retrying by itself soon may
    help", which none of those do: 605/610/611 need a person, and 613 ends when a print
    starts (retry on a ``PrintStarted`` webhook, not on a timer).

    """

    status: int = 600
    temporary: bool = True
    default_message: ClassVar[str] = "OctoEverywhere reported an error."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        #: Seconds the server asked us to wait (``Retry-After``), else None.
        self.retry_after: float | None = retry_after
        message = message or self.default_message
        self._set_message(message, f"{message} (OctoEverywhere status {self.status})")


class ServiceError(RelayError, code=600):
    """600: an unknown OctoEverywhere server error."""


class PrinterOfflineError(RelayError, code=601):
    """601: the printer is not connected to OctoEverywhere."""


class PluginTimeoutError(RelayError, code=602):
    """602: the printer's OctoEverywhere plugin is connected but did not answer in time."""


class WebcamLimitError(RelayError, code=609):
    """609: the webcam was viewed too many times back to back; wait before reopening it."""


class PluginUpdateRequiredError(RelayError, code=610):
    """610: the printer's OctoEverywhere plugin must be updated (by a person)."""


class NoBetaAccessError(RelayError, code=611):
    """611: the feature needs OctoEverywhere beta access (the owner has to get it)."""


class PluginError(RelayError, code=612):
    """612: the printer's OctoEverywhere plugin reported an error."""


class NoActivePrintError(RelayError, code=613):
    """613: there is no active print (Live Link that follows the current print).

    Neither temporary nor a user action: it works once a print starts, so try again then
    (a ``PrintStarted`` webhook), not on a timer.
    """


class SupporterPerksRequiredError(RelayError, code=605):
    """605: the owner's account lost OctoEverywhere Supporter Perks.

    Works again once they re-subscribe (a person has to act, so not ``temporary``); link
    the user to ``recovery_url``.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        app_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        #: The page where the printer owner restores Supporter Perks.
        self.recovery_url: str = supporter_perks_url(app_id)


class ReauthorizationRequiredError(RelayError):
    """The App Connection can never work again: send the user through the portal (603/604/606)."""

    temporary = False
    needs_user_action = True


class AppConnectionNotFoundError(ReauthorizationRequiredError, code=603):
    """603: the App Connection does not exist; this URL and token will never work again."""


class AppConnectionRevokedError(ReauthorizationRequiredError, code=604):
    """604: revoked or expired (user revoked it, printer removed, account deleted)."""


class InvalidCredentialsError(ReauthorizationRequiredError, code=606):
    """606: the App Connection credentials are missing or wrong."""


class SizeLimitError(RelayError):
    """A transfer is over the account's size limit (607 download, 608 upload).

    A person has to act: pick a smaller file, or raise the account's limit.

    Attributes:
        limit: the account's limit in bytes, when known.
        size: the file's size in bytes, when known.
        client_side: True when oe_async raised it itself, comparing the file with the
            account's limits (from the App API); then OctoEverywhere never answered
            607/608 and ``str(err)`` does not claim it did. False for the relay's 607/608
            (``limit`` and ``size`` are then None).

    """

    temporary = False
    needs_user_action = True

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        limit: int | None = None,
        size: int | None = None,
        client_side: bool = False,
    ) -> None:
        #: The account's limit in bytes, when known.
        self.limit: int | None = limit
        #: The file's size in bytes, when known.
        self.size: int | None = size
        #: True when oe_async raised it before (or instead of) an answer from the relay.
        self.client_side: bool = client_side
        if message is None and limit is not None and size is not None:
            message = f"{self.default_message} ({size} bytes; the account allows {limit} bytes)"
        super().__init__(message, status=status, retry_after=retry_after)
        if client_side:  # no 607/608 came: the text must not claim one
            self._set_message(self.message, self.message)


class DownloadLimitError(SizeLimitError, code=607):
    """607: the response body is over the account's download limit."""


class UploadLimitError(SizeLimitError, code=608):
    """608: the request body is over the account's upload limit."""


RELAY_CODES.check()


def supporter_perks_url(app_id: str | None) -> str:
    """Return the page that lets the printer owner restore Supporter Perks (605)."""
    if not app_id:
        return NO_SUPPORTER_PERKS_URL
    return str(URL(NO_SUPPORTER_PERKS_URL).with_query(appid=app_id))


def relay_error(
    status: int, *, app_id: str | None = None, retry_after: float | None = None
) -> RelayError:
    """Map an OctoEverywhere status code (600-699) to its exception.

    Unknown 6xx codes (new ones may appear) map to a plain :class:`RelayError` carrying the code.
    """
    cls = RELAY_CODES.get(status)
    if cls is SupporterPerksRequiredError:
        return SupporterPerksRequiredError(retry_after=retry_after, app_id=app_id)
    if cls is not None:
        return cls(retry_after=retry_after)
    return RelayError(status=status, retry_after=retry_after)


def is_relay_status(status: int) -> bool:
    """Return True for OctoEverywhere's own status range (600-699)."""
    return 600 <= status <= 699
