"""The process's file descriptors, shared out so that no rule can take what the others need.

A pure decision, from counts the running server keeps: ``limit`` is
RLIMIT_NOFILE, ``base`` what the process holds besides its connections
(listening sockets, the log, the poller), and a ``reserve`` stays free for the
process's own needs (a reload's new listeners, the log reopened). A TCP
connection takes two descriptors (client and backend), a UDP session one (its
backend socket; the client comes through the listener). UDP sessions, which a
spoofed flood can open at no cost to the sender, may take at most half of what
is usable, so TCP always has the other half; TCP connections may take the rest.
At the limit TCP stops accepting for a moment (clients wait in the backlog) and
a UDP rule ends its own least recently used session.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget"]


@dataclass
class Budget:
    limit: int
    base: int = 0
    enabled: bool = True  # off only to test what happens without it (EMFILE back-off)

    @property
    def reserve(self) -> int:
        return min(max(16, self.limit // 20), self.limit // 4)

    @property
    def usable(self) -> int:
        return max(self.limit - self.reserve - self.base, 0)

    def tcp_may_accept(self, tcp_links: int, udp_sessions: int) -> bool:
        return not self.enabled or 2 * (tcp_links + 1) + udp_sessions <= self.usable

    def udp_may_open(self, tcp_links: int, udp_sessions: int) -> bool:
        within_share = udp_sessions + 1 <= self.usable // 2
        fits = within_share and 2 * tcp_links + udp_sessions + 1 <= self.usable
        return not self.enabled or fits
