"""Receive OctoEverywhere notification webhooks with aiohttp.web.

    python examples/webhook_receiver.py --port 8080 --secret-key <the SecretKey you expect>

Register the public https URL that reaches this server with
``printer.set_notification_webhook(url)``; OctoEverywhere POSTs one JSON payload per event.
The receiver answers at once and hands each typed event to ``on_event`` in the background.
"""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from oe_async import EventType, WebhookEvent, WebhookReceiver
from oe_async.webhooks import EventHandler

_LOGGER = logging.getLogger("webhook_receiver")


async def on_event(event: WebhookEvent) -> None:
    """Turn an event into whatever your app does (a push notification, a live activity...)."""
    if event.event_type is EventType.PRINT_PROGRESS:
        _LOGGER.info("%s: %s at %.0f %%", event.printer_name, event.file_name, event.progress or 0)
    elif event.event_type.known:
        _LOGGER.info("%s: %s", event.printer_name, event.event_type.name)
    else:  # newer than this library: still delivered, with its raw fields in event.extra
        _LOGGER.info("%s: event %d", event.printer_name, int(event.event_type))


def make_app(secret_key: str | None, handler: EventHandler = on_event) -> web.Application:
    """The aiohttp application: POST /octoeverywhere/webhook."""
    app = web.Application()
    WebhookReceiver(handler, secret_key=secret_key).attach(app, "/octoeverywhere/webhook")
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--secret-key", help="reject payloads whose SecretKey differs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(args.secret_key), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
