"""Generate the simulator's webcam frames (dev-only; needs Pillow, which is not a dependency).

    python -m venv /tmp/pil && /tmp/pil/bin/pip install pillow
    /tmp/pil/bin/python scripts/make_test_jpegs.py

Writes oe_async/testing/jpegs/frame_00.jpg ... frame_07.jpg (320x240, a printer bed with a
moving nozzle and the frame number) and large.jpg (about 100 KB, for benchmarks).
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "oe_async" / "testing" / "jpegs"


def frame(number: int) -> Image.Image:
    image = Image.new("RGB", (320, 240), (34, 38, 46))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 150, 280, 210), fill=(70, 70, 80))  # the bed
    for layer in range(number + 1):
        draw.rectangle((130, 146 - 6 * layer, 190, 150 - 6 * layer), fill=(230, 120, 40))
    x = 130 + (number * 9) % 60
    draw.polygon([(x - 8, 40), (x + 8, 40), (x, 60)], fill=(200, 200, 210))  # the nozzle
    draw.text((10, 10), f"oe_async simulator  frame {number}", fill=(255, 255, 255))
    return image


def large() -> Image.Image:
    rng = random.Random(42)
    image = Image.new("RGB", (640, 480))
    image.putdata(
        [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(640 * 480)]
    )
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for number in range(8):
        frame(number).save(OUT / f"frame_{number:02d}.jpg", quality=80)
    image = large()
    for quality in range(90, 10, -2):  # aim for roughly 100 KB
        image.save(OUT / "large.jpg", quality=quality)
        if (OUT / "large.jpg").stat().st_size <= 105_000:
            break
    for path in sorted(OUT.glob("*.jpg")):
        print(path.name, path.stat().st_size)


if __name__ == "__main__":
    main()
