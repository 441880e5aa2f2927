"""rinetdc: compile rinetd 0.73 configurations into a checked, frozen JSON rule set.

Flow, one direction only: text -> parse tree (``parser``) -> typed AST (``ast``)
-> validated model (``validate``) -> canonical JSON (``emit``).
"""

__version__ = "0.1.0"
