"""rinetd-run: forward TCP and UDP as rinetd 0.73 does, from a compiled JSON rule set.

Standard library only; nothing here imports ``rinetdc``.  Decisions (access,
log lines, rule lookup, reload plans) are pure functions in their own modules;
``server`` and ``udp`` only move bytes.
"""

__version__ = "0.1.0"
