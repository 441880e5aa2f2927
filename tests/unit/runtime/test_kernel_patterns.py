"""The kernel data plane's reading of access patterns: for IPv4 addresses, the products
of octet sets ``kernel_patterns.ipv4_terms`` gives match exactly the addresses that
``access.matches`` (rinetd 0.73's glob) matches."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rinetd_run.access import matches
from rinetd_run.kernel_patterns import MAX_TERMS, covers, ipv4_terms

addresses = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
pattern_chars = st.sampled_from("0123456789.*?*?..")


@st.composite
def patterns_near(draw: st.DrawFn) -> tuple[str, str]:
    """An address, and a pattern made from its text by turning pieces into ``?`` and
    ``*``, and some characters into others: patterns that match it, and near misses."""
    address = draw(addresses)
    text = list(address)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(at, min(len(text), at + 6)))
        text[at:end] = [draw(st.sampled_from(["*", "?", "1", ".", "", "*"]))]
        if not text:
            text = ["*"]
    return "".join(text), address


def _agree(pattern: str, address: str) -> None:
    terms = ipv4_terms(pattern)
    if terms is not None:
        assert covers(terms, address) == matches(pattern, address), (pattern, address, terms)


@settings(max_examples=500, deadline=None)
@given(patterns_near())
def test_patterns_made_from_an_address_agree_with_the_glob(case: tuple[str, str]) -> None:
    _agree(*case)


@settings(max_examples=400, deadline=None)
@given(st.text(pattern_chars, min_size=1, max_size=12), st.lists(addresses, max_size=20))
def test_any_pattern_agrees_with_the_glob_on_any_address(pattern: str, sample: list[str]) -> None:
    for address in sample:
        _agree(pattern, address)


@pytest.mark.parametrize(
    ("pattern", "count"),
    [("10.1.*", 1), ("*", 1), ("192.168.?.5", 1), ("*.1", 1), ("10.0.0.1", 1), ("::1", 0)],
)
def test_common_patterns_are_one_product(pattern: str, count: int) -> None:
    terms = ipv4_terms(pattern)
    assert terms is not None and len(terms) == count


def test_the_terms_of_a_prefix_pattern_are_the_prefix() -> None:
    (term,) = ipv4_terms("10.1.*") or ()
    assert term == (frozenset({10}), frozenset({1}), frozenset(range(256)), frozenset(range(256)))
    (term,) = ipv4_terms("1?.*") or ()
    assert term[0] == frozenset(range(10, 20))  # "1?" is 10..19 only: "1." has no octet


def test_every_address_of_a_small_space_agrees() -> None:
    # All 65,536 addresses 10.0.x.y against patterns whose stars span dots.
    for pattern in ("1*1", "10.0.*5", "*.?.1*", "10*0*", "*.*9", "1??.*", "*2.1*"):
        terms = ipv4_terms(pattern)
        assert terms is not None
        for x in range(256):
            for y in range(256):
                address = f"10.0.{x}.{y}"
                assert covers(terms, address) == matches(pattern, address), (pattern, address)


def test_a_pattern_needing_too_many_products_is_left_to_user_space() -> None:
    assert ipv4_terms("*1?2*3?*") is None  # over MAX_TERMS products
    assert MAX_TERMS == 64
