"""The one reader of rule set files: it accepts exactly what the JSON Schema accepts.

Documents are edited and sealed again with a correct digest (as someone who
knows the format would), so only the reader's own checks stand between them
and the runtime or ``rinetdc fmt``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rinetd_run.canonical import dumps
from rinetd_run.document import read, to_document
from rinetd_run.ruleset import RuleSetError
from tests.helpers import CORPUS, SCHEMA

_VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
_BASE = json.loads((CORPUS / "valid" / "extended.json").read_text())


def _sealed(document: dict[str, Any]) -> str:
    return dumps({k: v for k, v in document.items() if k != "digest"})


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value: object keys and list indexes."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


_PATHS = [p for p in _paths(_BASE) if p and p != ("digest",)]
_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "8", "tcp", "udp", "allow", "a\nb", "common", "tab", "é", "10.*"]),
    st.text(max_size=6),
    st.just([]),
    st.just({}),
    st.just({"path": "/x", "line": 1, "file": 0}),
    st.sampled_from(["on", "off", "v1", "v2", "json", "keepalive"]),
    st.just({"file": 0, "line": 2}),
)


def _pools_hold(document: dict[str, Any]) -> bool:
    """What JSON Schema cannot say of pools: names sorted and unique, a member's host (or
    address) and port once per pool, and every rule's pool among them."""
    names = [p.get("name") for p in document["pools"] if isinstance(p, dict)]
    if any(type(n) is not str for n in names) or names != sorted(set(names)):
        return False
    for pool in document["pools"]:
        members = pool.get("members") if isinstance(pool, dict) else None
        if isinstance(members, list):
            keys = [
                (m.get("address") or m.get("host"), m.get("port"))
                for m in members
                if isinstance(m, dict)
            ]
            if len({json.dumps(k) for k in keys}) != len(keys):
                return False
    for rule in document["rules"]:
        connect = rule.get("connect") if isinstance(rule, dict) else None
        if isinstance(connect, dict) and "pool" in connect and connect["pool"] not in names:
            return False
    return True


def _places_hold(document: dict[str, Any]) -> bool:
    """What JSON Schema cannot say: every `file` index points into `files`, and a file is
    included from one listed before it; and the pools' own rules (``_pools_hold``)."""
    if not _pools_hold(document):
        return False
    count = len(document["files"])

    def ok(value: Any, key: Any = None) -> bool:
        if key in ("file", "format_file") and type(value) in (int, float) and value >= count:
            return False
        if isinstance(value, dict):
            return all(ok(v, k) for k, v in value.items())
        return all(ok(v) for v in value) if isinstance(value, list) else True

    return ok(document) and all(
        f["included_from"]["file"] < index
        for index, f in enumerate(document["files"])
        if isinstance(f.get("included_from"), dict) and type(f["included_from"].get("file")) is int
    )


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_PATHS), _ODD, st.booleans())
def test_reader_accepts_exactly_what_the_schema_accepts(
    path: tuple[Any, ...], value: Any, delete: bool
) -> None:
    document = copy.deepcopy(_BASE)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    text = _sealed(document)
    sealed = json.loads(text)
    schema_says = _VALIDATOR.is_valid(sealed) and _places_hold(sealed)
    try:
        ruleset = read(text)
    except RuleSetError:
        assert not schema_says, f"the reader refused what the schema accepts: {path}={value!r}"
        return
    assert schema_says, f"the reader accepted what the schema refuses: {path}={value!r}"
    assert to_document(ruleset) == {k: v for k, v in sealed.items() if k != "digest"}


def test_an_unknown_top_level_key_is_refused() -> None:
    with pytest.raises(RuleSetError, match="unknown key 'surprise'"):
        read(_sealed({**_BASE, "surprise": True}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rules"][0].update(line="8"), r"rules\[0\]\.line must be an integer"),
        (lambda d: d["rules"][0].update(timeout=True), r"rules\[0\]\.timeout"),
        (lambda d: d["rules"][0]["bind"].update(host="a\nallow *"), r"rules\[0\]\.bind\.host"),
        (lambda d: d["log"].update(file={"path": 7, "line": 1, "file": 0}), r"log\.file\.path"),
        (lambda d: d["rules"][0]["bind"].update(port=65536), r"port must be an integer 1..65535"),
        (lambda d: d.update(resolved=1), "resolved must be one of True, False"),
        (lambda d: d["access"].append({"kind": "allow", "pattern": "10.*"}), "lacks line"),
    ],
)
def test_edited_documents_are_refused_with_where(change: Any, message: str) -> None:
    document = copy.deepcopy(_BASE)
    change(document)
    with pytest.raises(RuleSetError, match=message):
        read(_sealed(document))


def test_hostile_json_is_refused_without_a_traceback() -> None:
    with pytest.raises(RuleSetError, match="nested too deep"):
        read("[" * 100_000 + "]" * 100_000)
    huge = copy.deepcopy(_BASE)
    huge["rules"][0]["timeout"] = float("inf")  # sealed as it would be read back from 1e400
    text = _sealed(huge).replace("Infinity", "1e400")
    with pytest.raises(RuleSetError, match=r"rules\[0\]\.timeout must be an integer"):
        read(text)
    with pytest.raises(RuleSetError, match="not valid JSON"):
        read('{"format": NaN}')
    with pytest.raises(RuleSetError, match="not valid JSON"):
        read('{"line": ' + "9" * 5000 + "}")
