"""Reading the frozen rule set: refuse anything that is not exactly what rinetdc wrote.

``load`` checks JSON, format, version, digest and shape and returns typed
rules; ``resolve`` fills in host name addresses as rinetd does at start and at
each reload.  Nothing here opens a socket.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .access import AccessRule
from .canonical import FORMAT, VERSION, digest

__all__ = [
    "Endpoint",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "load",
    "open_document",
    "parse",
    "resolve",
    "system_resolver",
]


class RuleSetError(Exception):
    """The rule set file cannot be used; the message says why, for an operator."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # as written, for the log
    address: str | None  # numeric; None until resolved
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class Rule:
    line: int
    bind: Endpoint
    connect: Endpoint
    timeout: int
    src_host: str | None
    src_address: str | None
    access: tuple[AccessRule, ...]

    @property
    def listener(self) -> tuple[str, str, int]:
        """What a listening socket is: protocol, numeric address, port."""
        return (self.bind.protocol, self.bind.address or self.bind.host, self.bind.port)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    access: tuple[AccessRule, ...]
    logfile: str | None
    logcommon: bool
    pidfile: str | None


def _access(values: list[dict[str, Any]]) -> tuple[AccessRule, ...]:
    return tuple(AccessRule(v["kind"], str(v["pattern"])) for v in values)


def _endpoint(value: dict[str, Any]) -> Endpoint:
    port = value["port"]
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} out of range")
    if value["protocol"] not in ("tcp", "udp"):
        raise ValueError(f"protocol {value['protocol']!r}")
    return Endpoint(str(value["host"]), value["address"], port, value["protocol"])


def open_document(text: str, name: str = "rule set") -> dict[str, Any]:
    """The JSON value of a sealed rinetdc rule set; RuleSetError if it is anything else."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RuleSetError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RuleSetError(f"{name} is not a rinetdc rule set")
    if document.get("version") != VERSION:
        raise RuleSetError(
            f"{name} has rule set version {document.get('version')!r}; "
            f"this version reads {VERSION}: compile it again with a matching rinetdc"
        )
    if document.get("digest") != digest(document):
        raise RuleSetError(f"{name} was changed after it was compiled (digest mismatch)")
    return document


def parse(text: str, name: str = "rule set") -> RuleSet:
    """The rule set in ``text``; RuleSetError if it is not a sealed rinetdc rule set."""
    document = open_document(text, name)
    try:
        rules = tuple(
            Rule(
                line=int(r["line"]),
                bind=_endpoint(r["bind"]),
                connect=_endpoint(r["connect"]),
                timeout=int(r["timeout"]),
                src_host=r["src"]["host"] if r["src"] else None,
                src_address=r["src"]["address"] if r["src"] else None,
                access=_access(r["access"]),
            )
            for r in document["rules"]
        )
        log = document["log"]
        return RuleSet(
            rules=rules,
            access=_access(document["access"]),
            logfile=log["file"]["path"] if log["file"] else None,
            logcommon=log["format"] == "common",
            pidfile=document["pidfile"]["path"] if document["pidfile"] else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RuleSetError(f"{name} does not follow the rule set schema: {error!r}") from None


def load(path: str) -> RuleSet:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise RuleSetError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleSetError(f"{path} is not UTF-8 text") from None
    return parse(text, path)


def system_resolver(host: str) -> str | None:
    """The first address getaddrinfo gives, as rinetd uses."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return str(found[0][4][0]) if found else None


def _numeric(host: str, lookup: Callable[[str], str | None]) -> str:
    if host == "0":
        return "0.0.0.0"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    found = lookup(host)
    if found is None:
        raise RuleSetError(f'cannot resolve host "{host}"')
    return found


def resolve(ruleset: RuleSet, lookup: Callable[[str], str | None] = system_resolver) -> RuleSet:
    """Every host name replaced by its address now, as rinetd does at start and reload."""
    cache: dict[str, str] = {}

    def numeric(host: str, line: int) -> str:
        if host not in cache:
            try:
                cache[host] = _numeric(host, lookup)
            except RuleSetError as error:
                raise RuleSetError(f"rule of line {line}: {error}") from None
        return cache[host]

    rules = []
    for rule in ruleset.rules:
        bind = replace(rule.bind, address=numeric(rule.bind.host, rule.line))
        connect = replace(rule.connect, address=numeric(rule.connect.host, rule.line))
        src = numeric(rule.src_host, rule.line) if rule.src_host else None
        rules.append(replace(rule, bind=bind, connect=connect, src_address=src))
    return replace(ruleset, rules=tuple(rules))
