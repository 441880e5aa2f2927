"""Log lines, byte-compatible with rinetd 0.73 (reference section 3), and the word each
failure gets.  Pure functions.

Dates are local time with English month names whatever the locale, as the C
locale gives them; the tab format keeps 0.73's trailing space after the time.
"""

from __future__ import annotations

import errno
import functools
import time
from typing import NamedTuple

from .ruleset import Rule

__all__ = [
    "RESOURCE_ERRORS",
    "Event",
    "common_line",
    "connect_failure",
    "json_line",
    "rule_event",
    "tab_line",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Result words.  "local" is the backend, "remote" the client, as in 0.73.
OPENED = "opened"
LOCAL_CLOSED = "done-local-closed"
REMOTE_CLOSED = "done-remote-closed"
NOT_ALLOWED = "not-allowed"
DENIED = "denied"
ACCEPT_FAILED = "accept-failed -"
LIMIT_EXCEEDED = "limit-exceeded"  # rinetd-run: a rule's max-connections(-per-client)
IDLE_TIMEOUT = "done-idle-timeout"  # rinetd-run: idle-timeout ended the connection
LOCAL_SOCKET_FAILED = "local-socket-failed -"
LOCAL_CONNECT_FAILED = "local-connect-failed -"


class Event(NamedTuple):
    """What one log line tells (a tuple: two are made for every connection)."""

    client: str  # numeric address text, `?` when unknown
    bind_host: str  # as written in the configuration
    bind_port: int
    connect_host: str
    connect_port: int
    bytes_from_client: int
    bytes_to_client: int
    result: str
    client_port: int = 0  # 0 when unknown; only the JSON format shows it
    line: int = 0  # the rule's line; only the JSON format shows it
    protocol: str = "tcp"  # the bind's; for the metrics, which tell rules apart by it


def rule_event(
    rule: Rule,
    client: str,
    bytes_from_client: int,
    bytes_to_client: int,
    result: str,
    client_port: int = 0,
) -> Event:
    """The event of a line about ``rule``: its bind and connect as written."""
    bind, connect = rule.bind, rule.connect
    return Event(
        client, bind.host, bind.port, connect.host, connect.port,
        bytes_from_client, bytes_to_client, result, client_port, rule.line, bind.protocol,
    )  # fmt: skip


# The process is out of descriptors or memory: `local-socket-failed` for a
# backend socket, and a pause before the next accept.
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Errors a non-blocking connect() reports later, which 0.73 sees as the
# backend closing: it logs `opened` then `done-local-closed`.
_LATE_ERRORS = frozenset(
    {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.ECONNRESET, errno.EHOSTUNREACH}
)


def connect_failure(number: int | None) -> str | None:
    """The word for a failed backend connect, or None for "log as the backend closing"."""
    if number in RESOURCE_ERRORS:
        return LOCAL_SOCKET_FAILED
    if number in _LATE_ERRORS or number is None:
        return None
    return LOCAL_CONNECT_FAILED


@functools.lru_cache(maxsize=4)  # the lines of one second share a stamp: half a line's cost
def _stamp(when: time.struct_time) -> str:
    return (
        f"{when.tm_mday:02d}/{_MONTHS[when.tm_mon - 1]}/{when.tm_year:04d}:"
        f"{when.tm_hour:02d}:{when.tm_min:02d}:{when.tm_sec:02d} "
    )


def tab_line(when: time.struct_time, event: Event) -> str:
    """The default format: nine tab-separated fields and a newline."""
    fields = (
        _stamp(when),
        event.client,
        event.bind_host,
        str(event.bind_port),
        event.connect_host,
        str(event.connect_port),
        str(event.bytes_from_client),
        str(event.bytes_to_client),
        event.result,
    )
    return "\t".join(fields) + "\n"


def _zone(when: time.struct_time, colon: bool) -> str:
    offset_minutes = (when.tm_gmtoff or 0) // 60
    sign = "-" if offset_minutes < 0 else "+"
    offset_minutes = abs(offset_minutes)
    return f"{sign}{offset_minutes // 60:02d}{':' * colon}{offset_minutes % 60:02d}"


@functools.lru_cache(maxsize=4)
def _rfc3339(when: time.struct_time) -> str:
    return (
        f"{when.tm_year:04d}-{when.tm_mon:02d}-{when.tm_mday:02d}T"
        f"{when.tm_hour:02d}:{when.tm_min:02d}:{when.tm_sec:02d}{_zone(when, colon=True)}"
    )


def json_line(when: time.struct_time, event: Event) -> str:
    """`logjson`: one JSON object a line, the tab format's facts and the client's port and
    the rule's line, the time in RFC 3339 with its offset (field names: README)."""
    # Written by hand, not by json.dumps (a fifth of a connection's cost): every text
    # field is an address, a host name or a result word, which hold no character JSON
    # must escape (the rule set's schema and the grammar allow none).
    return (
        f'{{"time":"{_rfc3339(when)}","client":"{event.client}","client_port":{event.client_port},'
        f'"bind":"{event.bind_host}","bind_port":{event.bind_port},'
        f'"connect":"{event.connect_host}","connect_port":{event.connect_port},'
        f'"bytes_from_client":{event.bytes_from_client},'
        f'"bytes_to_client":{event.bytes_to_client},'
        f'"result":"{event.result}","line":{event.line}}}\n'
    )


def common_line(when: time.struct_time, event: Event) -> str:
    """The `logcommon` format, a fake web log line that web analysers accept."""
    zone = _zone(when, colon=False)
    path = (
        f"/rinetd-services/{event.bind_host}/{event.bind_port}/"
        f"{event.connect_host}/{event.connect_port}/{event.result}"
    )
    return (
        f'{event.client} - - [{_stamp(when)} {zone}] "GET {path} HTTP/1.0" 200 '
        f"{event.bytes_to_client} - - - {event.bytes_from_client}\n"
    )
