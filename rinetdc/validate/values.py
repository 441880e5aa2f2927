"""Value readers: addresses, ports, numbers, option values, each checked as rinetd
0.73 reads it (or as the option table says), with the diagnostics of a bad one."""

from __future__ import annotations

import ipaddress

from rinetd_run.options import BY_NAME, MAX_TIMEOUT, unquote
from rinetd_run.ruleset import (
    Endpoint,
    Source,
)

from .. import ast
from ..diagnostics import Span, make
from ..resolve import Resolver, service_port
from .scopes import Found

__all__ = [
    "GLOBS",
    "address_family",
    "read_endpoint",
    "read_option_value",
    "read_source",
    "read_timeout",
]


GLOBS = frozenset("*?")


def read_option_value(
    name: str, text: str, span: Span, *, statement: bool = False
) -> tuple[int | str | None, Found]:
    """An extended option's or setting's value, checked against its range or words; a
    global ``statement`` is written `name value`, an option `name=value`."""
    option = BY_NAME[name]
    if option.text:
        value = unquote(text, option.high)
        if value is not None:
            return value, []
        return None, [
            make("E013", f"{name} takes a quoted text, not {_shown(text)}", span, option.hint())
        ]
    if option.words:
        if text in option.words:
            return text, []
        words = " or ".join(option.words)
        hint = option.hint(statement)
        return None, [make("E013", f"{name} is {words}, not '{_shown(text)}'", span, hint)]
    number = _bounded(text, option.high) if text.isdigit() else None
    if number is not None and number >= option.low:
        return number, []
    what = "a whole number" if not text.isdigit() else "out of range"
    return None, [
        make("E007", f"{name} {_shown(text)} is {what}", span, hint=option.hint(statement))
    ]


def _bounded(digits: str, high: int) -> int | None:
    """The value of a digit string of any length and zero padding, or None above ``high``
    (without ever building a number of thousands of digits)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(high)):
        return None
    value = int(significant)
    return value if value <= high else None


def _shown(text: str) -> str:
    """A value as a message quotes it: long ones cut, with their length."""
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def read_timeout(option: ast.Option) -> tuple[int, Found]:
    timeout = _bounded(option.value, MAX_TIMEOUT)
    if timeout is not None:
        return timeout, []
    problem = make(
        "E007",
        f"timeout {_shown(option.value)} is out of range",
        option.value_span,
        hint=f"use 1..{MAX_TIMEOUT} seconds (0 means the default, 72)",
    )
    return 0, [problem]


def read_source(option: ast.Option, resolver: Resolver) -> tuple[Source, Found]:
    written = ast.Address(option.value, ast.address_kind(option.value), option.value_span)
    address, found = _address(written, resolver)
    return Source(option.value, address), found


def address_family(address: str) -> int:
    """4 or 6, for an address already in numeric form."""
    return 6 if ":" in address else 4


def _plain_ipv4(text: str) -> bool:
    """True for a dotted quad (as the grammar gives it) that is already canonical: the
    common case, checked without ``ipaddress``, which was a tenth of a large compile."""
    return all(len(p) <= 3 and (p == "0" or p[0] != "0") and int(p) <= 255 for p in text.split("."))


def read_endpoint(
    address: ast.Address, port: ast.Port, resolver: Resolver
) -> tuple[Endpoint | None, Found]:
    numeric, found = _address(address, resolver)
    number, problems = _port(port)
    found += problems
    if number is None or found:
        return None, found
    endpoint = Endpoint(
        host=address.text,
        address=numeric,
        port=number,
        service=None if port.text.isdigit() else port.text,
        protocol="udp" if port.protocol == "udp" else "tcp",
    )
    return endpoint, found


def _address(address: ast.Address, resolver: Resolver) -> tuple[str | None, Found]:
    """The numeric form of an address; None (with a diagnostic, if it is wrong) otherwise."""
    text, span = address.text, address.span
    if address.kind is ast.AddressKind.ZERO:
        return "0.0.0.0", []
    if address.kind is ast.AddressKind.IPV4 and _plain_ipv4(text):
        return text, []
    if address.kind in (ast.AddressKind.IPV4, ast.AddressKind.IPV6):
        try:
            return str(ipaddress.ip_address(text)), []
        except ValueError:
            hint = None
            if address.kind is ast.AddressKind.IPV4:
                hint = "four numbers 0..255 without leading zeros, e.g. 10.0.0.1"
            return None, [make("E002", f"'{text}' is not a valid IP address", span, hint=hint)]
    labels = text.split(".")
    why = None
    if len(text) > 253 or any(len(label) > 63 for label in labels):
        why = "labels are at most 63 characters, names at most 253"
    elif any(label.startswith("-") for label in labels):
        why = "a label may not begin with '-' (rinetd 0.73 refuses the line as a syntax error)"
    if why is not None:
        return None, [make("E003", f"'{text}' is not a valid host name", span, hint=why)]
    numeric = resolver.resolve(text)
    if numeric is None and resolver.enabled:
        problem = make(
            "E004",
            f"host name '{text}' does not resolve",
            span,
            hint="rinetd resolves names at start; check the name, "
            "or use --no-resolve where the production DNS is not reachable",
        )
        return None, [problem]
    return numeric, []


def _port(port: ast.Port) -> tuple[int | None, Found]:
    if port.text.isdigit():
        number = _bounded(port.text, 65535)
        if number:
            return number, []
        problem = make(
            "E006",
            f"port {_shown(port.text)} is out of range",
            port.span,
            hint="ports are 1..65535 (rinetd 0.73 would silently use another port)",
        )
        return None, [problem]
    service = service_port(port.text, port.protocol)
    if service is not None:
        return service, []
    other = "udp" if port.protocol == "tcp" else "tcp"
    hint = (
        f"'{port.text}' is a {other} service: add /{other} or use its number"
        if service_port(port.text, other)
        else "use a port number or a name from /etc/services"
    )
    return None, [
        make("E005", f"unknown {port.protocol} service '{port.text}'", port.span, hint=hint)
    ]
