"""Profiles YAML: validation with line numbers, defaults, the editor schema, `profiles check`."""

from __future__ import annotations

import gc
import json
import re
import threading
from datetime import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import profiles
from bot.cli import app
from bot.errors import ProfileError
from bot.models import Defaults, Subscriber
from bot.profiles import json_schema, json_schema_text, parse_profiles
from bot.profiles.loading import FastLoader, Loader, parse_yaml

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
        (('"06:30"', '"24:10"'), "p.yaml:3: defaults: field 'send_at': '24:10' is not a time of day"),
        (("max_papers: 3", "max_papers: 0"), "p.yaml:13: subscriber grace@example.org: field 'max_papers'"),
        (("grace@example.org", "ADA@example.org"), "p.yaml:9: subscriber ada@example.org: field 'email': duplicate subscriber (first at line 6)"),
        (("  max_papers: 7\n", "  max_papers: 7\n  colour: blue\n"), "p.yaml:5: defaults: field 'colour': unknown key"),
        (("      - authors:", "      - name: x\n        authors:"), None),
        (("    alerts:\n      - authors: [\"Noam Shazeer\"]", "    alerts:\n      - name: empty"), "field 'alerts.0': an alert needs at least one"),
        (('"06:30"', '"6:30"'), "field 'send_at': '6:30' is not a time of day \"HH:MM\" (00:00 to 23:59): write \"06:30\""),
        (('"06:30"', '"06:45 am"'), "field 'send_at': '06:45 am' is not a time of day \"HH:MM\" (00:00 to 23:59): write \"06:45\""),
        (('"06:30"', '"6:45pm"'), "(00:00 to 23:59): write \"18:45\""),
        (('"06:30"', '"12:10 a.m."'), "(00:00 to 23:59): write \"00:10\""),
        (('"06:30"', '"18.30"'), "'18.30' is not a time of day \"HH:MM\" (00:00 to 23:59): write \"18:30\""),
        (('"06:30"', '"7:30:15"'), "(00:00 to 23:59): write \"07:30:15\""),
        (("America/New_York", "america/new_york"), "unknown time zone 'america/new_york' (did you mean America/New_York?)"),
        (("America/New_York", "Mars/Olympus"), "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)"),
        (("weekly:mon", "Weekly:Monday"), "'Weekly:Monday' is not daily, weekdays or weekly:mon … weekly:sun (did you mean weekly:mon?)"),
        (("weekly:mon", "weekday"), "'weekday' is not daily, weekdays or weekly:mon … weekly:sun (did you mean weekdays?)"),
        (("weekly:mon", "week days"), "(did you mean weekdays?)"),
        (("weekly:mon", "mon"), "'mon' is not daily, weekdays or weekly:mon … weekly:sun (did you mean weekly:mon?)"),
        (("weekly:mon", "Thursdays"), "(did you mean weekly:thu?)"),
        (("America/New_York", "America/NewYork"), "unknown time zone 'America/NewYork' (did you mean America/New_York?)"),
        (("America/New_York", "london"), "unknown time zone 'london' (did you mean Europe/London?)"),
        (("America/New_York", "Europe/Londn"), "(did you mean Europe/London?)"),
        (("America/New_York", "GMT+1"), "unknown time zone 'GMT+1' (use an IANA name such as Europe/Berlin)"),
        (("America/New_York", "America"), "unknown time zone 'America' ("),
        (("- authors:", "- phrases:"), "p.yaml:15: subscriber grace@example.org: field 'alerts.0.phrases': unknown key (did you mean 'keywords'?)"),
        (("- authors:", "- authors"), "p.yaml:15: subscriber grace@example.org: field 'alerts.0': expected settings indented below 'alerts:', one per line: add ':' after 'authors'"),
    ],
)  # fmt: skip
def test_single_problems(edit: tuple[str, str], expected: str | None) -> None:
    text = GOOD.replace(*edit)
    if expected is None:  # a named alert rule
        (rule,) = parse_profiles(text, "p.yaml").subscribers[1].alerts
        assert (rule.name, rule.authors) == ("x", ["Noam Shazeer"])
        return
    found = problems_of(text)
    assert any(expected in p for p in found), found


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems_of("subscribers:\n  - email: a@example.org\n   name: x\n")
    assert found[0].startswith("p.yaml:3:4: subscriber a@example.org: not valid YAML")


def test_duplicate_yaml_keys_are_rejected() -> None:
    found = problems_of(
        GOOD.replace("    max_papers: 3\n", "    max_papers: 3\n    max_papers: 4\n")
    )
    assert found == [
        "p.yaml:14: subscriber grace@example.org: field 'max_papers': "
        "duplicate key (first at line 13): keep only one"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml: the file is empty: expected a mapping with 'subscribers:' (a list, each entry starting '- email:')"),
        ("- just a list", "p.yaml:1: expected a mapping with 'subscribers:' (a list, each entry starting '- email:')"),
        ("subscribers: nobody", "p.yaml:1: field 'subscribers': expected a list of subscribers, each entry starting '- email:'"),
    ],
)  # fmt: skip
def test_wrong_shapes(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


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


@pytest.mark.parametrize(
    "value",
    ["08:00", "23:59", "07:30:15", "00:00:00", "24:00", "8:00", "08:60", "08:00:60", "0800"],
)
def test_the_schema_and_the_check_agree_on_send_at(value: str) -> None:
    pattern = json_schema()["$defs"]["Subscriber"]["properties"]["send_at"]["pattern"]
    text = f'subscribers:\n  - email: ada@example.org\n    send_at: "{value}"\n'
    try:
        parse_profiles(text, "p.yaml")
    except ProfileError:
        accepted = False
    else:
        accepted = True
    assert (re.search(pattern, value) is not None) == accepted


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


@pytest.mark.parametrize("text", ["", "# all subscribers left\n"])
def test_an_empty_file_says_so(text: str) -> None:
    assert problems_of(text) == [
        "p.yaml: the file is empty: expected a mapping with 'subscribers:' (a list, each entry "
        "starting '- email:')"
    ]


def test_an_empty_list_is_accepted_with_a_warning() -> None:
    profiles = parse_profiles("defaults:\n  timezone: UTC\nsubscribers: []\n", "p.yaml")
    assert profiles.subscribers == ()
    assert [str(w) for w in profiles.warnings] == [
        "p.yaml:3: field 'subscribers': the list is empty: nobody gets mail (every subscriber "
        "stored is deactivated)"
    ]


def test_profiles_check_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profiles", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output


@pytest.mark.parametrize(
    "command", [["profiles", "check"], ["send"], ["preview", "ada@example.org"], ["run"]]
)
def test_a_missing_configured_file_says_how_to_start_one(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """The file PAPERBOT_PROFILES names (config/profiles.yaml unless set) is missing on a first
    try: the error says which setting names it and where to start; a file named on the command
    line is only said to be missing."""
    monkeypatch.delenv("PAPERBOT_PROFILES")
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert result.output.splitlines()[1] == (
        "  config/profiles.yaml: cannot read: No such file or directory (the subscribers file "
        "PAPERBOT_PROFILES names: copy config/profiles.example.yaml there and edit it, or set "
        "PAPERBOT_PROFILES to your file)"
    )
    named = runner.invoke(app, ["profiles", "check", str(tmp_path / "nope.yaml")])
    assert named.output.splitlines()[1].endswith(
        "nope.yaml: cannot read: No such file or directory"
    )


def test_a_character_yaml_refuses_is_located() -> None:
    text = "subscribers:\n  - email: ada@example.org\n    name: Ada\x01Lovelace\n"
    assert problems_of(text) == [
        "p.yaml:3:14: subscriber ada@example.org: not valid YAML: character U+0001 is not "
        "allowed in YAML text"
    ]


def test_profiles_check_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("subscribers:\n  - email: ada@example.org\n    name: René\n".encode("latin-1"))
    result = runner.invoke(app, ["profiles", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3: not UTF-8 text (byte 0xe9): save the file as UTF-8" in result.output


# A fuller file, as admins write it: comments on top, a blank line between subscribers.
TEAM = """\
# Subscribers of the reading group.
defaults:
  timezone: UTC
  send_at: "08:00"
  max_papers: 10

subscribers:
  - email: ada@example.org
    name: Ada Lovelace
    timezone: Europe/London
    interests:
      keywords: ["mixture of experts", "expert routing"]
      categories: ["cs.LG", "cs.CL"]

  - email: grace@example.org
    name: Grace Hopper
    timezone: America/New_York
    frequency: weekdays
    max_papers: 5
    interests:
      keywords: ["diffusion model", "flow matching"]
      description: Generative modelling with diffusion and flow matching.
"""


def test_libyaml_and_the_pure_parser_read_the_same() -> None:
    """Files are read with libyaml when PyYAML has it; the pure parser words syntax errors."""
    text = TEAM + '    send_at: "07:30"\n    alerts: [{name: late, authors: ["Ada"]}]\n'
    fast, pure = parse_yaml(text, FastLoader), parse_yaml(text, Loader)
    assert fast[1] == pure[1] and fast[1]["subscribers"][1]["send_at"] == "07:30"
    assert [n.start_mark.line for n in fast[0].value[1][1].value] == [
        n.start_mark.line for n in pure[0].value[1][1].value
    ]


@pytest.mark.parametrize(
    ("value", "said"),
    [("!!timestamp never", "cannot read 'never' as timestamp"),
     ("!!int many", "cannot read 'many' as int"),
     ("!!float 1,5", "cannot read '1,5' as float"),
     ("!!bool maybe", "cannot read 'maybe' as bool"),
     ("!!int", "cannot read '' as int"),
     ("!!float ''", "cannot read '' as float")],
)  # fmt: skip
def test_a_value_its_tag_cannot_be_built_from_is_a_problem_at_its_line(
    value: str, said: str
) -> None:
    text = f"subscribers:\n  - email: ada@example.org\n    name: {value}\n"
    with pytest.raises(ProfileError) as caught:
        parse_profiles(text + "    interests:\n      keywords: [x]\n", "p.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.subscriber) == (3, "ada@example.org")
    assert problem.message == f"not valid YAML: {said}"


def test_team_fixture_is_valid() -> None:
    profiles = parse_profiles(TEAM, "team.yaml")
    assert [s.email for s in profiles.subscribers] == ["ada@example.org", "grace@example.org"]
    assert profiles.warnings == ()


def test_defaults_block_errors_point_at_the_defaults_line() -> None:
    found = problems_of(TEAM.replace("  max_papers: 10\n", "  max_papers: 500\n"))
    assert found == ["p.yaml:5: defaults: field 'max_papers': must be at most 100 (found 500)"]


def test_defaults_are_validated_even_when_every_subscriber_overrides_them() -> None:
    found = problems_of(TEAM.replace("  timezone: UTC\n", "  timezone: Utc/Bogus\n"))
    assert len(found) == 1
    assert found[0].startswith("p.yaml:3: defaults: field 'timezone': unknown time zone")
    assert "'Utc/Bogus'" in found[0] and "Europe/Berlin" in found[0]


def test_defaults_model_matches_the_subscriber_fields() -> None:
    for name, field in Defaults.model_fields.items():
        assert Subscriber.model_fields[name].annotation == field.annotation, name
        assert Subscriber.model_fields[name].default == field.default, name


def test_non_ascii_local_part_is_rejected_but_an_international_domain_is_not() -> None:
    found = problems_of(TEAM.replace("grace@example.org", "grâce@exämple.org"))
    assert found == [
        "p.yaml:15: subscriber grâce@exämple.org: field 'email': 'grâce@exämple.org': the part "
        "before the @ must be plain ASCII ('â' cannot be delivered: the mail server would need "
        "SMTPUTF8); an international domain after the @ is fine"
    ]
    profiles = parse_profiles(TEAM.replace("grace@example.org", "grace@exämple.org"))
    assert profiles.subscribers[1].email == "grace@exämple.org"


def test_duplicate_key_names_subscriber_and_nested_field() -> None:
    text = TEAM.replace(
        "      description: Generative",
        '      keywords: ["score matching"]\n      description: Generative',
    )
    assert problems_of(text) == [
        "p.yaml:22: subscriber grace@example.org: field 'interests.keywords': "
        "duplicate key (first at line 21): keep only one"
    ]


def test_missing_dash_before_a_subscriber_is_named_once() -> None:
    found = problems_of(TEAM.replace("  - email: grace@", "    email: grace@"))
    assert found == [
        "p.yaml:15: subscriber grace@example.org: field 'email': a second 'email:' inside "
        "subscriber ada@example.org (line 8): looks like the '- ' before this subscriber is "
        "missing; write '- email: grace@example.org', its '-' lined up with the other subscribers'"
    ]
    # the lines above the second 'email:' still belong to the first subscriber
    text = TEAM.replace("  - email: grace@", "    email: grace@").replace("name: Ada", "nam: Ada")
    assert problems_of(text)[0] == (
        "p.yaml:9: subscriber ada@example.org: field 'nam': unknown key (did you mean 'name'?)"
    )


def test_a_key_written_twice_is_judged_by_the_value_yaml_keeps() -> None:
    text = "subscribers:\n  - email: a@example.org\n    max_papers: 5\n    max_papers: 0\n"
    assert problems_of(text) == [
        "p.yaml:4: subscriber a@example.org: field 'max_papers': duplicate key (first at line 3):"
        " keep only one",
        "p.yaml:4: subscriber a@example.org: field 'max_papers': must be at least 1 (found 0)",
    ]
    ran_together = (
        "subscribers:\n  - email: a@example.org\n    max_papers: 5\n"
        "    email: b@example.org\n    max_papers: 0\n"
    )
    found = problems_of(ran_together)
    assert found[0].startswith(
        "p.yaml:4: subscriber b@example.org: field 'email': a second 'email:' inside subscriber "
        "a@example.org (line 2)"
    )
    assert found[1:] == [
        "p.yaml:5: subscriber b@example.org: field 'max_papers': must be at least 1 (found 0)"
    ]


@pytest.mark.parametrize(
    ("edit", "line"),
    [(("  - email: grace@", "  email: grace@"), 15), (("  - email: ada@", "    email: ada@"), 8)],
)
def test_missing_dash_that_breaks_the_yaml_is_explained(edit: tuple[str, str], line: int) -> None:
    (found,) = problems_of(TEAM.replace(*edit))
    assert found.startswith(f"p.yaml:{line}:")
    assert "not valid YAML: looks like the '- ' before this subscriber is missing" in found
    assert "field 'email'" in found and "subscriber " in found


TWO = (
    "subscribers:\n  - email: a@example.org\n    interests:\n      keywords: [x]\n"
    "  - email: b@example.org\n    interests:\n      keywords: [y]\n"
)


DEEP = 10_000
TOO_DEEP = (
    "nested too deeply to read: more than 100 lists and mappings one inside another (a profiles "
    "file needs a few)"
)
INDENTED = "subscribers:\n  - email: a@example.org\n    interests:\n" + "".join(
    f"{' ' * (6 + level)}k{level}:\n" for level in range(1_000)
)
"""Keys of a subscriber's interests, each indented one more space than the one above."""
ALIASED = "".join(
    f"a{n}: &a{n} {'[' * 90}{f'*a{n - 1}' if n else '1'}{']' * 90}\n" for n in range(12)
)
"""Lists 90 deep, each holding the one above by its alias: over 1,000 deep once composed."""


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("subscribers: " + "[" * DEEP + "]" * DEEP + "\n", "p.yaml:1:113: "),
        ("subscribers: " + "[" * DEEP + "\n", "p.yaml:1:113: "),  # never closed either
        ("subscribers: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n", "p.yaml:1:410: "),
        (INDENTED, "p.yaml:101:104: subscriber a@example.org: "),
        (ALIASED + "subscribers: []\n", "p.yaml:2:99: "),
    ],
    ids=["lists", "lists never closed", "mappings", "indented keys", "aliases"],
)
def test_a_file_nested_too_deeply_to_read_is_one_problem_where_it_goes_too_deep(
    text: str, where: str
) -> None:
    """Thousands of lists or mappings one inside another (or fewer, that aliases nest further)
    exhaust Python's recursion when the file is read: it is a problem located where the
    nesting passes 100 levels, not a RecursionError."""
    assert problems_of(text) == [where + TOO_DEEP]


def test_profiles_check_a_file_nested_too_deeply(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("subscribers: " + "[" * DEEP + "]" * DEEP + "\n")
    result = runner.invoke(app, ["profiles", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:1:113: {TOO_DEEP}" in result.output


def laughs(levels: int, indent: str = "") -> str:
    """Lines of lists of ten: of ten values, then each of ten aliases of the line above, ten
    times the values of the line above once read through them ("billion laughs")."""
    return "".join(
        f"{indent}x{n}: &x{n} [{', '.join([f'*x{n - 1}' if n else 'ha'] * 10)}]\n"
        for n in range(levels)
    )


EXPANDS = (
    "aliases expand the file to more than 100,000 values from the {} written in it: an alias "
    "repeats all it names, its aliases included, so aliases of lists of aliases multiply"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (laughs(6) + "subscribers: []\n", "p.yaml:5:45: " + EXPANDS.format(75)),
        (
            "subscribers:\n  - email: bob@example.org\n" + laughs(6, "    "),
            "p.yaml:7:49: subscriber bob@example.org: " + EXPANDS.format(78),
        ),
        (
            "defaults: &d {timezone: UTC, again: *d}\nsubscribers: []\n",
            "p.yaml:1:37: the alias *d is inside what &d names: it holds itself without end",
        ),
    ],
    ids=["laughs", "laughs in a subscriber", "an alias inside what it names"],
)
def test_aliases_that_expand_a_file_without_bound_are_one_problem_at_the_alias(
    text: str, problem: str
) -> None:
    """Six lines of lists of aliases of the line above read as a million values (eight took
    half a minute to check, nine would take hours), an alias inside what it names as values
    without end: the file is one problem, at the alias where it passes the bound, found before
    anything reads through the aliases."""
    assert problems_of(text) == [problem]


def test_aliases_that_share_a_list_with_many_subscribers_are_read_through() -> None:
    """A list of a hundred keywords that 1,100 subscribers share by an alias is read as more
    than 100,000 values, far fewer than a hundred times the values written in the file."""
    keywords = ", ".join(f'"shared topic {k}"' for k in range(100))
    text = "subscribers:\n" + "".join(
        f"  - email: r{i}@example.org\n"
        f"    interests: {f'&common {{keywords: [{keywords}]}}' if i == 0 else '*common'}\n"
        for i in range(1_100)
    )
    subscribers = parse_profiles(text, "p.yaml").subscribers
    assert len(subscribers) == 1_100
    assert {len(s.interests.keywords) for s in subscribers} == {100}


def test_a_key_repeated_in_settings_shared_by_an_alias_is_one_problem_where_written() -> None:
    """The settings an alias names are the ones written at its anchor: a key repeated there is
    said once, of the subscriber whose entry holds it, not again for each alias."""
    text = (
        "subscribers:\n"
        "  - email: ada@example.org\n"
        "    interests: &common\n"
        "      keywords: [rl]\n"
        "      keywords: [diffusion]\n"
        "  - email: grace@example.org\n"
        "    interests: *common\n"
    )
    assert problems_of(text) == [
        "p.yaml:5: subscriber ada@example.org: field 'interests.keywords': duplicate key (first "
        "at line 4): keep only one"
    ]


def test_profiles_check_a_file_whose_aliases_expand_without_bound(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(6) + "subscribers: []\n")
    result = runner.invoke(app, ["profiles", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:5:45: {EXPANDS.format(75)}" in result.output


def test_a_subscriber_after_a_nested_list_is_not_told_to_move() -> None:
    """The mistake is the list left open above; the next subscriber's '-' is where it belongs."""
    text = (
        "subscribers:\n  - email: a@example.org\n    interests:\n      keywords: [x]\n"
        "    alerts:\n      - authors:\n          - K. Lee\n      - keywords: [a, b\n"
        "  - email: b@example.org\n    interests:\n      keywords: [y]\n"
    )
    assert problems_of(text) == [
        "p.yaml:8:19: subscriber a@example.org: not valid YAML: the '[' opened here is never "
        "closed: end the list with ']'"
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("  - email: b@", "   - email: b@"),
            "p.yaml:5:4: subscriber b@example.org: not valid YAML: this subscriber's '-' is in "
            "column 4 and the others' in column 3: line it up with theirs",
        ),
        (
            ("  - email: b@", "- email: b@"),
            "p.yaml:5:1: subscriber b@example.org: not valid YAML: this subscriber's '-' is in "
            "column 1 and the others' in column 3: line it up with theirs",
        ),
        (
            ("  - email: b@", "  -\temail: b@"),
            "p.yaml:5:4: subscriber b@example.org: not valid YAML: found character '\\t' that "
            "cannot start any token (indent with spaces, not tabs)",
        ),
        (
            ("[y]\n", "[y]\n    alerts:\n      - keywords: [a]\n     - keywords: [b]\n"),
            "p.yaml:10:6: subscriber b@example.org: not valid YAML: this '-' is in column 6 and "
            "the one above in column 7: line it up with it",
        ),
        (
            ("b@example.org\n    interests:", "b@example.org\n  interests:"),
            "p.yaml:6:3: subscriber b@example.org: not valid YAML: 'interests:' is lined up with "
            "the subscribers' '-': indent it 4 spaces, like the other fields of the subscriber above",
        ),
    ],
)
def test_indentation_mistakes_say_which_line_to_move_where(
    edit: tuple[str, str], expected: str
) -> None:
    assert problems_of(TWO.replace(*edit)) == [expected]
    # A byte order mark (some Windows editors write one) changes nothing, line numbers included.
    assert problems_of("\ufeff" + TWO.replace(*edit)) == [expected]


def test_a_yaml_merge_key_is_not_taken_for_a_missing_dash() -> None:
    text = TWO.replace("  - email: a@", "  - &first\n    email: a@").replace(
        "  - email: b@example.org\n    interests:\n      keywords: [y]\n",
        "  - <<: *first\n    email: b@example.org\n",
    )
    assert [s.email for s in parse_profiles(text, "p.yaml").subscribers] == [
        "a@example.org", "b@example.org",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("timezone: 5", "field 'timezone': YAML reads 5 as a number: write a name, e.g. timezone: Europe/London"),
        ("frequency: 1", "field 'frequency': YAML reads 1 as a number: write a name, e.g. frequency: daily"),
        ("alerts: {authors: [x]}", "field 'alerts': expected a list of rules: write each below alerts: as '- authors: [...]'"),
    ],
)  # fmt: skip
def test_hints_for_values_of_the_wrong_kind_would_make_them_valid(line: str, expected: str) -> None:
    (found,) = problems_of(
        TWO.replace(
            "    interests:\n      keywords: [y]",
            f"    {line}\n    interests:\n      keywords: [y]",
        )
    )
    assert found == f"p.yaml:6: subscriber b@example.org: {expected}"


# TEAM with an alert for the first subscriber and a third subscriber after the second: a
# mistake in one entry is to be reported in that entry, not in the next.
ALERT = '    alerts:\n      - authors: ["Noam Shazeer"]\n'
CREW = TEAM.replace(
    '      categories: ["cs.LG", "cs.CL"]\n', '      categories: ["cs.LG", "cs.CL"]\n' + ALERT
) + (
    "\n  - email: alan@example.org\n    name: Alan Turing\n    interests:\n"
    '      keywords: ["reinforcement learning"]\n'
)
GRACE = "p.yaml:{}: subscriber grace@example.org: not valid YAML: "


def test_crew_fixture_is_valid() -> None:
    assert len(parse_profiles(CREW, "p.yaml").subscribers) == 3
    assert CREW.splitlines()[16:20] == [
        "  - email: grace@example.org", "    name: Grace Hopper",
        "    timezone: America/New_York", "    frequency: weekdays",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("frequency: weekdays", "frequency weekdays"),
         GRACE.format("20:5") + "no ':' in 'frequency weekdays' (add ':' after 'frequency')"),
        (("name: Grace Hopper", "name Grace Hopper"),
         GRACE.format("18:5") + "no ':' in 'name Grace Hopper' (add ':' after 'name')"),
        (("    interests:\n      keywords: [\"diff", "    interests\n      keywords: [\"diff"),
         GRACE.format("22:5") + "no ':' in 'interests' (add ':' after 'interests')"),
        (("    max_papers: 5\n", "    max_papers 5 # fewer\n"),
         GRACE.format("21:5") + "no ':' in 'max_papers 5' (add ':' after 'max_papers')"),
        (("  - email: alan@example.org", "  - email alan@example.org"),
         "p.yaml:26:5: subscriber alan@example.org: not valid YAML: no ':' in "
         "'email alan@example.org' (add ':' after 'email')"),
        (('flow matching"]\n      description: Generative modelling with diffusion and flow '
          'matching.\n', 'flow matching"\n'),
         GRACE.format("23:17") + "the '[' opened here is never closed: end the list with ']'"),
        (('flow matching"]', 'flow matching"'),
         GRACE.format("23:17") + "the '[' opened here is never closed: end the list with ']'"),
        (('["diffusion model", "flow matching"]', '{a: "diffusion model", b: "flow matching"'),
         GRACE.format("23:17") + "the '{' opened here is never closed: end the mapping with '}'"),
        (('"diffusion model", "flow', '"diffusion model" "flow'),
         GRACE.format("23:36") + "expected ',' or ']' here: put a ',' between the items of the "
         "list"),
        (("  - email: grace@", "    - email: grace@"),
         GRACE.format("17:5") + "this subscriber's '-' is in column 5 and the others' in column "
         "3: line it up with theirs"),
        (("  - email: alan@", "    - email: alan@"),
         "p.yaml:26:5: subscriber alan@example.org: not valid YAML: this subscriber's '-' is in "
         "column 5 and the others' in column 3: line it up with theirs"),
        (("    timezone: America/New_York", "      timezone: America/New_York"),
         GRACE.format("19:7") + "'timezone:' is indented more than 'name:' above it: line it up "
         "with it"),
        (("grace@example.org\n    name", "grace@example.org\n      name"),
         GRACE.format("18:7") + "'name:' is indented more than 'email:' above it: line it up "
         "with it"),
        (("      description: Generative modelling", "      description: Generative\n        "
          "modelling\n        max_papers: 3"),
         GRACE.format("26:9") + "'max_papers:' is indented more than 'description:' above it: "
         "line it up with it"),
        (("      description: Gen", "        description: Gen"),
         GRACE.format("24:9") + "'description:' is indented more than 'keywords:' above it: "
         "line it up with it"),
        (("    timezone: America/New_York", "   timezone: America/New_York"),
         GRACE.format("19:4") + "'timezone:' is indented less than 'name:' above it: line it up "
         "with it"),
        (("      description: Gen", "     description: Gen"),
         GRACE.format("24:6") + "'description:' is indented less than 'keywords:' above it: "
         "line it up with it"),
        (("frequency: weekdays", "frequency: weekly: mon"),
         GRACE.format("20:22") + "'weekly: mon' has a ': ' in it: write frequency: weekly:mon"),
        (("description: Generative", "description: Note: Generative"),
         GRACE.format("24:24") + "mapping values are not allowed here (a value that contains ': ' "
         "must be in quotes)"),
    ],
)  # fmt: skip
def test_syntax_mistakes_are_reported_where_they_are_made(
    edit: tuple[str, str], expected: str
) -> None:
    text = CREW.replace(*edit)
    assert text != CREW
    assert problems_of(text) == [expected]


ALAN = "p.yaml:{}: subscriber alan@example.org: not valid YAML: "
NEVER = "the quote opened here is never closed: end it with '\"' on the same line, e.g. "


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("name: Grace Hopper", 'name: "Grace Hopper'),
         GRACE.format("18:11") + NEVER + 'name: "Grace Hopper"'),
        (("name: Grace Hopper", "name: 'Grace Hopper # the admiral"),
         GRACE.format("18:11") + "the quote opened here is never closed: end it with \"'\" on "
         "the same line, e.g. name: 'Grace Hopper'"),
        (("description: Generative", 'description: "Generative'),
         GRACE.format("24:20") + NEVER + 'description: "Generative modelling with diffusion and '
         'flow matching."'),
        (('"flow matching"]', '"flow matching]'),
         GRACE.format("23:37") + NEVER + 'keywords: ["diffusion model", "flow matching"]'),
        (('"diffusion model", "flow', '"diffusion model, "flow'),
         GRACE.format("23:18") + "the quote opened here is never closed: end it with '\"' before "
         "the ',' after it, e.g. keywords: [\"diffusion model\", \"flow matching\"]"),
        (('- authors: ["Noam Shazeer"]', '- authors: ["Noam Shazeer]'),
         "p.yaml:15:19: subscriber ada@example.org: not valid YAML: " + NEVER
         + '- authors: ["Noam Shazeer"]'),
        (('  send_at: "08:00"', '  send_at: "08:00'),
         "p.yaml:4:12: not valid YAML: " + NEVER + 'send_at: "08:00"'),
        (("name: Alan Turing", 'name: "Alan Turing'),
         ALAN.format("27:11") + NEVER + 'name: "Alan Turing"'),
        (('["reinforcement learning"]', '["reinforcement learning]'),
         ALAN.format("29:18") + NEVER + 'keywords: ["reinforcement learning"]'),
        (("name: Grace Hopper", 'name: "Grace "Amazing" Hopper"'),
         GRACE.format("18:11") + "the quote opened here ends at the '\"' in column 18, before the "
         "value does: a '\"' inside double quotes is written \\\" (or put the value in single "
         "quotes), e.g. name: 'Grace \"Amazing\" Hopper'"),
        (("name: Grace Hopper", "name: 'Grace O'Hopper"),
         GRACE.format("18:11") + "the quote opened here ends at the \"'\" in column 19, before the "
         "value does: a \"'\" inside single quotes is written '' (or put the value in double "
         "quotes), e.g. name: \"Grace O'Hopper\""),
        (("name: Grace Hopper", "name: 'Grace O'Hopper \"Amazing\"'"),
         "e.g. name: 'Grace O''Hopper \"Amazing\"'"),
        (('"diffusion model", "flow', '"diffusion "model", "flow'),
         GRACE.format("23:18") + "the quote opened here ends at the '\"' in column 29, before the "
         "value does: a '\"' inside double quotes is written \\\" (or put the value in single "
         "quotes)"),
    ],
)  # fmt: skip
def test_a_quote_left_open_is_reported_where_it_opens(edit: tuple[str, str], expected: str) -> None:
    """YAML reads an unclosed quote on to the next quote character, lines below included, and
    stops after it (or at the end of the file): the mistake is where the quote opens."""
    text = CREW.replace(*edit)
    assert text != CREW
    (found,) = problems_of(text)
    assert found.endswith(expected) and found.startswith("p.yaml:"), found


@pytest.mark.parametrize("end", ["", "\n", "\n\n  # the end\n"])
def test_a_quote_left_open_on_the_last_line_is_reported_there(end: str) -> None:
    text = CREW + '  - email: linus@example.org\n    name: "Linus' + end
    assert problems_of(text) == [
        "p.yaml:31:11: subscriber linus@example.org: not valid YAML: " + NEVER + 'name: "Linus"'
    ]


@pytest.mark.parametrize("end", ["", "\n"])
def test_no_yaml_error_is_reported_past_the_end_of_the_file(end: str) -> None:
    text = CREW.replace('["reinforcement learning"]\n', '["reinforcement learning",' + end)
    (found,) = problems_of(text)
    assert found.startswith(ALAN.format("29:43")), found


def _indented(text: str, who: str, spaces: int) -> str:
    """``text`` with the entry of subscriber ``who`` indented ``spaces`` more."""
    start = text.index(f"  - email: {who}")
    end = text.index("\n  - email:", start)
    lines = text[start:end].splitlines(keepends=True)
    return text[:start] + "".join(" " * spaces + line for line in lines) + text[end:]


@pytest.mark.parametrize(
    ("last", "spaces", "expected"),
    [
        (ALERT, 4, "p.yaml:17: subscriber ada@example.org: field 'alerts.1'"),
        ("      exclude:\n        - survey\n", 6,
         "p.yaml:17: subscriber ada@example.org: field 'interests.exclude.1'"),
    ],
)  # fmt: skip
def test_a_subscriber_indented_into_the_one_above_is_one_problem(
    last: str, spaces: int, expected: str
) -> None:
    """Indented that far, a subscriber is read as an item of a list that ends the one above (an
    alert rule, an exclude): one problem, not one per key it has."""
    text = CREW.replace(ALERT, last)
    assert problems_of(_indented(text, "grace@", spaces)) == [
        f"{expected}: looks like subscriber grace@example.org is indented too far: move its '-' "
        "to column 3 (level with the other subscribers)"
    ]


def test_yaml_syntax_error_has_column_and_nearest_subscriber() -> None:
    found = problems_of(TEAM.replace("frequency: weekdays", "frequency: weekdays: mon"))
    assert found == [
        "p.yaml:18:24: subscriber grace@example.org: not valid YAML: mapping values are not "
        "allowed here (a value that contains ': ' must be in quotes)"
    ]


def test_yaml_syntax_error_outside_subscribers_names_no_subscriber() -> None:
    found = problems_of(TEAM.replace("  send_at: ", "\tsend_at: "))
    assert found[0].startswith("p.yaml:4:1: not valid YAML: found character")
    assert found[0].endswith("(indent with spaces, not tabs)")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  - email: grace@example.org", "  - email:"),
         "p.yaml:15: subscriber #2 (Grace Hopper): field 'email': is empty: every subscriber needs "
         "an address, e.g. email: ada@example.org"),
        (("  - email: grace@example.org", '  - email: " "'),
         "p.yaml:15: subscriber #2 (Grace Hopper): field 'email': is empty"),
        (("  - email: grace@example.org\n    name", "  - name"),
         "p.yaml:15: subscriber #2 (Grace Hopper): field 'email': required: every subscriber "
         "needs an address"),
        (("    max_papers: 5\n", '    max_papers: 5\n    keywords: ["score matching"]\n'),
         "p.yaml:20: subscriber grace@example.org: field 'keywords': unknown key: 'keywords' "
         "belongs under interests: (indent it below 'interests:')"),
        (("    max_papers: 5\n", "    max_papers: 5\n    like: [\"2401.04088\"]\n"),
         "field 'like': unknown key: 'like' belongs under interests:"),
        (("      description: Gen", "      timezone: UTC\n      description: Gen"),
         "p.yaml:22: subscriber grace@example.org: field 'interests.timezone': unknown key: "
         "'timezone' is a subscriber setting, not an interest"),
        (('["cs.LG", "cs.CL"]', '["machine learning"]'),
         "p.yaml:13: subscriber ada@example.org: field 'interests.categories.0': 'machine "
         "learning' is not an arXiv category: write an archive, a dot and a subject class, such "
         "as cs.LG"),
        (("name: Ada Lovelace", "name: yes"),
         "p.yaml:9: subscriber ada@example.org: field 'name': YAML reads yes as a boolean "
         '(true/false), not as text: put it in quotes, e.g. name: "yes"'),
        (("name: Ada Lovelace", "name: 1815"),
         "field 'name': YAML reads 1815 as a number, not as text: put it in quotes, e.g. "
         'name: "1815"'),
        (('["cs.LG", "cs.CL"]', '["cs.LG"]\n      like: [2401.04080]'),
         "p.yaml:14: subscriber ada@example.org: field 'interests.like.0': YAML reads 2401.04080 "
         'as a number, not as text: put it in quotes, e.g. like: ["2401.04080"]'),
        (('["cs.LG", "cs.CL"]', '["cs.LG"]\n      like: ["that sparse routing paper"]'),
         "p.yaml:14: subscriber ada@example.org: field 'interests.like.0': 'that sparse routing "
         "paper' is not a paper id: write an arXiv id such as 2401.04088"),
        (('keywords: ["diffusion model", "flow matching"]', "keywords: diffusion model"),
         "field 'interests.keywords': expected a list: write keywords: [\"diffusion model\"]"),
        (('keywords: ["diffusion model", "flow matching"]',
          "keywords: diffusion model, flow matching"),
         "field 'interests.keywords': expected a list: write "
         'keywords: ["diffusion model", "flow matching"]'),
        (('"flow matching"]', '"flow matching", ""]'),
         "p.yaml:21: subscriber grace@example.org: field 'interests.keywords.2': is empty: remove "
         "it from the list"),
        (('"flow matching"]', '"' + "flow matching " * 18 + '"]'),
         "p.yaml:21: subscriber grace@example.org: field 'interests.keywords.1': is 252 characters "
         "long, more than the 200 allowed: shorten it"),
        (('"flow matching"]', "flow: matching]"),
         "field 'interests.keywords.1': YAML reads flow: matching as 'key: value' settings, not as "
         'text: put it in quotes, e.g. keywords: ["flow: matching"]'),
        (('"flow matching"]', "[flow, matching]]"),
         "field 'interests.keywords.1': a list inside the list: write the items in one '[...]', "
         'e.g. keywords: ["flow", "matching"]'),
        (("  - email: grace@example.org", "  - email: [grace@example.org, hopper@example.org]"),
         "p.yaml:15: subscriber #2 (Grace Hopper): field 'email': expected one address, not a "
         "list: give each subscriber their own '- email:' entry"),
        (("timezone: America/New_York", "timezone: [America/New_York]"),
         "p.yaml:17: subscriber grace@example.org: field 'timezone': expected one value, not a "
         "list: write it without '[...]', e.g. timezone: Europe/London"),
        (("flow matching.\n", "flow matching.\n  - alan@example.org\n"),
         "p.yaml:23: subscriber #3: expected a subscriber's settings, starting with 'email:': "
         "write '- email: alan@example.org'"),
    ],
)  # fmt: skip
def test_messages_say_how_to_fix(edit: tuple[str, str], expected: str) -> None:
    text = TEAM.replace(*edit)
    assert text != TEAM
    found = problems_of(text)
    assert len(found) == 1 and expected in found[0], found


def test_misspelt_subscribers_key_is_suggested_on_its_own_line() -> None:
    found = problems_of(TEAM.replace("subscribers:", "subscriber:"))
    assert found == ["p.yaml:7: field 'subscriber': unknown key (did you mean 'subscribers'?)"]


def test_missing_or_empty_subscribers_list() -> None:
    found = problems_of("defaults:\n  timezone: UTC\n")
    assert found == [
        "p.yaml:1: field 'subscribers': required: add 'subscribers:' and below it one "
        "'- email: ...' per subscriber"
    ]
    found = problems_of("# nobody yet\nsubscribers:\n")
    assert found[0].startswith("p.yaml:2: field 'subscribers': is empty")


def test_second_subscribers_block_is_a_duplicate_not_a_replacement() -> None:
    found = problems_of(TEAM + "subscribers:\n  - email: alan@example.org\n")
    assert found == [
        "p.yaml:23: field 'subscribers': duplicate key (first at line 7): keep only one"
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("max_papers: 5", "max_papers: true"),
         "p.yaml:19: subscriber grace@example.org: field 'max_papers': YAML reads true as a "
         "boolean (true/false), not a number: write a number, e.g. max_papers: 10"),
        (("max_papers: 5", 'max_papers: "5"'),
         "p.yaml:19: subscriber grace@example.org: field 'max_papers': '5' is text: write a "
         "number without quotes, e.g. max_papers: 5"),
        (("max_papers: 5", "max_papers: 5.0"), "field 'max_papers': 5.0 is not a whole number"),
        (("  max_papers: 10\n", "  max_papers: yes\n"),
         "p.yaml:5: defaults: field 'max_papers': YAML reads yes as a boolean"),
        (("max_papers: 5", "min_score: on"), "field 'min_score': YAML reads on as a boolean"),
        (("max_papers: 5", "send_empty: 1"), "field 'send_empty': 1 is not true or false"),
        (("max_papers: 5", 'send_empty: "yes"'),
         "field 'send_empty': 'yes' is not true or false: write send_empty: true or "
         "send_empty: false"),
    ],
)  # fmt: skip
def test_numbers_and_booleans_are_strict(edit: tuple[str, str], expected: str) -> None:
    found = problems_of(TEAM.replace(*edit))
    assert len(found) == 1 and expected in found[0], found


def test_min_score_accepts_whole_numbers() -> None:
    grace = parse_profiles(TEAM.replace("max_papers: 5", "min_score: 1")).subscribers[1]
    assert grace.min_score == 1.0


NO_INTERESTS = TEAM.replace(
    '      keywords: ["diffusion model", "flow matching"]\n'
    "      description: Generative modelling with diffusion and flow matching.\n",
    '      keywords: []\n      exclude: ["survey"]\n',
)


def test_subscriber_without_interests_is_a_warning() -> None:
    profiles = parse_profiles(NO_INTERESTS, "p.yaml")
    assert len(profiles.subscribers) == 2
    assert [str(w) for w in profiles.warnings] == [
        "p.yaml:20: subscriber grace@example.org: field 'interests': no keywords, description, "
        "authors, categories or liked papers: this subscriber will never get a digest; add some "
        "under interests:"
    ]
    bare = TEAM.replace(
        '    interests:\n      keywords: ["diffusion', '    x:\n      keywords: ["d'
    )
    bare = bare[: bare.index("    x:\n")]
    (warning,) = parse_profiles(bare, "p.yaml").warnings
    assert str(warning).startswith("p.yaml:15: subscriber grace@example.org: field 'interests'")


def test_phrases_that_cannot_do_what_was_meant_are_warnings() -> None:
    """Two phrases written as one (with a comma) never match as either; an exclude that a
    keyword holds vetoes every paper with that keyword. The file stays valid."""
    text = TEAM.replace(
        '      keywords: ["diffusion model", "flow matching"]\n',
        '      keywords: ["diffusion model", "flow matching, score matching"]\n'
        '      exclude: ["survey", "Diffusion Models"]\n',
    )
    profiles = parse_profiles(text, "p.yaml")
    assert len(profiles.subscribers) == 2
    assert [str(w) for w in profiles.warnings] == [
        "p.yaml:21: subscriber grace@example.org: field 'interests.keywords': 'flow matching, "
        "score matching' is one phrase, commas included: for 2 phrases write "
        'keywords: ["flow matching", "score matching"]',
        "p.yaml:22: subscriber grace@example.org: field 'interests.exclude': 'Diffusion Models' "
        "vetoes every paper that holds the keyword 'diffusion model'",
    ]
    assert parse_profiles(TEAM).warnings == ()


def test_alert_rules_and_authors_that_cannot_do_what_was_meant_are_warnings() -> None:
    """An alert phrase with a comma never fires; an author written as a family name alone finds
    every author of that name, in alerts and interests alike ("LeCun, Yann" is a name)."""
    text = NO_INTERESTS + (
        "    alerts:\n"
        '      - authors: ["LeCun, Yann", "Wang"]\n'
        '      - keywords: ["rlhf", "flow matching, score matching"]\n'
        '        authors: ["Y. Song", "van der Maaten"]\n'
    )
    profiles = parse_profiles(text, "p.yaml")
    assert [str(w).split(": field ", 1)[1] for w in profiles.warnings][1:] == [
        "'alerts.0.authors.1': 'Wang' names no given name or initial: it finds every author "
        "named Wang: add the given name or its initial",
        "'alerts.1.keywords.1': 'flow matching, score matching' is one phrase, commas "
        'included: for 2 phrases write keywords: ["flow matching", "score matching"]',
        "'alerts.1.authors.1': 'van der Maaten' names no given name or initial: it finds every "
        "author named van der Maaten: add the given name or its initial",
    ]
    categories = '      categories: ["cs.LG", "cs.CL"]\n'
    interests = TEAM.replace(categories, categories + '      authors: ["Shazeer", "N. Shazeer"]\n')
    (warning,) = parse_profiles(interests, "p.yaml").warnings
    assert "field 'interests.authors': 'Shazeer' names no given name" in str(warning)


def test_an_author_written_in_a_script_without_capitals_is_no_family_name_alone() -> None:
    """Chinese, Japanese and Korean names are written as one word, given name included: no
    warning that they lack one."""
    categories = '      categories: ["cs.LG", "cs.CL"]\n'
    authors = '      authors: ["王小明", "山田太郎", "김민준"]\n'
    assert parse_profiles(TEAM.replace(categories, categories + authors)).warnings == ()


def test_profiles_check_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(NO_INTERESTS)
    result = runner.invoke(app, ["profiles", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Warning: {path}:20: subscriber grace@example.org: field 'interests'" in result.output
    assert f"{path}: OK, 2 subscribers, 1 warning" in result.output


def test_warnings_come_in_file_order(tmp_path: Path) -> None:
    """Within a subscriber too: an alert's authors written above its keywords are warned
    about first, whatever order the checks run in."""
    path = tmp_path / "team.yaml"
    path.write_text(
        NO_INTERESTS
        + "    alerts:\n"
        + '      - authors: ["Wang"]\n'
        + '        keywords: ["flow matching, score matching"]\n'
        + '      - keywords: ["rlhf, dpo"]\n'
        + '        authors: ["Song"]\n'
    )
    result = runner.invoke(app, ["profiles", "check", str(path)])
    assert result.exit_code == 0, result.output
    warned = re.findall(
        rf"^Warning: {re.escape(str(path))}:(\d+): .*field '([^']+)'", result.output, re.M
    )
    assert [field for _, field in warned] == [
        "interests",
        "alerts.0.authors.0",
        "alerts.0.keywords.0",
        "alerts.1.keywords.0",
        "alerts.1.authors.0",
    ], result.output
    lines = [int(line) for line, _ in warned]
    assert lines == sorted(lines) and len(set(lines)) == len(lines), lines


def test_problems_come_in_file_order_and_alerts_are_mentioned() -> None:
    text = TEAM.replace("  max_papers: 10\n", "  max_papers: 0\n")
    text = text.replace("    max_papers: 5\n", "    max_papers: 5\n    max_papers: 6\n")
    text = text.replace("name: Ada Lovelace", "name: no")
    assert [p.split(":")[1] for p in problems_of(text)] == ["5", "9", "20"]
    alerted = NO_INTERESTS + '    alerts:\n      - authors: ["Yang Song"]\n'
    (warning,) = parse_profiles(alerted, "p.yaml").warnings
    assert str(warning).endswith("add some under interests: (their alerts still apply)")


def test_liked_papers_are_stored_by_id_without_version_or_link() -> None:
    text = TEAM.replace(
        '["cs.LG", "cs.CL"]',
        '["cs.LG"]\n      like: ["2401.04088v3", "https://arxiv.org/abs/2402.00001"]',
    )
    ada, _ = parse_profiles(text, "p.yaml").subscribers
    assert ada.interests.like == ["2401.04088", "2402.00001"]


def test_a_subscriber_repeated_by_an_alias_is_a_duplicate_at_the_alias_line() -> None:
    """``- *ada`` repeats the entry itself: it is named once, where the alias is written, and
    the entry's own problems are not listed twice."""
    text = (
        "subscribers:\n"
        "  - &ada\n"
        "    email: ada@example.org\n"
        "    interests: {keywords: [diffusion], kewords: [x]}\n"
        "  - email: grace@example.org\n"
        "    interests: {keywords: [rl]}\n"
        "  - *ada\n"
    )
    assert problems_of(text) == [
        "p.yaml:4: subscriber ada@example.org: field 'interests.kewords': unknown key "
        "(did you mean 'keywords'?)",
        "p.yaml:7: subscriber ada@example.org: field 'email': duplicate subscriber "
        "(the entry at line 2, repeated by an alias)",
    ]


def test_an_entry_written_once_through_an_alias_is_a_subscriber() -> None:
    text = (
        "defaults:\n  max_papers: 5\n"
        "subscribers:\n"
        "  - email: grace@example.org\n"
        "    interests: &shared {keywords: [rl]}\n"
        "  - email: ada@example.org\n"
        "    interests: *shared\n"
    )
    emails = [s.email for s in parse_profiles(text, "p.yaml").subscribers]
    assert emails == ["grace@example.org", "ada@example.org"]


COMMA = TEAM.replace('"flow matching"]', '"flow matching, score matching"]').replace(
    '      categories: ["cs.LG", "cs.CL"]\n', '      authors: ["Shazeer"]\n'
)
"""TEAM with a warning about each subscriber."""


def test_an_entry_written_as_before_is_not_validated_again_and_an_edited_one_is() -> None:
    """Read again after an edit, as the worker does, the entries written as before are the
    subscribers already validated; the edited one is validated afresh, and its edit is seen."""
    ada, grace = parse_profiles(TEAM, "p.yaml").subscribers
    again = parse_profiles(TEAM.replace("max_papers: 5", "max_papers: 6"), "p.yaml").subscribers
    assert again[0] is ada
    assert again[1] is not grace and again[1].max_papers == 6
    assert parse_profiles(TEAM.replace("max_papers: 10", "max_papers: 9")).subscribers[0] != ada


def test_warnings_of_entries_validated_before_are_on_the_lines_they_are_written_on() -> None:
    """Moved down the file, an entry validated before is warned about on its new line, and a
    warning added by an edit appears."""
    before = [str(w) for w in parse_profiles(COMMA, "p.yaml").warnings]
    assert [w.split(": subscriber")[0] for w in before] == ["p.yaml:13", "p.yaml:21"]
    moved = "# a note\n# and another\n" + COMMA
    after = [str(w) for w in parse_profiles(moved, "p.yaml").warnings]
    assert after == [w.replace(":13:", ":15:").replace(":21:", ":23:") for w in before]
    edited = COMMA.replace('["mixture of experts", "expert', '["mixture of experts, moe", "expert')
    assert len(parse_profiles(edited, "p.yaml").warnings) == 3


@pytest.mark.parametrize(
    ("valid", "invalid", "expected"),
    [
        ("max_papers: 1", "max_papers: true", "YAML reads true as a boolean"),
        ("max_papers: 5", "max_papers: 5.0", "5.0 is not a whole number"),
        ("name: Ada Lovelace", "name: 1815", "YAML reads 1815 as a number"),
    ],
)
def test_values_python_counts_equal_are_told_apart_when_read_again(
    valid: str, invalid: str, expected: str
) -> None:
    """1 and true, 5 and 5.0 are equal in Python, and true is no number of papers: an entry
    validated before with one is not taken for the same entry written with the other."""
    assert parse_profiles(TEAM.replace("name: Ada Lovelace", valid), "p.yaml").subscribers
    (problem,) = problems_of(TEAM.replace("name: Ada Lovelace", invalid))
    assert expected in problem


def test_a_parse_leaves_the_cycle_collector_as_it_found_it_and_never_runs_it() -> None:
    """A large file's node tree is millions of objects that the collector would walk again and
    again while they are made: it is held off during a parse, and runs again after it."""
    collections: list[str] = []

    def count(phase: str, info: dict[str, int]) -> None:
        collections.append(phase)

    text = TEAM + "".join(
        f"  - email: reader{n}@example.org\n    interests:\n      keywords: [topic {n}]\n"
        for n in range(300)
    )
    gc.callbacks.append(count)
    try:
        parse_profiles(text, "p.yaml")
        assert collections == [] and gc.isenabled()
        gc.disable()
        parse_profiles(text, "p.yaml")
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(count)


def test_parses_in_two_threads_at_once_leave_the_cycle_collector_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first parse ends while a second, started meanwhile in another thread, still runs:
    the collector stays off until the second ends, then runs again."""
    started, first_ended = threading.Event(), threading.Event()
    compose = profiles._compose

    def second_waits_for_the_first(text: str, source: str) -> tuple[object, object]:
        if source == "second.yaml":
            started.set()
            assert first_ended.wait(timeout=5)
        return compose(text, source)

    monkeypatch.setattr(profiles, "_compose", second_waits_for_the_first)
    second = threading.Thread(target=parse_profiles, args=(TEAM, "second.yaml"))
    enabled: list[bool] = []

    def first() -> None:
        second.start()
        assert started.wait(timeout=5)
        parse_profiles(TEAM, "first.yaml")
        enabled.append(gc.isenabled())
        first_ended.set()
        second.join(timeout=5)
        enabled.append(gc.isenabled())

    first()
    assert enabled == [False, True]
