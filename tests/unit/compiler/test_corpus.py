"""The corpus drives the compiler tests: valid configs compile to their checked
JSON twin, invalid ones give exactly the expected codes at the expected places."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from rinetd_run.canonical import digest
from rinetd_run.document import read
from rinetdc.check import check
from rinetdc.emit import render
from rinetdc.fmt import format_ruleset
from rinetdc.resolve import NoResolver
from tests.helpers import CORPUS, SCHEMA

VALID = sorted((CORPUS / "valid").glob("*.conf"))
INVALID = sorted((CORPUS / "invalid").glob("*.conf"))


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _compile(text: str) -> str:
    result = check(text, NoResolver())
    assert result.errors == 0, result.diagnostics
    return render(result.ruleset)


@pytest.mark.parametrize("conf", VALID, ids=lambda p: p.stem)
def test_valid_config_compiles_to_its_json_twin(conf: Path) -> None:
    assert _compile(_read(conf)) == conf.with_suffix(".json").read_text()


@pytest.mark.parametrize("conf", VALID, ids=lambda p: p.stem)
def test_compiled_json_follows_the_schema_and_its_digest(conf: Path) -> None:
    document = json.loads(_compile(_read(conf)))
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert document["digest"] == digest(document)


@pytest.mark.parametrize("conf", VALID, ids=lambda p: p.stem)
def test_fmt_round_trips(conf: Path) -> None:
    compiled = _compile(_read(conf))
    again = _compile(format_ruleset(read(compiled)))
    assert again == compiled


@pytest.mark.parametrize("conf", INVALID, ids=lambda p: p.stem)
def test_invalid_config_gives_exact_codes_and_positions(conf: Path) -> None:
    result = check(_read(conf), NoResolver())
    found = [f"{d.span.line}:{d.span.column} {d.code}" for d in result.diagnostics]
    assert found == conf.with_suffix(".expect").read_text().split("\n")[:-1]


def test_schema_rejects_a_broken_document() -> None:
    document = json.loads((CORPUS / "valid" / "seed.json").read_text())
    document["rules"][0]["bind"]["port"] = 70000
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(SCHEMA.read_text()))
