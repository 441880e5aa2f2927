"""The rule set read and sealed in slices gives exactly what json gives: the same value,
the same refusals, the same compact bytes (hypothesis, on any JSON and on texts cut or
edited at random)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rinetd_run import slices

_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
) | st.text()
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_DOCUMENTS = st.dictionaries(st.text(), _VALUES | st.lists(_VALUES, max_size=6), max_size=6)


def _refuse(name: str) -> None:
    raise ValueError(name)


def _outcome(load: Any, text: str) -> object:
    try:
        return ("value", load(text))
    except (ValueError, RecursionError) as error:
        return ("refused", type(error))


@given(_DOCUMENTS, st.sampled_from([None, 0, 2]), st.booleans())
def test_a_document_reads_as_json_reads_it(
    document: dict[str, Any], indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only)
    assert slices.loads(text, _refuse) == json.loads(text)


@given(_DOCUMENTS, st.data())
def test_an_edited_text_is_refused_exactly_when_json_refuses_it(
    document: dict[str, Any], data: st.DataObject
) -> None:
    text = json.dumps(document, indent=data.draw(st.sampled_from([None, 1])))
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 3))
    inserted = data.draw(st.sampled_from(["", ",", "]", "}", "[", '"', ":", " ", "x", "NaN"]))
    edited = text[:at] + inserted + text[at + cut :]

    def strict(raw: str) -> object:
        return json.loads(raw, parse_constant=_refuse)

    ours = _outcome(lambda raw: slices.loads(raw, _refuse), edited)
    theirs = _outcome(strict, edited)
    assert ours[0] == theirs[0]
    if ours[0] == "value":
        assert ours == theirs


@given(_DOCUMENTS)
def test_compact_pieces_are_json_dumps_bytes(document: dict[str, Any]) -> None:
    compact = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert "".join(slices.compact_pieces(document)) == compact


@given(_DOCUMENTS, st.sampled_from([None, 0, 1]), st.integers(1, 40), st.data())
def test_bytes_read_in_pieces_give_what_json_gives(
    document: dict[str, Any], indent: int | None, chunk: int, data: st.DataObject
) -> None:
    text = json.dumps(document, indent=indent, ensure_ascii=data.draw(st.booleans()))
    raw = text.encode()
    if data.draw(st.booleans()):  # edited: cut, or given a stray byte or character
        at = data.draw(st.integers(0, len(raw)))
        raw = (
            raw[:at] + data.draw(st.sampled_from([b"", b",", b"]", b"\xff", b"\n"])) + raw[at + 1 :]
        )

    def whole(payload: bytes) -> object:
        return json.loads(payload.decode("utf-8"), parse_constant=_refuse)

    ours = _outcome(lambda payload: slices.load_bytes(payload, _refuse, chunk), raw)
    assert ours == _outcome(whole, raw)
