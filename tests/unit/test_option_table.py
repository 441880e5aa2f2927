"""The option table (`rinetd_run.options`) against every place that must agree with it.

The code derives what it needs from the table; what cannot import it (the grammar, the
JSON Schema, the role, the README) is held against it here, so a new option is one
entry in the table and this test says what else to write.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

import pytest
import yaml

from rinetd_run.options import (
    BY_NAME,
    GLOBAL_OPTIONS,
    MEMBER_OPTIONS,
    OPTIONS,
    RULE_OPTIONS,
    Option,
)
from rinetd_run.ruleset import Effective
from tests.helpers import ROOT

ROLE = ROOT / "ansible" / "roles" / "rinetd"


def _words(terminal: str) -> set[str]:
    grammar = (ROOT / "rinetdc" / "grammar.lark").read_text()
    match = re.search(rf"^{terminal}\.\d+: /\(([^)]*)\)", grammar, re.M)
    assert match, terminal
    return set(match.group(1).split("|"))


def _schema_value(option: Option) -> dict[str, Any]:
    if option.text:
        printable = "^[\\t\\r\\n -~]+(?![\\s\\S])"
        return {"type": "string", "minLength": 1, "maxLength": option.high, "pattern": printable}
    if option.words:
        return {"enum": list(option.words)}
    return {"type": "integer", "minimum": option.low, "maximum": option.high}


def test_the_table_is_whole() -> None:
    for option in OPTIONS:
        if option.words:
            assert option.default is None or option.default in option.words, option.name
        elif option.text:
            assert option.default is None and option.high, option.name
        else:
            assert isinstance(option.default, int), option.name
            assert option.low <= option.default <= option.high, option.name
        assert option.protocols and option.help.strip(), option.name
        assert option.inherited or option.scope == "both", option.name
        assert not option.flag or option.words == ("on", "off"), option.name
        assert not option.pool or option.scope == "rule", option.name
    assert len(BY_NAME) == len(OPTIONS)
    assert set(MEMBER_OPTIONS) == {"weight", "backup", "max-connections"}


def test_effective_has_a_field_per_option_in_table_order() -> None:
    assert [f.name for f in fields(Effective)] == [o.field for o in OPTIONS if o.scope != "member"]


def test_the_grammar_knows_exactly_the_table_s_names() -> None:
    bare = {o.name for o in OPTIONS if o.flag}
    assert _words("RULE_OPTION") == (set(RULE_OPTIONS) | set(MEMBER_OPTIONS)) - bare
    assert _words("FLAG") == bare
    assert _words("SETTING") == set(GLOBAL_OPTIONS)


def test_the_schema_takes_exactly_the_table_s_values() -> None:
    schema = json.loads((ROOT / "schema" / "rules.schema.json").read_text())
    rule = schema["$defs"]["ruleOptions"]["properties"]
    assert rule == {name: _schema_value(BY_NAME[name]) for name in RULE_OPTIONS}
    settings = schema["properties"]["settings"]["items"]
    assert settings["properties"]["name"]["enum"] == list(GLOBAL_OPTIONS)
    assert settings["oneOf"] == [
        {"properties": {"name": {"const": name}, "value": _schema_value(BY_NAME[name])}}
        for name in GLOBAL_OPTIONS
    ]
    member = schema["properties"]["pools"]["items"]["properties"]["members"]["items"]
    for name in MEMBER_OPTIONS:
        option = BY_NAME[name]
        expected = {"type": "boolean"} if option.flag else _schema_value(option)
        written = member["properties"][option.field]
        assert {k: v for k, v in written.items() if k != "description"} == expected


def _role_type(option: Option) -> dict[str, Any]:
    if option.text:
        return {"type": "str"}
    if option.words == ("on", "off"):
        return {"type": "bool"}
    if option.words:
        return {"type": "str", "choices": list(option.words)}
    return {"type": "int"}


def test_the_role_has_a_variable_per_option_and_writes_each() -> None:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    variables = specs["argument_specs"]["main"]["options"]
    per_rule = variables["rinetd_rules"]["options"]
    template = (ROLE / "templates" / "rinetd.conf.j2").read_text()
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    for name in RULE_OPTIONS:
        option = BY_NAME[name]
        spec = per_rule[option.field]
        assert {k: spec[k] for k in ("type", "choices") if k in spec} == _role_type(option)
        assert f"'{option.field}'" in template or f"rule.{option.field}" in template, name
    for name in GLOBAL_OPTIONS:
        option = BY_NAME[name]
        variable = f"rinetd_{option.field}"
        spec = variables[variable]
        assert {k: spec[k] for k in ("type", "choices") if k in spec} == _role_type(option)
        default = (option.default == "on") if spec["type"] == "bool" else option.default
        assert spec["default"] == defaults[variable] == default, variable
        assert re.search(rf"^{name} {{{{ .*{variable}\b", template, re.M), name
    role_options = {k for k in per_rule if k.replace("_", "-") in BY_NAME}
    assert role_options == {BY_NAME[n].field for n in RULE_OPTIONS}


def _readme_rows() -> list[list[str]]:
    """The rows of the README's language table, as cells."""
    text = (ROOT / "README.md").read_text().split("### The extended language", 1)[1]
    table = text[text.index("\n| ") :].split("\n\n", 1)[0]
    return [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in table.splitlines()
        if line.startswith("| `")
    ]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_the_readme_s_language_table_says_the_table_s_values(option: Option) -> None:
    statement = re.compile(rf"`{option.name} [N|a-z\\]+`")
    in_rule = re.compile(rf"`(pool \.\.\. )?\[{option.name}(=[N|a-z0-9\\]+|=\"TEXT\")?\]`")
    rows = [r for r in _readme_rows() if statement.search(r[0]) or in_rule.search(r[0])]
    assert rows, option.name
    scopes = {
        scope
        for row in rows
        for scope, found in (("global", statement), ("rule", in_rule))
        if found.search(row[0])
    }
    expected_scopes = {"global", "rule"} if option.scope == "both" else {option.scope}
    assert scopes == ({"rule"} if option.scope == "member" else expected_scopes)
    in_pool = any(row[0].startswith("`pool ...") for row in rows)
    assert in_pool == (option.scope == "member" or option.member), option.name
    for cell, values, default, *_ in rows:
        expected = option.values + (" s" if option.unit == "s" else "")
        assert values == expected, (cell, values)
        written = "none" if option.default is None else str(option.default)
        assert default.split(" (")[0] == written, (cell, default)
        own_meaning = not option.inherited and statement.search(cell)  # says its own
        if option.zero and option.default == 0 and not own_meaning:
            assert default == f"0 ({option.zero})", (cell, default)
