"""rinetd-run: forward TCP and UDP as rinetd 0.73 does, from a compiled JSON rule set.

Standard library only; nothing here imports ``rinetdc``.  The rule set is
typed data (``ruleset``) read by one strict reader (``document``).  Decisions
are pure, in their own modules: access (``access``), log lines and failure
words (``logline``), reload plans (``plan``), and how a connection ends
(``link``, tested with fake ends).  Moving bytes is the rest: ``acceptor``,
``tcp``/``tcp_end``/``splice``/``poller`` for TCP, ``udp``/``udp_end`` for UDP,
``backend`` for connecting; ``server``, ``main`` and ``workers`` run it all.
"""

__version__ = "0.1.0"
