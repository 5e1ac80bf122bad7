"""Constants for the OctoEverywhere integration."""

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "octoeverywhere"
LOGGER = logging.getLogger(__package__)

#: The OctoEverywhere App ID this integration registered (it names the app in the portal).
APP_ID: Final = "home-assistant-oe-async"

#: Where the portal sends the user at the end; they copy that page's address into the flow.
#: A pasted address must be this page (scheme, host, port and path), whatever it carries.
PORTAL_COMPLETE_URL: Final = "https://octoeverywhere.com/appportal/v1/complete"

CONF_CONNECTION: Final = "connection"
CONF_COMPLETION_URL: Final = "completion_url"

#: The plugin status is cheap for the printer; OctoEverywhere asks apps not to poll fast.
UPDATE_INTERVAL: Final = timedelta(seconds=30)
#: The deadline of one refresh (both calls, oe_async's retries included), inside the interval.
UPDATE_TIMEOUT: Final = 20.0
#: How often to look again while a person has to act (605, 610, 611): nothing changes sooner
#: than they do, and OctoEverywhere should not be asked the same thing every 30 seconds.
USER_ACTION_INTERVAL: Final = timedelta(minutes=5)
#: The longest a ``Retry-After`` may delay the next poll. OctoEverywhere may ask for more (oe_async
#: itself caps it at a day), but entities would then stay unavailable that long after the printer
#: recovered; ten minutes keeps the load low and the recovery prompt.
MAX_RETRY_AFTER: Final = timedelta(minutes=10)
#: A snapshot's deadline, inside Home Assistant's own 10 s for a camera image, so the user
#: gets oe_async's message rather than a cancelled request.
SNAPSHOT_TIMEOUT: Final = 8.0
#: The config flow's check of a new App Connection (the user is waiting on the form).
FLOW_TIMEOUT: Final = 15.0
