"""Two rule sets compared by what they do, not by their text.  A pure function.

Rules are matched by their bind (protocol, address, port); for each, what
changed is said in the operator's words: the connect target, `src`, the UDP
timeout, each option of the extended language as the rule runs with it (its
own, else the global statement's, else the default), and access lists that
now admit more or fewer clients, with the patterns that make it so.  Access
lists are compared as rinetd decides: the allows are a set (any one admits) and
so are the denies, and an empty allow list admits everyone.  Global access
changes, log and pid file changes are said once.  Nothing is said for what
does not change behaviour: order of rules or lines, comments, spacing, source
lines, a service name for its port, an option written with its default value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rinetd_run.options import OPTIONS, applies
from rinetd_run.ruleset import AccessRule, Endpoint, Member, Rule, RuleSet, effective

from .patterns import covered

__all__ = ["Change", "compare"]


@dataclass(frozen=True, slots=True)
class Change:
    kind: (
        str  # rule-added, rule-removed, connect, src, timeout, option, access, global-access,
        # pool, logfile, log format, pidfile, max-connections, metrics
    )
    where: str  # the bind (`0.0.0.0 80/tcp`), `global`, `log` or `pidfile`
    text: str  # what changed, for people
    widens: bool | None = None  # access: True admits more, False fewer; None otherwise


def _host(endpoint: Endpoint) -> str:
    """The address as compared: numeric when written as one (`0` is 0.0.0.0), else the name."""
    literal = ":" in endpoint.host or endpoint.host[0].isdigit()
    return endpoint.address if endpoint.address and literal else endpoint.host


def _endpoint(endpoint: Endpoint) -> str:
    if endpoint.host.startswith("@"):  # a pool: `@web/tcp`
        return f"{endpoint.host}/{endpoint.protocol}"
    return f"{_host(endpoint)} {endpoint.port}/{endpoint.protocol}"


def _bind_key(rule: Rule) -> tuple[str, str, int]:
    return (rule.bind.protocol, _host(rule.bind), rule.bind.port)


def _patterns(entries: Sequence[AccessRule], kind: str) -> frozenset[str]:
    return frozenset(e.pattern for e in entries if e.kind == kind)


def _access(old: Sequence[AccessRule], new: Sequence[AccessRule], where: str) -> list[Change]:
    """What a change of access lines does: each pattern added or removed, and whether
    it lets more clients in or fewer."""
    kind = "global-access" if where == "global" else "access"
    scope = " (every rule)" if where == "global" else ""
    changes: list[Change] = []

    def say(text: str, widens: bool) -> None:
        changes.append(Change(kind, where, text + scope, widens))

    old_allows, new_allows = _patterns(old, "allow"), _patterns(new, "allow")
    old_denies, new_denies = _patterns(old, "deny"), _patterns(new, "deny")
    if old_allows and not new_allows:
        say("admits everyone now: no allow line is left", True)
    elif new_allows and not old_allows:
        say(f"admits only what it allows now: {', '.join(sorted(new_allows))}", False)
    else:
        for pattern in _new(new_allows, old_allows):
            say(f"admits more: allow {pattern}", True)
        for pattern in _new(old_allows, new_allows):
            say(f"admits fewer: no more allow {pattern}", False)
    for pattern in _new(new_denies, old_denies):
        say(f"admits fewer: deny {pattern}", False)
    for pattern in _new(old_denies, new_denies):
        say(f"admits more: no more deny {pattern}", True)
    return changes


def _new(these: frozenset[str], those: frozenset[str]) -> list[str]:
    """The patterns of ``these`` that match some address no pattern of ``those`` does."""
    return [p for p in sorted(these - those) if not covered(p, those)]


def _options(old: RuleSet, old_rule: Rule, new: RuleSet, new_rule: Rule) -> list[Change]:
    before, after = asdict(effective(old, old_rule)), asdict(effective(new, new_rule))
    where = _endpoint(new_rule.bind)
    protocol = new_rule.bind.protocol
    return [
        Change(
            "option",
            where,
            f"{o.name} {_word(before[o.field])} -> {_word(after[o.field])}",
        )
        for o in OPTIONS
        if o.scope != "member"
        and (new_rule.pool is not None or not o.pool)
        and before[o.field] != after[o.field]
        and applies(o.name, protocol)
    ]


def _member_words(member: Member) -> dict[str, str]:
    return {
        "weight": str(member.weight),
        "backup": "on" if member.backup else "off",
        "max-connections": str(member.max_connections or "none"),
    }


def _pools(old: RuleSet, new: RuleSet) -> list[Change]:
    """Members added, removed, or with other options; a pool is its members (a member is
    its host as written and its port)."""
    changes: list[Change] = []
    before = {p.name: {m.key: m for m in p.members} for p in old.pools}
    after = {p.name: {m.key: m for m in p.members} for p in new.pools}
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name, {}), after.get(name, {})
        where = f"pool {name}"
        for key in sorted(was.keys() | now.keys()):
            member = f"{key[0]} {key[1]}"
            if key not in now:
                changes.append(Change("pool", where, f"member removed: {member}"))
            elif key not in was:
                changes.append(Change("pool", where, f"member added: {member}"))
            else:
                old_words, new_words = _member_words(was[key]), _member_words(now[key])
                changes += [
                    Change("pool", where, f"member {member}: {o} {old_words[o]} -> {new_words[o]}")
                    for o in old_words
                    if old_words[o] != new_words[o]
                ]
    return changes


def _word(value: object) -> str:
    """An option's value as the configuration writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)


def _rule(old: Rule, new: Rule) -> list[Change]:
    where = _endpoint(new.bind)
    changes = []
    if _endpoint(old.connect) != _endpoint(new.connect):
        text = f"connect {_endpoint(old.connect)} -> {_endpoint(new.connect)}"
        changes.append(Change("connect", where, text))
    old_src = old.src.host if old.src else None
    new_src = new.src.host if new.src else None
    if old_src != new_src:
        changes.append(Change("src", where, f"src {old_src or 'none'} -> {new_src or 'none'}"))
    udp = "udp" in (new.bind.protocol, new.connect.protocol, old.connect.protocol)
    if udp and old.timeout != new.timeout:
        changes.append(Change("timeout", where, f"timeout {old.timeout} -> {new.timeout} s"))
    return changes + _access(old.access, new.access, where)


def _setting(old: str | None, new: str | None, kind: str) -> list[Change]:
    if old == new:
        return []
    return [Change(kind, kind, f"{kind} {old or 'none'} -> {new or 'none'}")]


def compare(old: RuleSet, new: RuleSet) -> list[Change]:
    """Every difference in behaviour between ``old`` and ``new``, rules in bind order."""
    before = {_bind_key(rule): rule for rule in old.rules}
    after = {_bind_key(rule): rule for rule in new.rules}
    changes = _access(old.access, new.access, "global")
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            rule = before[key]
            text = f"removed: {_endpoint(rule.bind)} -> {_endpoint(rule.connect)}"
            changes.append(Change("rule-removed", _endpoint(rule.bind), text))
        elif key not in before:
            rule = after[key]
            text = f"added: {_endpoint(rule.bind)} -> {_endpoint(rule.connect)}"
            changes.append(Change("rule-added", _endpoint(rule.bind), text))
        else:
            changes += _rule(before[key], after[key])
            changes += _options(old, before[key], new, after[key])
    changes += _pools(old, new)
    changes += _setting(
        str(old.max_connections or "none"), str(new.max_connections or "none"), "max-connections"
    )
    changes += _setting(
        _endpoint(old.metrics.endpoint) if old.metrics else None,
        _endpoint(new.metrics.endpoint) if new.metrics else None,
        "metrics",
    )
    changes += _setting(old.logfile, new.logfile, "logfile")
    if old.logfile and new.logfile:  # without a log file the format does nothing
        changes += _setting(old.log.format, new.log.format, "log format")
    changes += _setting(
        old.pidfile.path if old.pidfile else None,
        new.pidfile.path if new.pidfile else None,
        "pidfile",
    )
    return changes
