"""Check the release files `make dist` built: what they hold and what they say.

    python scripts/check_dist.py DIST_DIR

The wheel: the ``oe_async`` package alone (``py.typed`` and ``oe_async.testing`` in; no tests,
examples or caches), metadata naming this version, Python >= 3.11, the MIT licence, the
``oe-async`` command, and exactly four runtime dependencies: aiohttp (>=3.14.4,<4), attrs,
cattrs and yarl (everything else only behind an extra). The sdist: the same package, the
files the test suite needs to run against an installed wheel (``make test-wheel``), and
nothing from a developer's machine (venvs, caches, the Python 3.14 root). ``twine check
--strict`` (run by make before this) checks that PyPI will render the description.
Exits 1 listing every problem found.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path, PurePosixPath

PROJECT = Path(__file__).resolve().parent.parent
NAME = "oe-async"
#: The runtime dependencies, as the wheel's metadata must state them (name -> specifier).
RUNTIME_DEPENDENCIES = {"aiohttp": "<4,>=3.14.4", "attrs": "", "cattrs": "", "yarl": ""}
EXTRAS = {"test", "cli", "docs"}
#: What the suite run against the installed wheel needs besides the package.
SDIST_NEEDS = (
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "Makefile",
    "tests/conftest.py",
    "examples/homeassistant/custom_components/octoeverywhere/manifest.json",
    "docs/homeassistant.md",
    "scripts/find-python",
)
#: Never in a release file: a developer's venvs and caches, the 3.14 root, build output.
NEVER = re.compile(
    r"(^|/)(\.venv[^/]*|\.py314root[^/]*|__pycache__|\.mypy_cache|\.ruff_cache|\.pytest_cache"
    r"|\.hypothesis|\.git|dist|build|\.reliability|\.matrix)(/|$)|\.pyc$"
)


def version() -> str:
    text = (PROJECT / "oe_async" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise SystemExit("oe_async/_version.py has no __version__")
    return match.group(1)


def requirement(line: str) -> tuple[str, str, str]:
    """(name, specifier, marker) of a ``Requires-Dist`` value, the specifier's parts sorted."""
    spec, _, marker = line.partition(";")
    match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*(?:\[[^\]]*\])?\s*(.*?)\s*", spec)
    if match is None:
        return line, "", marker.strip()
    name, specifier = match.groups()
    parts = sorted(part.strip() for part in specifier.strip("()").split(",") if part.strip())
    return name.lower().replace("_", "-"), ",".join(parts), marker.strip()


def check_metadata(meta: Message, expected_version: str, problems: list[str]) -> None:
    def want(field: str, value: str) -> None:
        if meta.get(field) != value:
            problems.append(f"wheel METADATA {field}: {meta.get(field)!r}, expected {value!r}")

    want("Name", NAME)
    want("Version", expected_version)
    want("Requires-Python", ">=3.11")
    want("License-Expression", "MIT")
    want("Description-Content-Type", "text/markdown")
    if "LICENSE" not in meta.get_all("License-File", []):
        problems.append("wheel METADATA names no License-File LICENSE")
    if "Typing :: Typed" not in meta.get_all("Classifier", []):
        problems.append("wheel METADATA lacks the 'Typing :: Typed' classifier")
    if set(meta.get_all("Provides-Extra", [])) != EXTRAS:
        problems.append(f"wheel extras: {meta.get_all('Provides-Extra', [])}, expected {EXTRAS}")
    runtime: dict[str, str] = {}
    for line in meta.get_all("Requires-Dist", []):
        name, specifier, marker = requirement(line)
        if "extra ==" not in marker:
            runtime[name] = specifier
    if runtime != RUNTIME_DEPENDENCIES:
        problems.append(f"runtime dependencies {runtime}, expected {RUNTIME_DEPENDENCIES}")
    if not str(meta.get_payload() or "").strip():
        problems.append("wheel METADATA has no description (README.md)")


def check_wheel(wheel: Path, expected_version: str, problems: list[str]) -> set[str]:
    """Check the wheel; return the package files it holds."""
    dist_info = f"oe_async-{expected_version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            archive.read(f"{dist_info}/METADATA")
        )
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        wheel_info = archive.read(f"{dist_info}/WHEEL").decode()
    for name in names:
        top = PurePosixPath(name).parts[0]
        if top not in {"oe_async", dist_info}:
            problems.append(f"wheel holds {name}: only oe_async/ and {dist_info}/ belong there")
        if NEVER.search(name):
            problems.append(f"wheel holds {name}")
    package = {name for name in names if name.startswith("oe_async/")}
    needed = ("oe_async/__init__.py", "oe_async/py.typed", "oe_async/testing/__init__.py")
    problems.extend(f"wheel lacks {name}" for name in needed if name not in package)
    if f"{dist_info}/licenses/LICENSE" not in names:
        problems.append(f"wheel lacks {dist_info}/licenses/LICENSE")
    if not re.search(r"^oe-async = oe_async\.cli:main$", entry_points, re.MULTILINE):
        problems.append("wheel has no 'oe-async = oe_async.cli:main' console script")
    if "Tag: py3-none-any" not in wheel_info:
        problems.append("the wheel is not pure Python (py3-none-any)")
    check_metadata(meta, expected_version, problems)
    return package


def check_sdist(sdist: Path, expected_version: str, problems: list[str]) -> set[str]:
    """Check the sdist; return the package files it holds."""
    root = f"oe_async-{expected_version}"
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
        pkg_info = archive.extractfile(f"{root}/PKG-INFO")
        assert pkg_info is not None
        meta = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(pkg_info.read())
    relative = {name.removeprefix(f"{root}/") for name in members if name.startswith(f"{root}/")}
    if len(relative) != len(members):
        problems.append(f"sdist holds files outside {root}/")
    problems.extend(f"sdist holds {name}" for name in sorted(relative) if NEVER.search(name))
    problems.extend(f"sdist lacks {name}" for name in SDIST_NEEDS if name not in relative)
    if meta.get("Version") != expected_version:
        problems.append(f"sdist PKG-INFO Version {meta.get('Version')!r}")
    return {name for name in relative if name.startswith("oe_async/") and not name.endswith("/")}


def main() -> int:
    dist = Path(sys.argv[1] if len(sys.argv) > 1 else "dist")
    expected = version()
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    want_wheel = f"oe_async-{expected}-py3-none-any.whl"
    want_sdist = f"oe_async-{expected}.tar.gz"
    if [w.name for w in wheels] != [want_wheel] or [s.name for s in sdists] != [want_sdist]:
        print(
            f"check_dist: {dist} must hold exactly {want_wheel} and {want_sdist}; it holds "
            f"{[p.name for p in wheels + sdists]}",
            file=sys.stderr,
        )
        return 1
    problems: list[str] = []
    in_wheel = check_wheel(wheels[0], expected, problems)
    in_sdist = check_sdist(sdists[0], expected, problems)
    if in_wheel != in_sdist:
        problems.append(
            "the wheel and the sdist hold different package files: "
            f"only in the wheel {sorted(in_wheel - in_sdist)}, "
            f"only in the sdist {sorted(in_sdist - in_wheel)}"
        )
    if problems:
        print("check_dist: " + "\n  ".join(["problems:", *problems]), file=sys.stderr)
        return 1
    print(
        f"check_dist: {want_wheel} ({len(in_wheel)} package files, py.typed, 4 runtime "
        f"dependencies) and {want_sdist} are as they should be"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
