"""Bugs put in by hand, one at a time, each with the tests that must catch it.

Run from the repository root after ``./test.sh`` made the venv:
``.venv/bin/python scripts/mutants.py [WORD ...]`` (only the bugs whose name
holds a WORD).  Each file is restored after its run; the exit code is 1 if a
bug went uncaught.  The tests named for a bug are the ones meant to catch it,
so a bug caught only elsewhere still counts as a gap here.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

# (name, file, code, the same code broken, tests that must fail)
MUTANTS = [
    (
        "half-close replaced by a full close",
        "runtime/rinetd_run/link.py",
        "        elif self.backend is not None:\n            self.backend.write_eof()",
        "        elif self.backend is not None:\n            self.finish(abort=False)",
        [
            "tests/unit/runtime/test_link.py",
            "tests/runtime/test_tcp.py::test_half_close_from_the_client",
        ],
    ),
    (
        "half-close replaced by a full close (EOF before the backend connects)",
        "runtime/rinetd_run/link.py",
        "            else:\n                backend.write_eof()",
        "            else:\n                self.finish(abort=False)",
        ["tests/unit/runtime/test_link.py"],
    ),
    (
        "deny match treated as allow",
        "runtime/rinetd_run/access.py",
        'if any(matches(r.pattern, address) for r in rules if r.kind == "deny"):',
        'if any(matches(r.pattern, address) for r in rules if r.kind == "allow" and False):',
        ["tests/unit/runtime/test_decisions.py", "tests/runtime/test_logwords.py"],
    ),
    (
        "first per-rule access line skipped (runtime)",
        "runtime/rinetd_run/access.py",
        'return first if first != "allowed" else _check(rule_rules, address)',
        'return first if first != "allowed" else _check(rule_rules[1:], address)',
        ["tests/unit/runtime/test_decisions.py"],
    ),
    (
        "first per-rule access line skipped (compiler)",
        "rinetdc/validate/build.py",
        "        access=access_rules(draft.access),",
        "        access=access_rules(draft.access[1:]),",
        ["tests/unit/compiler/test_validate.py", "tests/unit/compiler/test_corpus.py"],
    ),
    (
        "done-local-closed and done-remote-closed swapped",
        "runtime/rinetd_run/link.py",
        '    "backend": logline.LOCAL_CLOSED,\n    "client": logline.REMOTE_CLOSED,',
        '    "backend": logline.REMOTE_CLOSED,\n    "client": logline.LOCAL_CLOSED,',
        ["tests/unit/runtime/test_link.py", "tests/runtime/test_logwords.py"],
    ),
    (
        "byte counts swapped in the log",
        "runtime/rinetd_run/logline.py",
        "        str(event.bytes_from_client),\n        str(event.bytes_to_client),",
        "        str(event.bytes_to_client),\n        str(event.bytes_from_client),",
        ["tests/unit/runtime/test_decisions.py", "tests/runtime/test_tcp.py"],
    ),
    (
        "runtime skips the digest check",
        "runtime/rinetd_run/document.py",
        "    if not sealed:\n",
        "    if False:\n",
        [
            "tests/unit/runtime/test_decisions.py",
            "tests/runtime/test_lifecycle.py::test_refused_rule_sets_exit_2",
        ],
    ),
    (
        "removed rule's listener kept open on reload",
        "runtime/rinetd_run/server.py",
        "        for key in plan.close:\n            self.listeners.pop(key).close()",
        "        for key in plan.close:\n            pass",
        ["tests/runtime/test_lifecycle.py::test_reload_adds_removes_and_keeps_rules"],
    ),
    (
        "UDP session not refreshed by backend traffic",
        "runtime/rinetd_run/backend.py",
        "        self.link.touch()\n",
        "",
        ["tests/runtime/test_udp.py::test_idle_timeout_is_refreshed_by_backend_traffic"],
    ),
    (
        "duplicate binds (E010) not reported",
        "rinetdc/validate/binds.py",
        "        candidates = [self.by_address.get(key)]",
        "        candidates = [None]",
        ["tests/unit/compiler/test_validate.py", "tests/unit/compiler/test_corpus.py"],
    ),
    (
        "overlapping binds (E011) not reported",
        "rinetdc/validate/binds.py",
        "        found = [c for c in candidates if c is not None]",
        "        found = [c for c in candidates[:1] if c is not None]",
        ["tests/unit/compiler/test_validate.py", "tests/unit/compiler/test_corpus.py"],
    ),
    (
        "fmt drops a rule's options",
        "rinetdc/fmt.py",
        '        words.append("[" + ", ".join(options) + "]")',
        "        pass",
        ["tests/unit/compiler/test_fuzz.py", "tests/unit/compiler/test_corpus.py"],
    ),
    (
        "JSON keys not sorted",
        "runtime/rinetd_run/canonical.py",
        "    for key in sorted(sealed):",
        "    for key in sealed:",
        ["tests/unit/compiler/test_corpus.py", "tests/unit/compiler/test_cli.py"],
    ),
    (
        "last line without newline dropped without W105",
        "rinetdc/parser.py",
        '    body = text\n    if physical[-1] == "":\n        physical.pop()\n    else:',
        '    body = text[: text.rfind("\\n") + 1]\n    if True:\n        physical.pop()\n    else:',
        ["tests/unit/compiler/test_parser.py", "tests/unit/compiler/test_corpus.py"],
    ),
    (
        "pid file write fails the --workers supervisor (old code)",
        "runtime/rinetd_run/pidfile.py",
        "        except OSError as error:\n            say(",
        "        except ZeroDivisionError as error:\n            say(",
        [
            "tests/runtime/test_lifecycle.py::test_an_unwritable_pid_file_is_said_and_forwarding_goes_on"
        ],
    ),
    (
        "a device replaced by a regular file on -o",
        "rinetdc/files.py",
        "            _write_into(target, data)",
        "            _replace(target, data, 0o644, None)",
        ["tests/unit/compiler/test_edges.py"],
    ),
    (
        "an endless input read whole",
        "rinetdc/files.py",
        "        if size > MAX_INPUT:",
        "        if False:",
        ["tests/unit/compiler/test_edges.py::test_an_endless_pipe_is_cut_at_the_size_cap"],
    ),
    (
        "a digit string turned into a number whole",
        "rinetdc/validate/values.py",
        '    significant = digits.lstrip("0") or "0"',
        "    significant = digits",
        ["tests/unit/compiler/test_validate.py"],
    ),
    (
        "overlapping reloads (a task per SIGHUP, as before)",
        "runtime/rinetd_run/main.py",
        "    loop.add_signal_handler(signal.SIGHUP, wanted.set)",
        "    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(server.reload()))",
        ["tests/runtime/test_hostile.py::test_a_sighup_storm_leaves_exactly_the_wanted_listeners"],
    ),
    (
        "signals not held while starting",
        "runtime/rinetd_run/main.py",
        "    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)",
        "    pass",
        ["tests/runtime/test_hostile.py::test_sighup_while_starting_is_a_reload_once_ready"],
    ),
    (
        "a rule set read on the event loop, FIFO and size unchecked",
        "runtime/rinetd_run/document.py",
        "        if not stat.S_ISREG(found.st_mode):",
        "        if False:",
        ["tests/runtime/test_hostile.py"],
    ),
    (
        "no cap on a UDP rule's sessions",
        "runtime/rinetd_run/udp.py",
        "        at_cap = bool(cap) and len(self.sessions) >= cap",
        "        at_cap = False",
        ["tests/runtime/test_hostile.py::test_a_udp_rule_holds_at_most_5000_sessions"],
    ),
    (
        "no descriptor budget (UDP may take every descriptor)",
        "runtime/rinetd_run/budget.py",
        "        within_share = udp_sessions + 1 <= self.usable // 2",
        "        within_share = True",
        ["tests/runtime/test_hostile.py::test_a_udp_flood_never_starves_a_tcp_rule"],
    ),
    (
        "TCP accepts while the budget is spent",
        "runtime/rinetd_run/acceptor.py",
        "            if not self.may_accept():",
        "            if False:",
        [
            "tests/runtime/test_hostile.py"
            "::test_the_descriptor_budget_leaves_tcp_clients_waiting_in_the_backlog"
        ],
    ),
    (
        "a connect kept after its client left",
        "runtime/rinetd_run/link.py",
        "        elif not self._pending:",
        "        elif False:",
        ["tests/runtime/test_hostile.py::test_a_client_that_leaves_abandons_a_pending_connect"],
    ),
    (
        "a full disk leaves half a log line",
        "runtime/rinetd_run/logger.py",
        "        if whole < written and not self._file.stream:",
        "        if False:",
        [
            "tests/runtime/test_hostile.py::test_a_full_log_disk_loses_whole_lines_only_and_says_how_many"
        ],
    ),
    (
        "an include reads outside the top file's folder",
        "rinetdc/include.py",
        "            if real is None or not inside(real, self.walk.roots):",
        "            if real is None:",
        ["tests/unit/compiler/test_untrusted.py"],
    ),
    (
        "a log on a pipe is written blocking",
        "runtime/rinetd_run/outlet.py",
        "            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):",
        "            elif False:",
        ["tests/runtime/test_streams.py"],
    ),
    (
        "a worker takes a reload the others refused",
        "runtime/rinetd_run/main.py",
        "            return await asyncio.wait_for(self.verdict, VERDICT_WAIT) == COMMIT",
        "            return ready",
        ["tests/runtime/test_workers_reload.py"],
    ),
    (
        "a limit brought by a reload ignores what is open",
        "runtime/rinetd_run/context.py",
        "        if counting and not self.counting:",
        "        if False:",
        [
            "tests/runtime/test_options.py::test_a_limit_brought_by_a_reload_counts_what_is_already_open"
        ],
    ),
    (
        "kernel forwarding turned on without the forward chain's guard",
        "runtime/rinetd_run/kernel_plane.py",
        '        guard = frozenset(version for version in (4, 6) if before.get(version) == "0")',
        "        guard: frozenset[int] = frozenset()",
        [
            "tests/integration/test_kernel.py::"
            "test_refused_clients_reach_rinetd_run_and_the_host_routes_nothing_else"
        ],
    ),
    (
        "a reload under way when asked taken as the answer",
        "runtime/rinetd_run/status.py",
        "    if now.ended > begun:",
        "    if now.ended >= begun:",
        ["tests/unit/runtime/test_status.py"],
    ),
    (
        "a refused reload that leaves the log as it was (rotation stuck)",
        "runtime/rinetd_run/server.py",
        "        self.logger.reconfigure(self.ruleset.logfile, self.ruleset.log.format)",
        "        pass",
        ["tests/runtime/test_reload_status.py::test_a_refused_reload_still_reopens_the_log"],
    ),
]


def main(only: list[str]) -> int:
    missed = 0
    for name, path, old, new, tests in MUTANTS:
        if only and not any(word in name for word in only):
            continue
        source = pathlib.Path(path)
        text = source.read_text()
        assert text.count(old) == 1, f"{name}: the code to break is not in {path} once"
        source.write_text(text.replace(old, new))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            source.write_text(text)
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        caught = done.returncode != 0
        missed += not caught
        print("CAUGHT" if caught else "MISSED", name, *(failed[:1] or ["(all passed)"]), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
