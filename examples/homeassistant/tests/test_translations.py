"""strings.json (what Home Assistant core reviews) and translations/en.json (what a custom
integration loads) say the same thing."""

import json
from pathlib import Path

COMPONENT = Path(__file__).resolve().parent.parent / "custom_components" / "octoeverywhere"


def test_en_json_is_strings_json() -> None:
    strings = json.loads((COMPONENT / "strings.json").read_text(encoding="utf-8"))
    english = json.loads((COMPONENT / "translations" / "en.json").read_text(encoding="utf-8"))
    assert english == strings
    # Custom integrations get no [%key:...%] substitution: every string is literal.
    assert "[%key:" not in json.dumps(strings)
