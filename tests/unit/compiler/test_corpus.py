"""The corpus drives the compiler tests: valid configs compile to their checked
JSON twin, invalid ones give exactly the expected codes at the expected places."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from rinetd_run.canonical import digest
from rinetd_run.document import read, to_document
from rinetdc.check import Result, check
from rinetdc.emit import seal
from rinetdc.fmt import format_ruleset
from rinetdc.resolve import NoResolver
from rinetdc.semdiff import compare
from tests.helpers import CORPUS, SCHEMA

VALID = sorted((CORPUS / "valid").glob("*.conf"))
INVALID = sorted((CORPUS / "invalid").glob("*.conf"))


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _compile(text: str, conf: Path | None = None) -> str:
    result = check(text, NoResolver(), name=str(conf) if conf else "<stdin>")
    assert result.errors == 0, result.diagnostics
    return seal(result.ruleset)


@pytest.mark.parametrize("conf", VALID, ids=lambda p: p.stem)
def test_valid_config_compiles_to_its_json_twin(conf: Path) -> None:
    assert _compile(_read(conf), conf) == conf.with_suffix(".json").read_text()


@pytest.mark.parametrize("conf", VALID, ids=lambda p: p.stem)
def test_compiled_json_follows_the_schema_and_its_digest(conf: Path) -> None:
    document = json.loads(_compile(_read(conf), conf))
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    assert document["digest"] == digest(document)


@pytest.mark.parametrize("conf", VALID, ids=lambda p: p.stem)
def test_fmt_round_trips(conf: Path) -> None:
    compiled = read(_compile(_read(conf), conf))
    again = read(_compile(format_ruleset(compiled)))
    if len(compiled.files) == 1:  # one file: the same rule set, lines included
        assert to_document(again) == {**to_document(compiled), "files": to_document(again)["files"]}
    else:  # several: one file in the order the includes read, the same meaning
        assert compare(compiled, again) == []


def _expected(result: Result, conf: Path) -> list[str]:
    names = result.sources.names
    return [
        (f"{os.path.relpath(names[d.span.file], conf.parent)}:" if d.span.file else "")
        + f"{d.span.line}:{d.span.column} {d.code}"
        for d in result.diagnostics
    ]


@pytest.mark.parametrize("conf", INVALID, ids=lambda p: p.stem)
def test_invalid_config_gives_exact_codes_and_positions(conf: Path) -> None:
    target = "rinetd-0.73" if conf.stem.startswith("target073") else "rinetd-run"
    result = check(_read(conf), NoResolver(), name=str(conf), target=target)
    found = _expected(result, conf)
    assert found == conf.with_suffix(".expect").read_text().split("\n")[:-1]


def test_a_version_1_rule_set_still_loads_as_it_did() -> None:
    """rinetd-run reads a version 1 file (committed as rinetdc wrote it before version 2)
    into the same rules as the version 2 compile of the same configuration."""
    v1 = read((CORPUS / "v1" / "everything.json").read_text())
    v2 = read(_compile(_read(CORPUS / "v1" / "everything.conf")))
    assert json.loads((CORPUS / "v1" / "everything.json").read_text())["version"] == 1
    assert v1.rules == v2.rules and v1.access == v2.access and v1.log == v2.log
    assert v1.pidfile == v2.pidfile and v1.files == () and v2.files != ()


def test_schema_rejects_a_broken_document() -> None:
    document = json.loads((CORPUS / "valid" / "seed.json").read_text())
    document["rules"][0]["bind"]["port"] = 70000
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(SCHEMA.read_text()))
