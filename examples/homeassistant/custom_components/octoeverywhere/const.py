"""Constants for the OctoEverywhere integration."""

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "octoeverywhere"
LOGGER = logging.getLogger(__package__)

#: The OctoEverywhere App ID this integration registered (it names the app in the portal).
APP_ID: Final = "home-assistant-oe-async"

#: Where the portal sends the user at the end; they copy that page's address into the flow.
PORTAL_COMPLETE_URL: Final = "https://octoeverywhere.com/appportal/v1/complete"

CONF_CONNECTION: Final = "connection"
CONF_COMPLETION_URL: Final = "completion_url"

#: The plugin status is cheap for the printer; OctoEverywhere asks apps not to poll fast.
UPDATE_INTERVAL: Final = timedelta(seconds=30)
