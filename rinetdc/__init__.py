"""rinetdc: compile rinetd 0.73 configurations into a checked, frozen JSON rule set.

Flow, one direction only: text -> parse tree (``parser``) -> typed AST (``ast``)
-> the rule set model (``validate``; the model is the runtime's own
``rinetd_run.ruleset``, which ``rinetd_run.document`` writes and reads) ->
canonical JSON (``emit``).
"""

__version__ = "0.1.0"
