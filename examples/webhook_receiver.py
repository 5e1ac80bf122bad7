"""Receive OctoEverywhere notification webhooks with aiohttp.web.

    OE_WEBHOOK_SECRET_KEY=<the SecretKey you expect> python examples/webhook_receiver.py --port 8080

The SecretKey comes from ``--secret-key`` or the ``OE_WEBHOOK_SECRET_KEY`` environment
variable (which keeps it out of the process list); payloads carrying any other SecretKey are
refused with 403. Without one the example refuses to start, unless you pass
``--allow-unsigned`` (local experiments only: anyone who finds the URL could post events).

Register the public https URL that reaches this server with
``printer.app_api.set_notification_webhook(url)``; OctoEverywhere POSTs one JSON payload per event.
The receiver answers at once and hands each typed event to ``on_event`` in the background.

The application is made with ``auto_decompress`` off: aiohttp then leaves a compressed body as
it was sent and the receiver inflates gzip/deflate itself, never past ``max_body`` (64 KiB),
and refuses other codings (415) without reading them. A body must arrive within 10 s (408).
Payloads carry no timestamp or nonce, so keep the URL https and private and make ``on_event``
idempotent: an event may come twice.
"""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from oe_async import EventType, WebhookEvent, WebhookReceiver
from oe_async.webhooks import EventHandler

_LOGGER = logging.getLogger("webhook_receiver")

#: Where the SecretKey is read from when ``--secret-key`` is not given.
SECRET_ENV = "OE_WEBHOOK_SECRET_KEY"


async def on_event(event: WebhookEvent) -> None:
    """Turn an event into whatever your app does (a push notification, a live activity...)."""
    if event.event_type is EventType.PRINT_PROGRESS:
        _LOGGER.info("%s: %s at %.0f %%", event.printer_name, event.file_name, event.progress or 0)
    elif event.event_type.known:
        _LOGGER.info("%s: %s", event.printer_name, event.event_type.name)
    else:  # newer than this library: still delivered, with its raw fields in event.extra
        _LOGGER.info("%s: event %d", event.printer_name, int(event.event_type))


def make_app(
    secret_key: str | None,
    handler: EventHandler = on_event,
    *,
    allow_unsigned: bool = False,
) -> web.Application:
    """The aiohttp application: POST /octoeverywhere/webhook.

    ``secret_key`` is required unless ``allow_unsigned`` is True (an empty one is an error).
    """
    # Compressed bodies reach the receiver as sent: it inflates them with its own bound.
    app = web.Application(handler_args={"auto_decompress": False})
    receiver = WebhookReceiver(handler, secret_key=secret_key, allow_unsigned=allow_unsigned)
    receiver.attach(app, "/octoeverywhere/webhook")
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; a SecretKey (argument or environment) unless --allow-unsigned."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--secret-key",
        default=os.environ.get(SECRET_ENV),
        help=f"the SecretKey payloads must carry (default: ${SECRET_ENV})",
    )
    parser.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept payloads without checking SecretKey (local experiments only)",
    )
    args = parser.parse_args(argv)
    if args.allow_unsigned:
        if args.secret_key:
            parser.error(
                f"give either a SecretKey (--secret-key or ${SECRET_ENV}) or --allow-unsigned, "
                "not both"
            )
        args.secret_key = None
    elif not args.secret_key or not args.secret_key.strip():
        parser.error(
            f"a SecretKey is required: --secret-key or ${SECRET_ENV} "
            "(or --allow-unsigned for local experiments)"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = make_app(args.secret_key, allow_unsigned=args.allow_unsigned)
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
