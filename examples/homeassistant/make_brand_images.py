"""Draw the integration's stand-in brand icon: custom_components/octoeverywhere/brand/.

    python make_brand_images.py   (any Python with Pillow, e.g. Home Assistant's venv)

Home Assistant 2026.3 and later serve a custom integration's own ``brand/`` images (local ones
win over the brands CDN). These are a neutral stand-in drawn here (a print nozzle laying three
layers), not OctoEverywhere's artwork, which is OctoEverywhere's to license: ``icon.png``
(256 x 256) and ``icon@2x.png`` (512 x 512), square, transparent, trimmed; Home Assistant falls
back to the icon where a logo is asked for. tests/test_quality_scale.py checks them.
"""

from pathlib import Path

from PIL import Image, ImageDraw

BRAND = Path(__file__).resolve().parent / "custom_components" / "octoeverywhere" / "brand"
#: Drawn this many times larger, then scaled down: smooth edges without an antialiasing API.
SUPERSAMPLE = 4
BACKGROUND = (38, 70, 83, 255)  # deep slate
FOREGROUND = (255, 255, 255, 255)
ACCENT = (244, 162, 97, 255)  # warm orange: the hot filament


def draw(size: int) -> Image.Image:
    """The icon at ``size`` x ``size`` pixels."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (round(x0 * big), round(y0 * big), round(x1 * big), round(y1 * big))

    pen.rounded_rectangle(box(0, 0, 1, 1), radius=round(0.22 * big), fill=BACKGROUND)
    # The nozzle: a heater block, a cone and its tip.
    pen.rounded_rectangle(box(0.34, 0.16, 0.66, 0.34), radius=round(0.03 * big), fill=FOREGROUND)
    pen.polygon(
        [
            (round(0.40 * big), round(0.34 * big)),
            (round(0.60 * big), round(0.34 * big)),
            (round(0.53 * big), round(0.47 * big)),
            (round(0.47 * big), round(0.47 * big)),
        ],
        fill=FOREGROUND,
    )
    # The filament coming out, and three printed layers, the top one still hot.
    pen.rectangle(box(0.485, 0.47, 0.515, 0.58), fill=ACCENT)
    pen.rounded_rectangle(box(0.22, 0.58, 0.78, 0.64), radius=round(0.03 * big), fill=ACCENT)
    pen.rounded_rectangle(box(0.22, 0.68, 0.78, 0.74), radius=round(0.03 * big), fill=FOREGROUND)
    pen.rounded_rectangle(box(0.22, 0.78, 0.78, 0.84), radius=round(0.03 * big), fill=FOREGROUND)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    """Write icon.png and icon@2x.png."""
    BRAND.mkdir(exist_ok=True)
    draw(256).save(BRAND / "icon.png", optimize=True)
    draw(512).save(BRAND / "icon@2x.png", optimize=True)
    print(f"wrote {BRAND}/icon.png and icon@2x.png")


if __name__ == "__main__":
    main()
