"""The rule set file <-> the typed rule set: the only place a schema field is written or read.

``to_document`` gives the JSON value ``rinetdc compile`` seals; ``read`` takes
a file's text back, refusing anything ``schema/rules.schema.json`` refuses
(unknown or missing keys, wrong types, numbers out of range, text the
grammar could not have produced) as well as a wrong format, version or
digest.  ``rinetd-run`` and ``rinetdc fmt`` both read through it, so they
agree on what a valid rule set is.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from . import slices
from .canonical import FORMAT, READABLE, VERSION, digest
from .kernel_choice import user_space_reason
from .options import BY_NAME, GLOBAL_OPTIONS, MAX_TIMEOUT, RULE_OPTIONS, quote, unquote
from .ruleset import (
    AccessRule,
    Endpoint,
    GlobalOption,
    Log,
    LogFormat,
    Member,
    Metrics,
    NamedFile,
    Pool,
    Protocol,
    Rule,
    RuleSet,
    RuleSetError,
    Source,
    SourceFile,
)

__all__ = ["load", "read", "to_document"]

T = TypeVar("T")

MAX_SIZE = 256 * 1024 * 1024  # bytes; 100,000 rules take about 40 MiB
# What the grammar lets through, so no value can smuggle a line into `fmt`'s output.
_HOST = re.compile(r"[-0-9A-Za-z_.:]+")
_ADDRESS = re.compile(r"[0-9a-fA-F.:]+")
_SERVICE = re.compile(r"[A-Za-z][-A-Za-z0-9_]*")
_PATTERN = re.compile(r"[0-9a-fA-F.:\[\]*?]+")
_PATH = re.compile(r"[^\x00\r\n]+")
_REASON = re.compile(r"[^\x00-\x1f]+")
_POOL = re.compile(r"[a-zA-Z][-a-zA-Z0-9_]*")


# -- writing -------------------------------------------------------------------


def _access_out(entries: tuple[AccessRule, ...]) -> list[dict[str, Any]]:
    return [{"kind": e.kind, "pattern": e.pattern, "line": e.line, "file": e.file} for e in entries]


def _endpoint_out(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "host": endpoint.host,
        "address": endpoint.address,
        "port": endpoint.port,
        "service": endpoint.service,
        "protocol": endpoint.protocol,
    }


def _connect_out(rule: Rule) -> dict[str, Any]:
    if rule.pool is not None:
        return {"pool": rule.pool, "protocol": rule.connect.protocol}
    return _endpoint_out(rule.connect)


def _pool_out(pool: Pool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "members": [
            {
                "host": m.host,
                "address": m.address,
                "port": m.port,
                "service": m.service,
                "line": m.line,
                "file": m.file,
                "weight": m.weight,
                "backup": m.backup,
                "max_connections": m.max_connections,
            }
            for m in pool.members
        ],
    }


def _setting_out(setting: NamedFile | None) -> dict[str, Any] | None:
    if setting is None:
        return None
    return {"path": setting.path, "line": setting.line, "file": setting.file}


def to_document(ruleset: RuleSet) -> dict[str, Any]:
    """The JSON value of a rule set, without its digest (``canonical.dumps`` seals it).
    Always the current version: an older rule set read back is written as version 4."""
    log, metrics = ruleset.log, ruleset.metrics
    return {
        "format": FORMAT,
        "version": VERSION,
        "resolved": ruleset.resolved,
        "files": [
            {
                "name": f.name,
                "included_from": None
                if f.included_from is None
                else {"file": f.included_from[0], "line": f.included_from[1]},
            }
            for f in ruleset.files or (SourceFile("rinetd.conf", None),)
        ],
        "access": _access_out(ruleset.access),
        "log": {
            "file": _setting_out(log.file),
            "format": log.format,
            "format_line": log.format_line,
            "format_file": None if log.format_line is None else log.format_file,
        },
        "pidfile": _setting_out(ruleset.pidfile),
        "settings": [
            {"name": o.name, "value": o.value, "line": o.line, "file": o.file}
            for o in ruleset.settings
        ],
        "metrics": None
        if metrics is None
        else {**_endpoint_out(metrics.endpoint), "line": metrics.line, "file": metrics.file},
        "rules": [
            {
                "line": rule.line,
                "file": rule.file,
                "bind": _endpoint_out(rule.bind),
                "connect": _connect_out(rule),
                "timeout": rule.timeout,
                "src": None
                if rule.src is None
                else {"host": rule.src.host, "address": rule.src.address},
                "access": _access_out(rule.access),
                "options": dict(rule.options),
                "user_space": rule.user_space,
            }
            for rule in ruleset.rules
        ],
        "pools": [_pool_out(pool) for pool in ruleset.pools],
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


class _Reader:
    """What differs between versions: version 2 places every item in a file too."""

    def __init__(self, version: int, files: int) -> None:
        self.version = version
        self.files = files  # how many files a `file` index may point into

    def keys(self, *keys: str) -> tuple[str, ...]:
        return (*keys, "file") if self.version >= 2 else keys

    def file(self, item: dict[str, Any], where: str) -> int:
        if self.version < 2:
            return 0
        return _integer(item["file"], f"{where}.file", 0, self.files - 1)


def _access_in(value: Any, where: str, version: _Reader) -> tuple[AccessRule, ...]:
    entries = []
    for index, item in enumerate(_list(value, where)):
        at = f"{where}[{index}]"
        item = _fields(item, at, version.keys("kind", "pattern", "line"))
        entries.append(
            AccessRule(
                kind=_choice(item["kind"], f"{at}.kind", ("allow", "deny")),
                pattern=_text(item["pattern"], f"{at}.pattern", _PATTERN),
                line=_line(item["line"], at),
                file=version.file(item, at),
            )
        )
    return tuple(entries)


_ENDPOINT = ("host", "address", "port", "service", "protocol")


def _endpoint_in(value: Any, where: str, keys: tuple[str, ...] = _ENDPOINT) -> Endpoint:
    value = _fields(value, where, keys)
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


def _setting_in(value: Any, where: str, version: _Reader) -> NamedFile:
    value = _fields(value, where, version.keys("path", "line"))
    return NamedFile(
        path=_text(value["path"], f"{where}.path", _PATH),
        line=_line(value["line"], where),
        file=version.file(value, where),
    )


def _log_in(value: Any, version: _Reader) -> Log:
    if version.version < 2:
        value = _fields(value, "log", ("file", "format", "common_line"))
        line, place = value["common_line"], "log.common_line"
        formats: tuple[LogFormat, ...] = ("tab", "common")
    else:
        value = _fields(value, "log", ("file", "format", "format_line", "format_file"))
        line, place = value["format_line"], "log.format_line"
        formats = ("tab", "common", "json")
    log = Log(
        file=_nullable(value["file"], lambda v: _setting_in(v, "log.file", version)),
        format=_choice(value["format"], "log.format", formats),
        format_line=_nullable(line, lambda v: _integer(v, place, 1)),
        format_file=0,
    )
    if (log.format != "tab") != (log.format_line is not None):
        raise _Refused(f"log.format is not 'tab' exactly when {place} is set")
    if version.version >= 2:
        at = _nullable(
            value["format_file"], lambda v: _integer(v, "log.format_file", 0, version.files - 1)
        )
        if (at is None) != (log.format_line is None):
            raise _Refused("log.format_file is set exactly when log.format_line is")
        log = Log(log.file, log.format, log.format_line, at or 0)
    return log


def _options_in(value: Any, where: str) -> tuple[tuple[str, int | str], ...]:
    if not isinstance(value, dict):
        raise _Refused(f"{where} is not an object")
    unknown = sorted(set(value) - set(RULE_OPTIONS))
    if unknown:
        raise _Refused(f"{where} has unknown key {unknown[0]!r}")
    return tuple(
        (name, _option_value(name, value[name], f"{where}.{name}")) for name in sorted(value)
    )


def _option_value(name: str, value: Any, where: str) -> int | str:
    option = BY_NAME[name]
    if option.text:
        if not isinstance(value, str) or unquote(quote(value), option.high) != value:
            raise _Refused(f"{where} is not a text of at most {option.high} characters")
        return value
    if option.words:
        return _choice(value, where, option.words)
    return _integer(value, where, option.low, option.high)


def _connect_in(value: Any, where: str, version: _Reader) -> tuple[Endpoint, str | None]:
    """A rule's connect side: an endpoint, or (version 4) a pool and its protocol."""
    if version.version >= 4 and isinstance(value, dict) and "pool" in value:
        value = _fields(value, where, ("pool", "protocol"))
        name = _text(value["pool"], f"{where}.pool", _POOL)
        protocol: Protocol = _choice(value["protocol"], f"{where}.protocol", ("tcp", "udp"))
        return Endpoint(f"@{name}", None, 0, None, protocol), name
    return _endpoint_in(value, where), None


_MEMBER_OPTIONS = ("weight", "backup", "max_connections")


def _member_in(value: Any, where: str, version: _Reader) -> Member:
    value = _fields(value, where, (*_ENDPOINT[:4], "line", "file", *_MEMBER_OPTIONS))
    # A member's protocol is the rule's: read as an endpoint of either.
    endpoint = _endpoint_in({**{k: value[k] for k in _ENDPOINT[:4]}, "protocol": "tcp"}, where)
    weight, most = BY_NAME["weight"], BY_NAME["max-connections"]
    return Member(
        host=endpoint.host,
        address=endpoint.address,
        port=endpoint.port,
        service=endpoint.service,
        line=_line(value["line"], where),
        file=version.file(value, where),
        weight=_integer(value["weight"], f"{where}.weight", weight.low, weight.high),
        backup=_choice(value["backup"], f"{where}.backup", (False, True)),
        max_connections=_integer(
            value["max_connections"], f"{where}.max_connections", 0, most.high
        ),
    )


def _pools_in(value: Any, version: _Reader) -> tuple[Pool, ...]:
    pools: list[Pool] = []
    for index, item in enumerate(_list(value, "pools")):
        at = f"pools[{index}]"
        item = _fields(item, at, ("name", "members"))
        name = _text(item["name"], f"{at}.name", _POOL)
        if pools and name <= pools[-1].name:
            raise _Refused(f"{at}.name is not after {pools[-1].name!r}: pools are sorted by name")
        members = tuple(
            _member_in(member, f"{at}.members[{number}]", version)
            for number, member in enumerate(_list(item["members"], f"{at}.members"))
        )
        if not members:
            raise _Refused(f"{at}.members is empty")
        keys = [(m.address or m.host, m.port) for m in members]
        if len(set(keys)) != len(keys):
            raise _Refused(f"{at}.members lists a host and port twice")
        pools.append(Pool(name, members))
    return tuple(pools)


def _rule_in(value: Any, where: str, version: _Reader) -> Rule:
    keys: tuple[str, ...] = ("line", "bind", "connect", "timeout", "src", "access")
    if version.version >= 2:
        keys = (*keys, "file", "options")
    if version.version >= 3:
        keys = (*keys, "user_space")
    value = _fields(value, where, keys)
    connect, pool = _connect_in(value["connect"], f"{where}.connect", version)
    return Rule(
        line=_line(value["line"], where),
        bind=_endpoint_in(value["bind"], f"{where}.bind"),
        connect=connect,
        pool=pool,
        timeout=_integer(value["timeout"], f"{where}.timeout", 1, MAX_TIMEOUT),
        src=_nullable(value["src"], lambda v: _source_in(v, f"{where}.src")),
        access=_access_in(value["access"], f"{where}.access", version),
        options=_options_in(value["options"], f"{where}.options") if version.version >= 2 else (),
        file=version.file(value, where),
        user_space=_nullable(
            value.get("user_space"), lambda v: _text(v, f"{where}.user_space", _REASON)
        ),
    )


def _files_in(value: Any) -> tuple[SourceFile, ...]:
    files = []
    for index, item in enumerate(_list(value, "files")):
        at = f"files[{index}]"
        item = _fields(item, at, ("name", "included_from"))
        included = item["included_from"]
        if (index == 0) != (included is None):
            raise _Refused(f"{at}.included_from is null exactly for the first file")
        place = None
        if included is not None:
            included = _fields(included, f"{at}.included_from", ("file", "line"))
            place = (
                _integer(included["file"], f"{at}.included_from.file", 0, index - 1),
                _line(included["line"], f"{at}.included_from"),
            )
        files.append(SourceFile(_text(item["name"], f"{at}.name", _PATH), place))
    if not files:
        raise _Refused("files is empty")
    return tuple(files)


def _settings_in(value: Any, version: _Reader) -> tuple[GlobalOption, ...]:
    settings = []
    for index, item in enumerate(_list(value, "settings")):
        at = f"settings[{index}]"
        item = _fields(item, at, ("name", "value", "line", "file"))
        name = _choice(item["name"], f"{at}.name", GLOBAL_OPTIONS)
        settings.append(
            GlobalOption(
                name=name,
                value=_option_value(name, item["value"], f"{at}.value"),
                line=_line(item["line"], at),
                file=version.file(item, at),
            )
        )
    return tuple(settings)


def _metrics_in(value: Any, version: _Reader) -> Metrics:
    endpoint = _endpoint_in(value, "metrics", (*_ENDPOINT, "line", "file"))
    if endpoint.protocol != "tcp":
        raise _Refused("metrics.protocol must be 'tcp'")
    return Metrics(endpoint, _line(value["line"], "metrics"), version.file(value, "metrics"))


_TOP = ("format", "version", "resolved", "access", "log", "pidfile", "rules", "digest")
_TOP_2 = (*_TOP, "files", "settings", "metrics")
_TOP_4 = (*_TOP_2, "pools")


def _ruleset_in(document: dict[str, Any], number: int) -> RuleSet:
    top = _TOP if number < 2 else _TOP_2 if number < 4 else _TOP_4
    document = _fields(document, "the document", top)
    files = _files_in(document["files"]) if number >= 2 else ()
    version = _Reader(number, len(files))
    ruleset = RuleSet(
        resolved=_choice(document["resolved"], "resolved", (True, False)),
        access=_access_in(document["access"], "access", version),
        log=_log_in(document["log"], version),
        pidfile=_nullable(document["pidfile"], lambda v: _setting_in(v, "pidfile", version)),
        rules=tuple(
            _rule_in(rule, f"rules[{index}]", version)
            for index, rule in enumerate(_list(document["rules"], "rules"))
        ),
        settings=_settings_in(document["settings"], version) if number >= 2 else (),
        metrics=_nullable(document.get("metrics"), lambda v: _metrics_in(v, version)),
        files=files,
        pools=_pools_in(document["pools"], version) if number >= 4 else (),
    )
    names = {pool.name for pool in ruleset.pools}
    for index, rule in enumerate(ruleset.rules):
        if rule.pool is not None and rule.pool not in names:
            raise _Refused(f"rules[{index}].connect.pool names no pool of pools")
    if number >= 3:
        return ruleset
    # Older files do not say which rules need user space: decided as rinetdc would now.
    return replace(
        ruleset,
        rules=tuple(
            replace(rule, user_space=user_space_reason(ruleset, rule)) for rule in ruleset.rules
        ),
    )


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read(text: str, name: str = "rule set") -> RuleSet:
    """The rule set in ``text``; RuleSetError unless it is a sealed rinetdc rule set."""
    return _checked(lambda: slices.loads(text, _no_constant), name)


def _checked(parse: Callable[[], Any], name: str) -> RuleSet:
    """The rule set ``parse`` gives, refused as the JSON, the format or the schema says;
    the parsed document is let go of in slices either way."""
    try:
        document = parse()
    except UnicodeDecodeError:
        raise RuleSetError(f"{name} is not UTF-8 text") from None
    except RecursionError:
        raise RuleSetError(f"{name} is not valid JSON: nested too deep") from None
    except ValueError as error:  # JSONDecodeError, and digit strings past Python's limit
        raise RuleSetError(f"{name} is not valid JSON: {error}") from None
    try:
        return _sealed(document, name)
    finally:
        slices.release(document)


def _sealed(document: Any, name: str) -> RuleSet:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RuleSetError(f"{name} is not a rinetdc rule set")
    number = document.get("version")
    if number not in READABLE or type(number) is not int:
        raise RuleSetError(
            f"{name} has rule set version {number!r:.20}; this version reads "
            f"{' and '.join(map(str, READABLE))}: compile it again with a matching rinetdc"
        )
    try:
        sealed = document.get("digest") == digest(document)
    except (ValueError, RecursionError):  # a number too large to write back out
        sealed = False
    if not sealed:
        raise RuleSetError(f"{name} was changed after it was compiled (digest mismatch)")
    try:
        return replace(_ruleset_in(document, number), digest=document["digest"])
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
    return _checked(lambda: slices.load_bytes(data, _no_constant), path)
