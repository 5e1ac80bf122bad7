"""Cameras: each webcam the printer's OctoEverywhere plugin lists, stills and MJPEG."""

from typing import override

from aiohttp import web
from oe_async import Frame, OctoEverywhereError

from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import error_message
from .const import DOMAIN, LOGGER, SNAPSHOT_TIMEOUT
from .coordinator import OctoEverywhereConfigEntry, OctoEverywhereCoordinator
from .entity import OctoEverywhereEntity, async_follow_webcams

# Stills and streams are fetched on demand, not by the coordinator; no limit needed.
PARALLEL_UPDATES = 0

#: The multipart boundary of the re-served stream (the parts carry ``--frameboundary``).
BOUNDARY = "frameboundary"
#: Every viewer of a camera shares one OctoEverywhere stream, kept this long after the last
#: viewer left so that reopening the dashboard does not reopen the webcam.
STREAM_LINGER = 5.0


def _part_head(content_type: str) -> bytes:
    """A boundary line and part headers (no Content-Length: browsers look for the boundary)."""
    return f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode()


def _picture(frame: Frame) -> bytes:
    """A JPEG, then the next part's boundary and headers.

    Browsers show a part of multipart/x-mixed-replace once the next part's headers arrive:
    sent right after the picture, they show every picture as soon as it arrives rather than
    one frame late (seconds, for a slow camera).
    """
    return frame.data + b"\r\n" + _part_head(frame.content_type)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OctoEverywhereConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One camera per enabled webcam the printer lists, following the list as it changes."""
    coordinator = entry.runtime_data
    async_follow_webcams(
        hass,
        entry,
        async_add_entities,
        lambda index, name: OctoEverywhereCamera(coordinator, index, name),
    )


class OctoEverywhereCamera(OctoEverywhereEntity, Camera):
    """A printer webcam through OctoEverywhere's printer-agnostic webcam API."""

    _attr_brand = "OctoEverywhere"

    def __init__(
        self, coordinator: OctoEverywhereCoordinator, index: int, name: str | None
    ) -> None:
        """Camera ``index`` of the plugin's webcam list; named after the webcam."""
        super().__init__(coordinator, f"webcam_{index}")
        Camera.__init__(self)
        self.content_type = "image/jpeg"
        self._index = index
        # The translation key gives every camera the integration's icon; a webcam the printer
        # names keeps its name (``_attr_name`` wins over the translated "Webcam N").
        self._attr_translation_key = "webcam"
        self._attr_translation_placeholders = {"index": str(index + 1)}
        if name:
            self._attr_name = name

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """A snapshot from the webcam (JPEG)."""
        try:
            frame = await self.coordinator.printer.webcam.snapshot(
                index=self._index, timeout=SNAPSHOT_TIMEOUT
            )
        except OctoEverywhereError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="webcam_failed",
                translation_placeholders={"error": error_message(err)},
            ) from err
        return frame.data

    @override
    async def handle_async_mjpeg_stream(self, request: web.Request) -> web.StreamResponse | None:
        """Re-serve the webcam's frames as multipart/x-mixed-replace.

        Every viewer of this camera shares one OctoEverywhere stream (``shared=True``): 20
        open dashboards cost one webcam stream, and a slow viewer skips frames without
        slowing the others. The relay ends each stream after the account's stream limit;
        ``reconnect`` renews it, so viewers see one endless stream. The stream closes
        ``STREAM_LINGER`` seconds after the last viewer left, and at once when the entry
        unloads (closing the client ends it).
        """
        async with self.coordinator.printer.webcam.frames(
            index=self._index, reconnect=True, shared=True, linger=STREAM_LINGER
        ) as frames:
            try:
                first = await anext(frames)
            except StopAsyncIteration:
                return None  # the camera sent nothing: HA answers 502
            except OctoEverywhereError as err:
                LOGGER.debug("Webcam %s stream failed: %s", self.entity_id, error_message(err))
                return None
            response = web.StreamResponse()
            response.content_type = f"multipart/x-mixed-replace;boundary={BOUNDARY}"
            await response.prepare(request)
            try:
                await response.write(_part_head(first.content_type) + _picture(first))
                async for frame in frames:
                    await response.write(_picture(frame))
            except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
                pass  # the viewer left
            except OctoEverywhereError as err:
                LOGGER.debug("Webcam %s stream ended: %s", self.entity_id, error_message(err))
            return response
