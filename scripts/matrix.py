"""`make matrix`: the whole test suite on Python 3.11 and 3.13 x aiohttp 3.14.4 and the newest 3.x.

Each cell gets its own venv under ``.matrix/`` (kept between runs; pip only tops it up), the
package installed editable with its test extras, and aiohttp pinned to the lowest supported
release or upgraded to the newest one the index has. A Python that cannot be found (see
``scripts/find-python``) is reported as skipped. Results go to ``.reliability/matrix.json``,
each cell's pytest output to ``.reliability/matrix-<cell>.log``.

Usage: python scripts/matrix.py [--pythons 3.11 3.13]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOWEST = "3.14.4"
AIOHTTP = {"lowest": [f"aiohttp=={LOWEST}"], "newest": ["--upgrade", "aiohttp>=3.14.4,<4"]}
PIP = ["--quiet", "--disable-pip-version-check"]


def find_python(version: str) -> str | None:
    found = subprocess.run(
        [str(ROOT / "scripts" / "find-python"), version],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return found or None


def pip(python: Path, *args: str) -> None:
    """pip install quietly; its output (index warnings and all) only when it fails."""
    done = subprocess.run(
        [python, "-m", "pip", "install", *PIP, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        done.check_returncode()


def run_cell(python: str, version: str, which: str) -> dict[str, object]:
    venv = ROOT / ".matrix" / f"py{version}-aiohttp-{which}"
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip(bin_python, "-e", f"{ROOT}[test]")
    pip(bin_python, *AIOHTTP[which])
    aiohttp_version = subprocess.run(
        [bin_python, "-c", "import aiohttp; print(aiohttp.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    started = time.monotonic()
    result = subprocess.run(
        [bin_python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    log = ROOT / ".reliability" / f"matrix-py{version}-aiohttp-{which}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    summary = next(
        (
            line.strip("= ")
            for line in reversed(result.stdout.splitlines())
            if re.search(r"\d+ (passed|failed)", line)
        ),
        "no summary",
    )
    return {
        "python": version,
        "aiohttp": aiohttp_version,
        "which": which,
        "ok": result.returncode == 0,
        "summary": summary,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pythons", nargs="+", default=["3.11", "3.13"])
    args = parser.parse_args()
    cells: list[dict[str, object]] = []
    for version in args.pythons:
        python = find_python(version)
        for which in AIOHTTP:
            if python is None:
                print(f"matrix: no Python {version} found (PATH or pyenv); skipping")
                cells.append({"python": version, "which": which, "ok": None, "summary": "skipped"})
                continue
            print(f"== Python {version} x aiohttp {which} ==", flush=True)
            cell = run_cell(python, version, which)
            print(f"   aiohttp {cell['aiohttp']}: {cell['summary']} ({cell['seconds']} s)")
            cells.append(cell)
    out = ROOT / ".reliability" / "matrix.json"
    out.parent.mkdir(exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.write_text(json.dumps({"cells": cells, "when": when}, indent=2))
    failed = [c for c in cells if c["ok"] is False]
    print(f"matrix: {sum(c['ok'] is True for c in cells)} green, {len(failed)} red")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
