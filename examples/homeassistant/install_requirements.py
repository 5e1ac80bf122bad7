"""Install the integration's manifest requirements as Home Assistant does when it loads it.

    python install_requirements.py   (in Home Assistant's venv; run-tests calls it)

Home Assistant's own installer (``homeassistant.util.package.install_package``: uv, Home
Assistant's package constraints) installs each requirement of ``manifest.json``; ``make ha``
sets ``UV_FIND_LINKS`` to a folder holding the wheel built from this checkout, so
``oe-async==X`` comes from that wheel (a version the checkout does not have fails here).
"""

import json
import os
from pathlib import Path
import sys

from homeassistant.requirements import pip_kwargs
from homeassistant.util.package import install_package, is_installed

MANIFEST = (
    Path(__file__).resolve().parent / "custom_components" / "octoeverywhere" / "manifest.json"
)


def main() -> int:
    """Install every requirement; 1 when one fails or is not satisfied afterwards."""
    constraints = pip_kwargs(None)["constraints"]
    for requirement in json.loads(MANIFEST.read_text(encoding="utf-8"))["requirements"]:
        if not install_package(requirement, constraints=constraints):
            print(
                f"ha: Home Assistant's installer could not install {requirement}", file=sys.stderr
            )
            return 1
        if not is_installed(requirement):
            print(f"ha: {requirement} is not satisfied after installing it", file=sys.stderr)
            return 1
        where = os.environ.get("UV_FIND_LINKS", "the package index")
        print(f"ha: installed {requirement} from {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
