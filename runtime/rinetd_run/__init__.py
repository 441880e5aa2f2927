"""rinetd-run: forward TCP and UDP as rinetd 0.73 does, from a compiled JSON rule set.

Standard library only; nothing here imports ``rinetdc``.  Decisions live in pure
modules that do no I/O (the list, and the check that they stay so, is
``tests/unit/runtime/test_layering.py``); the rest moves bytes around them.  The
README's layout table says what each module is.
"""

__version__ = "0.1.0"
