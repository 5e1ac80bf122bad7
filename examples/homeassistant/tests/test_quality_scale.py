"""quality_scale.yaml: every rule of Bronze to Platinum met, and every claim backed by a test or
a documentation section that exists; the rules no other test covers are checked here."""

import ast
from http import HTTPStatus
from importlib import metadata, resources
import json
from pathlib import Path
import re

import oe_async
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
import yaml

from custom_components.octoeverywhere import camera, sensor
from custom_components.octoeverywhere.coordinator import REPAIR_ISSUES
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util.package import is_installed

HERE = Path(__file__).resolve().parent.parent  # examples/homeassistant
PROJECT = HERE.parent.parent
COMPONENT = HERE / "custom_components" / "octoeverywhere"
DOCS = PROJECT / "docs" / "homeassistant.md"

#: Home Assistant's rules by tier, as hassfest lists them (script/hassfest/quality_scale.py).
RULES = {
    "bronze": [
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ],
    "gold": [
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}
TEST_REF = re.compile(r"tests/(test_\w+\.py)::(\w+)")
DOC_REF = re.compile(r"docs/homeassistant\.md#([\w-]+)")


def load_rules() -> dict[str, dict[str, str]]:
    data = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text(encoding="utf-8"))
    assert set(data) == {"rules"}
    return data["rules"]


def doc_anchors() -> set[str]:
    """GitHub's anchors for the headings of docs/homeassistant.md."""
    anchors = set()
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_rule_from_bronze_to_platinum_is_done_or_exempt() -> None:
    rules = load_rules()
    known = {rule for tier in RULES.values() for rule in tier}
    assert set(rules) == known, "quality_scale.yaml must list every rule, and only those"
    for name, rule in rules.items():
        assert set(rule) == {"status", "comment"}, name
        assert rule["status"] in {"done", "exempt"}, f"{name}: {rule['status']}"
        assert rule["comment"].strip(), f"{name} needs a comment saying why or where"


def test_every_claim_is_backed_by_a_test_or_a_doc_section() -> None:
    anchors = doc_anchors()
    tests: dict[str, set[str]] = {}
    for path in (HERE / "tests").glob("test_*.py"):
        module = ast.parse(path.read_text(encoding="utf-8"))
        tests[path.name] = {
            node.name
            for node in module.body
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        }
    for name, rule in load_rules().items():
        comment = rule["comment"]
        test_refs = TEST_REF.findall(comment)
        doc_refs = DOC_REF.findall(comment)
        if rule["status"] == "done":
            assert test_refs or doc_refs, f"{name} is done: say where it is proven"
        for file, function in test_refs:
            assert function in tests.get(file, set()), f"{name}: no test {file}::{function}"
        for anchor in doc_refs:
            assert anchor in anchors, f"{name}: docs/homeassistant.md has no #{anchor}"


@pytest.mark.parametrize("name", ["icon.png", "icon@2x.png"])
async def test_brand_images_are_served_and_fit_the_rules(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, name: str
) -> None:
    path = COMPONENT / "brand" / name
    with Image.open(path) as image:
        # The brands rules: PNG, square icons of 256 (hDPI 512) pixels, transparent, trimmed.
        assert image.format == "PNG"
        side = 512 if "@2x" in name else 256
        assert image.size == (side, side)
        assert image.mode == "RGBA"
        assert image.getbbox() == (0, 0, side, side)  # no empty margin
        assert image.getpixel((0, 0))[3] == 0  # transparent corners
    content = path.read_bytes()

    # Home Assistant serves a custom integration's own brand images before the brands CDN
    # (nothing else but 127.0.0.1 is reachable here: a CDN answer would fail the test).
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    response = await client.get(f"/api/brands/integration/octoeverywhere/{name}")
    assert response.status == HTTPStatus.OK
    assert await response.read() == content
    # Without a logo of its own, the logo is the icon (Home Assistant's fallback).
    logo = await client.get("/api/brands/integration/octoeverywhere/logo.png")
    assert logo.status == HTTPStatus.OK
    assert await logo.read() == (COMPONENT / "brand" / "icon.png").read_bytes()


def test_common_modules() -> None:
    sources = {path.name: path.read_text(encoding="utf-8") for path in COMPONENT.glob("*.py")}
    assert "class OctoEverywhereCoordinator(DataUpdateCoordinator" in sources["coordinator.py"]
    assert "class OctoEverywhereEntity(CoordinatorEntity" in sources["entity.py"]
    # Every oe_async object is built in api.py.
    built = {name for name, text in sources.items() if re.search(r"\bOctoEverywhere\(", text)}
    assert built == {"api.py"}


def test_the_manifest_pins_the_installed_library() -> None:
    manifest = json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["requirements"] == [f"oe-async=={oe_async.__version__}"]
    [requirement] = manifest["requirements"]
    assert is_installed(requirement)
    # make ha installs it as Home Assistant would (its installer runs uv), from a wheel:
    # never this checkout, never editable.
    dist = metadata.distribution("oe-async")
    assert (dist.read_text("INSTALLER") or "").strip() == "uv"
    assert "editable" not in (dist.read_text("direct_url.json") or "")
    assert not Path(oe_async.__file__).resolve().is_relative_to(PROJECT)
    # The runtime dependencies are the library's four.
    runtime = {
        re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0]
        for requirement in dist.requires or []
        if "extra ==" not in requirement
    }
    assert runtime == {"aiohttp", "attrs", "cattrs", "yarl"}


def test_the_library_is_typed() -> None:
    assert resources.files("oe_async").joinpath("py.typed").is_file()


def test_the_manifest_names_its_owners() -> None:
    manifest = json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["codeowners"]
    for owner in manifest["codeowners"]:
        assert re.fullmatch(r"@[\w-]+(/[\w-]+)?", owner), owner


def test_parallel_updates() -> None:
    # The coordinator polls; stills and streams are on demand: no platform limits its entities.
    assert sensor.PARALLEL_UPDATES == 0
    assert camera.PARALLEL_UPDATES == 0


#: Home Assistant exceptions shown to the user: each must carry a translation.
TRANSLATED = {
    "HomeAssistantError",
    "ServiceValidationError",
    "ConfigEntryError",
    "ConfigEntryAuthFailed",
    "ConfigEntryNotReady",
    "UpdateFailed",
}


def test_every_raised_home_assistant_error_is_translated() -> None:
    strings = json.loads((COMPONENT / "strings.json").read_text(encoding="utf-8"))
    exceptions = strings["exceptions"]
    found = 0
    for path in COMPONENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in TRANSLATED
            ):
                continue
            found += 1
            where = f"{path.name}:{node.lineno}"
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            assert not node.args, f"{where}: a message without translation"
            assert ast.unparse(keywords["translation_domain"]) == "DOMAIN", where
            key = keywords["translation_key"]
            if isinstance(key, ast.Constant):
                keys = [key.value]
            else:  # f"{kind}_required" for the repair issues' errors
                assert ast.unparse(key) == "f'{kind}_required'", where
                keys = [f"{kind}_required" for _, kind in REPAIR_ISSUES]
            for name in keys:
                assert name in exceptions, f"{where}: no exceptions.{name} in strings.json"
                placeholders = set(re.findall(r"{(\w+)}", exceptions[name]["message"]))
                given = keywords.get("translation_placeholders")
                named = (
                    {ast.literal_eval(k) for k in given.keys}  # type: ignore[union-attr]
                    if given is not None
                    else set()
                )
                assert placeholders == named, f"{where}: {name} needs {placeholders}"
    assert found >= 7


def test_icon_translations() -> None:
    icons = json.loads((COMPONENT / "icons.json").read_text(encoding="utf-8"))
    strings = json.loads((COMPONENT / "strings.json").read_text(encoding="utf-8"))
    assert set(icons) == {"entity"}
    job_states = {description.key: description for description in sensor.SENSORS}
    for platform, entities in icons["entity"].items():
        for key, icon in entities.items():
            assert key in strings["entity"][platform], f"{platform}.{key} has no translation"
            assert set(icon) <= {"default", "state", "range"}, key
            assert re.fullmatch(r"mdi:[a-z0-9-]+", icon["default"]), key
            for state, state_icon in icon.get("state", {}).items():
                assert re.fullmatch(r"mdi:[a-z0-9-]+", state_icon), f"{key}.{state}"
                options = job_states[key].options
                assert options is not None
                assert state in options, f"{key} has no state {state}"
    # Every state of the job gets its own icon.
    assert set(icons["entity"]["sensor"]["job_state"]["state"]) == set(
        job_states["job_state"].options or []
    )
    # The temperatures of the bed and the chamber keep their device class's icon.
    assert "bed_temperature" not in icons["entity"]["sensor"]
