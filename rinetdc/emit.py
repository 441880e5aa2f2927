"""Validated model -> the frozen JSON rule set (a pure function), and back.

``to_document`` builds the JSON value; ``rinetd_run.canonical`` turns it into
bytes with the digest, the same on every machine.  ``from_document`` reads a
document back into the model, which ``fmt`` uses to write rinetd.conf again.
"""

from __future__ import annotations

from typing import Any

from rinetd_run.canonical import FORMAT, VERSION, dumps

from . import model

__all__ = ["from_document", "render", "to_document"]


def _endpoint(endpoint: model.Endpoint) -> dict[str, Any]:
    return {
        "host": endpoint.host,
        "address": endpoint.address,
        "port": endpoint.port,
        "service": endpoint.service,
        "protocol": endpoint.protocol,
    }


def _access(entries: tuple[model.AccessEntry, ...]) -> list[dict[str, Any]]:
    return [{"kind": e.kind, "pattern": e.pattern, "line": e.line} for e in entries]


def _setting(setting: model.Setting | None) -> dict[str, Any] | None:
    return None if setting is None else {"path": setting.value, "line": setting.line}


def to_document(ruleset: model.RuleSet, *, resolved: bool) -> dict[str, Any]:
    """The JSON value of a rule set (without its digest)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "resolved": resolved,
        "access": _access(ruleset.access),
        "log": {
            "file": _setting(ruleset.logfile),
            "format": "common" if ruleset.logcommon is not None else "tab",
            "common_line": ruleset.logcommon,
        },
        "pidfile": _setting(ruleset.pidfile),
        "rules": [
            {
                "line": rule.line,
                "bind": _endpoint(rule.bind),
                "connect": _endpoint(rule.connect),
                "timeout": rule.timeout,
                "src": None
                if rule.src_host is None
                else {"host": rule.src_host, "address": rule.src_address},
                "access": _access(rule.access),
            }
            for rule in ruleset.rules
        ],
    }


def render(ruleset: model.RuleSet, *, resolved: bool) -> str:
    """The file text of the frozen rule set."""
    return dumps(to_document(ruleset, resolved=resolved))


def _endpoint_back(value: dict[str, Any]) -> model.Endpoint:
    return model.Endpoint(
        host=value["host"],
        address=value["address"],
        port=value["port"],
        service=value["service"],
        protocol=value["protocol"],
    )


def _access_back(values: list[dict[str, Any]]) -> tuple[model.AccessEntry, ...]:
    return tuple(model.AccessEntry(v["kind"], v["pattern"], v["line"]) for v in values)


def _setting_back(value: dict[str, Any] | None) -> model.Setting | None:
    return None if value is None else model.Setting(value["path"], value["line"])


def from_document(document: dict[str, Any]) -> model.RuleSet:
    """The model of a document that already passed the schema and digest checks."""
    return model.RuleSet(
        rules=tuple(
            model.Rule(
                line=r["line"],
                bind=_endpoint_back(r["bind"]),
                connect=_endpoint_back(r["connect"]),
                timeout=r["timeout"],
                src_host=r["src"]["host"] if r["src"] else None,
                src_address=r["src"]["address"] if r["src"] else None,
                access=_access_back(r["access"]),
            )
            for r in document["rules"]
        ),
        access=_access_back(document["access"]),
        logfile=_setting_back(document["log"]["file"]),
        logcommon=document["log"]["common_line"],
        pidfile=_setting_back(document["pidfile"]),
    )
