"""The rule set file <-> the typed rule set: the only place a schema field is written or read.

``to_document`` gives the JSON value ``rinetdc compile`` seals; ``read`` takes
a file's text back, refusing anything ``schema/rules.schema.json`` refuses
(unknown or missing keys, wrong types, numbers out of range, text the
grammar could not have produced) as well as a wrong format, version or
digest.  ``rinetd-run`` and ``rinetdc fmt`` both read through it, so they
agree on what a valid rule set is.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from .canonical import FORMAT, VERSION, digest
from .ruleset import (
    AccessRule,
    Endpoint,
    Log,
    Rule,
    RuleSet,
    RuleSetError,
    Setting,
    Source,
)

__all__ = ["load", "read", "to_document"]

T = TypeVar("T")

MAX_TIMEOUT = 2**31 - 1  # rinetd stores it in an int
MAX_SIZE = 256 * 1024 * 1024  # bytes; 100,000 rules take about 40 MiB
# What the grammar lets through, so no value can smuggle a line into `fmt`'s output.
_HOST = re.compile(r"[-0-9A-Za-z_.:]+")
_ADDRESS = re.compile(r"[0-9a-fA-F.:]+")
_SERVICE = re.compile(r"[A-Za-z][-A-Za-z0-9_]*")
_PATTERN = re.compile(r"[0-9a-fA-F.:\[\]*?]+")
_PATH = re.compile(r"[^\x00\r\n]+")


# -- writing -------------------------------------------------------------------


def _access_out(entries: tuple[AccessRule, ...]) -> list[dict[str, Any]]:
    return [{"kind": e.kind, "pattern": e.pattern, "line": e.line} for e in entries]


def _endpoint_out(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "host": endpoint.host,
        "address": endpoint.address,
        "port": endpoint.port,
        "service": endpoint.service,
        "protocol": endpoint.protocol,
    }


def _setting_out(setting: Setting | None) -> dict[str, Any] | None:
    return None if setting is None else {"path": setting.path, "line": setting.line}


def to_document(ruleset: RuleSet) -> dict[str, Any]:
    """The JSON value of a rule set, without its digest (``canonical.dumps`` seals it)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "resolved": ruleset.resolved,
        "access": _access_out(ruleset.access),
        "log": {
            "file": _setting_out(ruleset.log.file),
            "format": ruleset.log.format,
            "common_line": ruleset.log.common_line,
        },
        "pidfile": _setting_out(ruleset.pidfile),
        "rules": [
            {
                "line": rule.line,
                "bind": _endpoint_out(rule.bind),
                "connect": _endpoint_out(rule.connect),
                "timeout": rule.timeout,
                "src": None
                if rule.src is None
                else {"host": rule.src.host, "address": rule.src.address},
                "access": _access_out(rule.access),
            }
            for rule in ruleset.rules
        ],
    }


# -- reading: each check says where in the document it failed ------------------


class _Refused(Exception):
    pass


def _fields(value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Refused(f"{where} is not an object")
    missing = [key for key in keys if key not in value]
    if missing:
        raise _Refused(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise _Refused(f"{where} has unknown key {unknown[0]!r}")
    return value


def _integer(value: Any, where: str, low: int, high: int | None = None) -> int:
    # As JSON Schema counts them: 1.0 is an integer, true is not.
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"at least {low}"
        raise _Refused(f"{where} must be an integer {bounds}")
    return value


def _text(value: Any, where: str, shape: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise _Refused(f"{where} is not a valid value: {value!r:.60}")
    return value


def _choice(value: Any, where: str, choices: tuple[T, ...]) -> T:
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    raise _Refused(f"{where} must be one of {', '.join(map(repr, choices))}")


def _nullable(value: Any, read: Callable[[Any], T]) -> T | None:
    return None if value is None else read(value)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Refused(f"{where} is not a list")
    return value


def _line(value: Any, where: str) -> int:
    return _integer(value, f"{where}.line", 1)


def _access_in(value: Any, where: str) -> tuple[AccessRule, ...]:
    entries = []
    for index, item in enumerate(_list(value, where)):
        at = f"{where}[{index}]"
        item = _fields(item, at, ("kind", "pattern", "line"))
        entries.append(
            AccessRule(
                kind=_choice(item["kind"], f"{at}.kind", ("allow", "deny")),
                pattern=_text(item["pattern"], f"{at}.pattern", _PATTERN),
                line=_line(item["line"], at),
            )
        )
    return tuple(entries)


def _endpoint_in(value: Any, where: str) -> Endpoint:
    value = _fields(value, where, ("host", "address", "port", "service", "protocol"))
    return Endpoint(
        host=_text(value["host"], f"{where}.host", _HOST),
        address=_nullable(value["address"], lambda v: _text(v, f"{where}.address", _ADDRESS)),
        port=_integer(value["port"], f"{where}.port", 1, 65535),
        service=_nullable(value["service"], lambda v: _text(v, f"{where}.service", _SERVICE)),
        protocol=_choice(value["protocol"], f"{where}.protocol", ("tcp", "udp")),
    )


def _source_in(value: Any, where: str) -> Source:
    value = _fields(value, where, ("host", "address"))
    return Source(
        host=_text(value["host"], f"{where}.host", _HOST),
        address=_nullable(value["address"], lambda v: _text(v, f"{where}.address", _ADDRESS)),
    )


def _setting_in(value: Any, where: str) -> Setting:
    value = _fields(value, where, ("path", "line"))
    return Setting(
        path=_text(value["path"], f"{where}.path", _PATH), line=_line(value["line"], where)
    )


def _log_in(value: Any) -> Log:
    value = _fields(value, "log", ("file", "format", "common_line"))
    log = Log(
        file=_nullable(value["file"], lambda v: _setting_in(v, "log.file")),
        format=_choice(value["format"], "log.format", ("tab", "common")),
        common_line=_nullable(value["common_line"], lambda v: _integer(v, "log.common_line", 1)),
    )
    if (log.format == "common") != (log.common_line is not None):
        raise _Refused("log.format is 'common' exactly when log.common_line is set")
    return log


def _rule_in(value: Any, where: str) -> Rule:
    value = _fields(value, where, ("line", "bind", "connect", "timeout", "src", "access"))
    return Rule(
        line=_line(value["line"], where),
        bind=_endpoint_in(value["bind"], f"{where}.bind"),
        connect=_endpoint_in(value["connect"], f"{where}.connect"),
        timeout=_integer(value["timeout"], f"{where}.timeout", 1, MAX_TIMEOUT),
        src=_nullable(value["src"], lambda v: _source_in(v, f"{where}.src")),
        access=_access_in(value["access"], f"{where}.access"),
    )


_TOP = ("format", "version", "resolved", "access", "log", "pidfile", "rules", "digest")


def _ruleset_in(document: dict[str, Any]) -> RuleSet:
    document = _fields(document, "the document", _TOP)
    return RuleSet(
        resolved=_choice(document["resolved"], "resolved", (True, False)),
        access=_access_in(document["access"], "access"),
        log=_log_in(document["log"]),
        pidfile=_nullable(document["pidfile"], lambda v: _setting_in(v, "pidfile")),
        rules=tuple(
            _rule_in(rule, f"rules[{index}]")
            for index, rule in enumerate(_list(document["rules"], "rules"))
        ),
    )


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read(text: str, name: str = "rule set") -> RuleSet:
    """The rule set in ``text``; RuleSetError unless it is a sealed rinetdc rule set."""
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise RuleSetError(f"{name} is not valid JSON: nested too deep") from None
    except ValueError as error:  # JSONDecodeError, and digit strings past Python's limit
        raise RuleSetError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RuleSetError(f"{name} is not a rinetdc rule set")
    if document.get("version") != VERSION or type(document.get("version")) is not int:
        raise RuleSetError(
            f"{name} has rule set version {document.get('version')!r:.20}; "
            f"this version reads {VERSION}: compile it again with a matching rinetdc"
        )
    try:
        sealed = document.get("digest") == digest(document)
    except (ValueError, RecursionError):  # a number too large to write back out
        sealed = False
    if not sealed:
        raise RuleSetError(f"{name} was changed after it was compiled (digest mismatch)")
    try:
        return _ruleset_in(document)
    except _Refused as error:
        raise RuleSetError(f"{name} does not follow the rule set schema: {error}") from None


def _read_file(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_SIZE: a FIFO or device would block or
    never end, and the rule set is read again at every reload."""
    # O_NONBLOCK: opening a FIFO without a writer must not wait for one.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise RuleSetError(f"{path} is not a regular file")
        if found.st_size > MAX_SIZE:
            raise RuleSetError(f"{path} is larger than {MAX_SIZE // (1024 * 1024)} MiB")
        data = handle.read(MAX_SIZE + 1)
    if len(data) > MAX_SIZE:  # it grew while being read
        raise RuleSetError(f"{path} is larger than {MAX_SIZE // (1024 * 1024)} MiB")
    return data


def load(path: str) -> RuleSet:
    """The rule set in the file at ``path``; RuleSetError if it cannot be read or used."""
    try:
        data = _read_file(path)
    except OSError as error:
        raise RuleSetError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleSetError(f"{path} is not UTF-8 text") from None
    return read(text, path)
