"""The simulator's App API origin: Info and Live Links (``AppToken`` authorised)."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from aiohttp import web

from ._core import relay_status, simulator_of

_ALNUM = string.ascii_letters + string.digits


async def _authorise(
    request: web.Request, body: dict[str, Any] | None = None
) -> web.Response | None:
    """400 without a token (header or body), then the connection's own state."""
    sim = simulator_of(request)
    token = request.headers.get("AppToken")
    if token is None and body is not None:
        token = body.get("AppToken")
    if not token:
        return web.json_response({"Error": "AppToken is required"}, status=400)
    if token != sim.app_token or sim.state.connection == "not_found":
        return relay_status(603)
    if sim.state.connection == "revoked":
        return relay_status(604)
    if not sim.state.supporter:
        return relay_status(605)
    return None


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        return web.json_response({"Error": "Malformed JSON body"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"Error": "Expected a JSON object"}, status=400)
    return body


async def info(request: web.Request) -> web.StreamResponse:
    """``GET /api/appconnection/info``."""
    refusal = await _authorise(request)
    if refusal is not None:
        return refusal
    state = simulator_of(request).state
    limits = state.limits
    return web.json_response(
        {
            "PrinterName": state.printer_name,
            "PrinterLocalIp": state.local_ip,
            "IsOnline": state.printer_online,
            "LastDisconnectTimeUtc": state.last_disconnect_time,
            "LastConnectionTimeUtc": state.last_connection_time,
            "UserFacingPrinterUrl": "https://octoeverywhere.com/printer/simulated",
            "PrinterLimits": {
                "MaxDownloadFileSizeBytes": limits.max_download_bytes,
                "MaxUploadFileSizeBytes": limits.max_upload_bytes,
                "MaxSingleWebcamStreamLengthSeconds": limits.max_webcam_stream_seconds,
            },
            "SomeFutureField": {"Ignored": True},
        }
    )


async def create_live_link(request: web.Request) -> web.StreamResponse:
    """``POST /api/live/createfromappconnection``."""
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    refusal = await _authorise(request, body)
    if refusal is not None:
        return refusal
    hours = body.get("ExpirationHours", 24)
    follow = body.get("EndWhenCurrentPrintIsComplete", False)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 1 <= hours <= 17520:
        return web.json_response({"Error": "ExpirationHours must be 1-17520"}, status=400)
    if not isinstance(follow, bool):
        return web.json_response(
            {"Error": "EndWhenCurrentPrintIsComplete must be a bool"}, status=400
        )
    if follow and not simulator_of(request).state.active_print:
        return relay_status(613)
    live_id = "".join(secrets.choice(_ALNUM) for _ in range(12))
    return web.json_response(
        {
            "LiveId": live_id,
            "Url": f"https://octoeverywhere.com/live/{live_id}",
            "ShortUrl": f"https://oe.ink/l/{live_id}",
        }
    )


async def gadget(request: web.Request) -> web.StreamResponse:
    """``POST /api/gadget/GetStatusFromAppConnection``."""
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    refusal = await _authorise(request, body)
    if refusal is not None:
        return refusal
    settings = simulator_of(request).state.gadget
    return web.json_response(
        {
            "State": settings.state,
            "Status": settings.status,
            "StatusColor": settings.status_color,
            "Rating": settings.rating,
        }
    )


async def set_webhook(request: web.Request) -> web.StreamResponse:
    """``POST /api/appconnection/SetNotificationWebhook``."""
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    refusal = await _authorise(request, body)
    if refusal is not None:
        return refusal
    url = body.get("WebhookUrl")
    types = body.get("InclusiveEventTypesFilter") or []
    if not isinstance(url, str) or not url.startswith(
        ("https://", "http://127.", "http://localhost")
    ):
        return web.json_response({"Error": "WebhookUrl must be an https URL"}, status=400)
    if not isinstance(types, list) or not all(isinstance(t, int) for t in types):
        return web.json_response({"Error": "InclusiveEventTypesFilter must be ints"}, status=400)
    settings = simulator_of(request).state.webhook
    settings.url = url
    settings.event_types = list(types)
    return web.json_response({})


async def delete_webhook(request: web.Request) -> web.StreamResponse:
    """``POST /api/appconnection/DeleteNotificationWebhook``."""
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    refusal = await _authorise(request, body)
    if refusal is not None:
        return refusal
    settings = simulator_of(request).state.webhook
    settings.url = None
    settings.event_types = []
    return web.json_response({})


async def test_webhook(request: web.Request) -> web.StreamResponse:
    """``GET /api/appconnection/TestWebhook``: deliver a TestNotification now."""
    refusal = await _authorise(request)
    if refusal is not None:
        return refusal
    sim = simulator_of(request)
    if sim.state.webhook.url is None:
        return web.json_response({"Error": "No webhook is set"}, status=400)
    status = await sim.deliver_webhook(16)
    return web.json_response({"StatusCode": status if status is not None else 0})


def setup(app: web.Application) -> None:
    """Add the App API routes."""
    app.router.add_get("/api/appconnection/info", info)
    app.router.add_post("/api/live/createfromappconnection", create_live_link)
    app.router.add_post("/api/gadget/GetStatusFromAppConnection", gadget)
    app.router.add_post("/api/appconnection/SetNotificationWebhook", set_webhook)
    app.router.add_post("/api/appconnection/DeleteNotificationWebhook", delete_webhook)
    app.router.add_get("/api/appconnection/TestWebhook", test_webhook)
