"""Profiles YAML: validation with line numbers, defaults, the editor schema, `profiles check`."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.errors import ProfileError
from bot.profiles import json_schema, json_schema_text, parse_profiles

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

GOOD = """\
defaults:
  timezone: Europe/Berlin
  send_at: "06:30"
  max_papers: 7
subscribers:
  - email: ada@example.org
    interests:
      keywords: ["mixture of experts"]
  - email: grace@example.org
    timezone: America/New_York
    send_at: 07:15
    frequency: weekly:mon
    max_papers: 3
    alerts:
      - authors: ["Noam Shazeer"]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        parse_profiles(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def test_defaults_apply_and_subscribers_override() -> None:
    ada, grace = parse_profiles(GOOD, "p.yaml").subscribers
    assert (ada.timezone, ada.send_at, ada.max_papers) == ("Europe/Berlin", time(6, 30), 7)
    assert (grace.timezone, grace.send_at, grace.max_papers) == ("America/New_York", time(7, 15), 3)
    assert grace.frequency == "weekly:mon" and grace.alerts[0].authors == ["Noam Shazeer"]


def test_every_problem_is_reported_with_line_subscriber_and_field() -> None:
    text = GOOD.replace("America/New_York", "Mars/Olympus").replace("weekly:mon", "hourly")
    text = text.replace("    interests:\n      keywords", "    interests:\n      kewords")
    found = problems_of(text)
    assert (
        "p.yaml:8: subscriber ada@example.org: field 'interests.kewords': unknown key" in found[0]
    )
    assert "did you mean 'keywords'" in found[0]
    assert found[1].startswith("p.yaml:10: subscriber grace@example.org: field 'timezone'")
    assert "Mars/Olympus" in found[1]
    assert found[2].startswith("p.yaml:12: subscriber grace@example.org: field 'frequency'")
    assert len(found) == 3


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("ada@example.org", "ada-at-example.org"), "p.yaml:6: subscriber ada-at-example.org: field 'email'"),
        (('"06:30"', '"24:10"'), "p.yaml:6: subscriber ada@example.org: field 'send_at'"),
        (("max_papers: 3", "max_papers: 0"), "p.yaml:13: subscriber grace@example.org: field 'max_papers'"),
        (("grace@example.org", "ADA@example.org"), "p.yaml:9: subscriber ada@example.org: field 'email': duplicate subscriber (first at line 6)"),
        (("  max_papers: 7\n", "  max_papers: 7\n  colour: blue\n"), "p.yaml:5: field 'defaults.colour': unknown key"),
        (("      - authors:", "      - name: x\n        authors:"), None),
        (("    alerts:\n      - authors: [\"Noam Shazeer\"]", "    alerts:\n      - name: empty"), "field 'alerts.0': an alert needs at least one"),
    ],
)  # fmt: skip
def test_single_problems(edit: tuple[str, str], expected: str | None) -> None:
    text = GOOD.replace(*edit)
    if expected is None:
        parse_profiles(text, "p.yaml")
        return
    found = problems_of(text)
    assert any(expected in p for p in found), found


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems_of("subscribers:\n  - email: a@example.org\n   name: x\n")
    assert found[0].startswith("p.yaml:3: not valid YAML")


def test_duplicate_yaml_keys_are_rejected() -> None:
    found = problems_of(
        GOOD.replace("    max_papers: 3\n", "    max_papers: 3\n    max_papers: 4\n")
    )
    assert found == ["p.yaml:14: field 'max_papers': duplicate key"]


@pytest.mark.parametrize("text", ["", "- just a list", "subscribers: nobody"])
def test_wrong_shapes(text: str) -> None:
    assert problems_of(text)


def test_header_injection_in_name_is_rejected() -> None:
    found = problems_of(
        GOOD.replace(
            "  - email: ada@example.org\n",
            '  - email: ada@example.org\n    name: "Ada\\r\\nBcc: x@evil.test"\n',
        )
    )
    assert "field 'name': must be a single line" in found[0]


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "config" / "profiles.schema.json").read_text()
    assert committed == json_schema_text(), (
        "run: paperbot profiles schema > config/profiles.schema.json"
    )


def test_schema_describes_the_example() -> None:
    schema = json_schema()
    assert schema["required"] == ["subscribers"]
    subscriber = schema["$defs"]["Subscriber"]
    assert subscriber["additionalProperties"] is False
    assert {"email", "timezone", "send_at", "interests", "alerts"} <= set(subscriber["properties"])
    json.dumps(schema)


def test_example_profiles_are_valid() -> None:
    result = runner.invoke(
        app, ["profiles", "check", str(ROOT / "config" / "profiles.example.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "OK, 3 subscribers" in result.output


def test_profiles_check_exit_2_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("America/New_York", "Nowhere/Land"))
    result = runner.invoke(app, ["profiles", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:10: subscriber grace@example.org: field 'timezone'" in result.output


def test_profiles_check_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profiles", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output
