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


def _part(frame: Frame) -> bytes:
    """One multipart/x-mixed-replace part, as Home Assistant's own MJPEG streams write it."""
    head = (
        f"--{BOUNDARY}\r\n"
        f"Content-Type: {frame.content_type}\r\n"
        f"Content-Length: {len(frame.data)}\r\n\r\n"
    )
    return head.encode() + frame.data + b"\r\n"


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
        if name:
            self._attr_name = name
        else:
            self._attr_translation_key = "webcam"
            self._attr_translation_placeholders = {"index": str(index + 1)}

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

        The relay ends each stream after the account's stream limit; ``reconnect`` renews
        it, so a viewer sees one endless stream. The OctoEverywhere stream is released
        when the viewer leaves, and when the entry unloads (closing the client ends it).
        """
        async with self.coordinator.printer.webcam.frames(
            index=self._index, reconnect=True
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
                # Browsers show frame n-1 of a multipart stream: send the first one twice,
                # as Home Assistant's own still streams do.
                await response.write(_part(first))
                await response.write(_part(first))
                async for frame in frames:
                    await response.write(_part(frame))
            except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
                pass  # the viewer left
            except OctoEverywhereError as err:
                LOGGER.debug("Webcam %s stream ended: %s", self.entity_id, error_message(err))
            return response
