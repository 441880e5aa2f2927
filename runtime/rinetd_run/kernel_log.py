"""Log lines for the connections the kernel forwards, from conntrack's events.  Pure: the
events come in (``conntrack``), log events go out.

Each rule in the table has a number (the low half of the conntrack mark it sets); a
number names one rule's log fields (bind and connect as written, line, protocol) for
as long as it may be in use, across reloads, so a connection opened before a reload
is logged with the rule it was opened by.  A TCP connection is logged ``opened``
when conntrack confirms it and done when its TCP state says it is over (both FINs
acknowledged, or a reset), not when its entry is destroyed minutes later; its byte
counts are then asked of the kernel.  Result words: who sent the first FIN
(``done-remote-closed``: the client, ``done-local-closed``: the backend, as in user
space); ``done-reset`` when a reset ended it (the kernel does not say which side sent
it); ``done-expired`` when conntrack forgot it before either (a silent backend, an
idle connection past conntrack's timeout).  A UDP flow ends when conntrack's timeout
forgets it: ``done-remote-closed``, as a timed-out user-space session.  Byte counts are
conntrack's: IP packets, headers included.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from . import logline
from .conntrack_messages import DESTROY, NEW, UDP, Flow
from .kernel_table import MARK, MASK
from .logline import Event
from .ruleset import Rule

__all__ = ["EXPIRED", "MAX_OPEN", "RESET", "KernelLog", "Step"]

RESET = "done-reset"
EXPIRED = "done-expired"
MAX_OPEN = 1_000_000  # flows remembered between their opened and done lines
_NUMBERS = 0xFFFF  # the mark's low half; 0 is not used

_Key = tuple[str, str, int, str, int, int]


def _key(rule: Rule) -> _Key:
    """What a log line says of a rule."""
    bind, connect = rule.bind, rule.connect
    return (bind.protocol, bind.host, bind.port, connect.host, connect.port, rule.line)


class Step(NamedTuple):
    """What to do about one event: a line to log, and a flow that ended whose counts
    the kernel should be asked for (then ``counted``)."""

    log: Event | None = None
    ask: Flow | None = None


def _word(flow: Flow) -> str:
    if flow.closed_first == "client":
        return logline.REMOTE_CLOSED
    if flow.closed_first == "backend":
        return logline.LOCAL_CLOSED
    if flow.protocol == UDP:
        return logline.REMOTE_CLOSED
    return RESET if flow.ended else EXPIRED


class KernelLog:
    def __init__(self) -> None:
        self._numbers: dict[_Key, int] = {}
        self._rules: dict[int, Rule] = {}
        self._next = 1
        self._open: OrderedDict[int, Flow] = OrderedDict()  # by conntrack id
        self.forgotten = 0  # flows dropped from _open past MAX_OPEN

    def rule(self, number: int) -> Rule | None:
        """The rule that has ``number`` now."""
        return self._rules.get(number)

    def numbers(self, rules: Sequence[Rule]) -> list[int]:
        """A number for each rule: the one it had if a rule with the same log fields
        had one, else one no rule of ``rules`` has (the longest unused first)."""
        keys = [_key(rule) for rule in rules]
        taken = {self._numbers[key] for key in keys if key in self._numbers}
        found = []
        for key, rule in zip(keys, rules, strict=True):
            number = self._numbers.get(key)
            if number is None:
                while self._next in taken:
                    self._next = self._next % _NUMBERS + 1
                number = self._next
                self._next = self._next % _NUMBERS + 1
                taken.add(number)
                old = self._rules.get(number)
                if old is not None:
                    self._numbers.pop(_key(old), None)
                self._numbers[key] = number
            self._rules[number] = rule
            found.append(number)
        return found

    def _event(self, flow: Flow, number: int, result: str, counted: Flow | None) -> Event | None:
        rule = self._rules.get(number)
        if rule is None:
            return None
        return logline.rule_event(
            rule,
            flow.client,
            (counted.bytes_from_client or 0) if counted else 0,
            (counted.bytes_to_client or 0) if counted else 0,
            result,
            flow.client_port,
        )

    def seen(self, flow: Flow) -> Step:
        """An event from conntrack: its line, if any; a TCP end to be counted."""
        if flow.mark & MASK != MARK:
            return Step()
        number = flow.mark & ~MASK
        if flow.kind == NEW:
            self._open[flow.id] = flow
            if len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
                self.forgotten += 1
            return Step(self._event(flow, number, logline.OPENED, None))
        if flow.kind == DESTROY:
            # Only a flow still open: one whose done line was written, or whose opening
            # was lost, has none from its destroy (TIME_WAIT ends minutes later).
            known = self._open.pop(flow.id, None)
            if known is None:
                return Step()
            # The word of a TCP end seen before (its count came too late), else the
            # destroy's own.
            word = _word(known if known.ended else flow)
            return Step(self._event(flow, number, word, flow))
        if flow.ended and flow.id in self._open:
            return Step(ask=flow)
        return Step()

    def counted(self, ended: Flow, answer: Flow | None) -> Event | None:
        """The done line of a TCP flow that ``seen`` said ended, given the kernel's
        answer (None: the entry is gone already, and its destroy event will say)."""
        if ended.id not in self._open:
            return None
        if answer is None or answer.id != ended.id:  # not this flow's entry any more
            self._open[ended.id] = ended  # its destroy event logs it, with this word
            return None
        del self._open[ended.id]
        return self._event(ended, ended.mark & ~MASK, _word(ended), answer)

    def still_open(self) -> list[Flow]:
        """The flows opened and not yet done (at stop: they end with the table)."""
        return list(self._open.values())

    def stopped(self, flow: Flow, answer: Flow | None) -> Event | None:
        """The done line of a flow the stop ended: as user space logs a connection ended
        from outside (``done-remote-closed``, as 0.73)."""
        self._open.pop(flow.id, None)
        return self._event(flow, flow.mark & ~MASK, logline.REMOTE_CLOSED, answer)
