"""The running forwarder: listening sockets, reload, and a draining stop.

Listening sockets are made here (SO_REUSEADDR, dual-stack ``::``, a deep
backlog) and handed to asyncio; a reload opens every new socket before it
closes any old one, and gives up whole if one cannot be opened, so a bad
rule set never leaves the server half-changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import resource
import socket
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from . import logline
from .acceptor import Acceptor
from .budget import Budget
from .context import Binding, Context
from .counters import Counters, counting
from .deadline_timer import DeadlineTimer
from .document import load
from .kernel_choice import dataplane_of, kernel_rules
from .kernel_plane import KernelError
from .kernel_side import KernelSide
from .kernel_table import KernelRule
from .logger import LogWriter
from .logline import Event
from .lookup import first_address
from .metrics import MetricsServer, Move, page
from .names import Names
from .plan import Key, ReloadPlan, plan_reload
from .poller import Poller
from .pools import MemberStates, PoolMembers
from .process import open_descriptors
from .ruleset import Rule, RuleSet, RuleSetError, effective, resolve
from .say import say
from .sockets import bound
from .status import Outcome
from .switching import loop_first
from .tcp import accept_client
from .udp import UdpListener

T = TypeVar("T")

__all__ = ["BACKLOG", "BindError", "Server"]

BACKLOG = 1024


# Told whether this process can apply a new rule set; answers whether all can.
Agreement = Callable[[bool], Awaitable[bool]]


async def _alone(ready: bool) -> bool:
    """One process: what it can do is what is done."""
    return ready


class BindError(Exception):
    """A listening socket could not be opened; names the rule's source line."""


@dataclass
class _Listener:
    binding: Binding
    sock: socket.socket
    acceptor: Acceptor | None = None
    transport: asyncio.DatagramTransport | None = None

    def serve(self, rule: Rule, ruleset: RuleSet, members: MemberStates) -> None:
        """Serve ``rule`` of ``ruleset`` (at open, and on reload with the socket kept),
        its pool's ``members`` if it has one."""
        binding = self.binding
        binding.rule = rule
        binding.limit(effective(ruleset, rule))
        binding.route = (
            None
            if rule.pool is None
            else binding.context.pools.route(rule, binding.options, members)
        )
        if rule.bind.protocol == "tcp":
            _keepalive(self.sock, binding.options.keepalive)

    def close(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
        if self.transport is not None:
            self.transport.close()


def open_socket(rule: Rule, reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking socket for a rule's bind address; BindError if it cannot be."""
    protocol, address, port = rule.listener
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    try:
        return bound(address, port, kind, reuse_port)
    except OSError as error:
        raise BindError(
            f"cannot bind {rule.bind.host} {port}/{protocol} (rule of line {rule.line}): "
            f"{error.strerror or error}"
        ) from None


def _keepalive(sock: socket.socket, on: bool) -> None:
    """SO_KEEPALIVE on a TCP listener: the sockets it accepts inherit it (Linux)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if on else 0)


def _load_and_plan(path: str, current: tuple[Key, ...]) -> tuple[RuleSet, ReloadPlan]:
    ruleset = resolve(load(path), first_address)
    return ruleset, plan_reload(current, ruleset.rules)


# Reloads run one at a time, in a thread of their own: asyncio's default pool is where
# lookups waited on a resolver that did not answer, and a reload queued behind them.
_RELOADER = ThreadPoolExecutor(1, thread_name_prefix="rinetd-reload")


@contextlib.contextmanager
def _refused_table() -> Iterator[None]:
    """The kernel's trouble as a start or reload refuses any: a BindError."""
    try:
        yield
    except KernelError as error:
        raise BindError(f"cannot load the kernel data plane's table: {error}") from None


def _in_the_reload_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    """``work`` in the reload thread, after whatever is there before it."""
    return asyncio.get_running_loop().run_in_executor(_RELOADER, work)


async def _off_the_loop(
    work: Callable[[str, tuple[Key, ...]], tuple[RuleSet, ReloadPlan]],
    path: str,
    current: tuple[Key, ...],
) -> tuple[RuleSet, ReloadPlan]:
    """``work`` in a thread, while the loop takes the interpreter lock back often."""
    collecting = gc.isenabled()
    # The new rule set is many small objects and no cycles; a full collection over them
    # and everything else, run by the reading thread, held the lock for tens of ms.
    gc.disable()
    try:
        with loop_first():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_RELOADER, work, path, current)
    finally:
        if collecting:
            gc.enable()


def _metrics_at(ruleset: RuleSet, worker: int) -> tuple[str, int] | None:
    """Where this process serves the metrics: with --workers, worker N on PORT + N."""
    metrics = ruleset.metrics
    if metrics is None:
        return None
    endpoint = metrics.endpoint
    return (endpoint.address or endpoint.host, endpoint.port + worker)


class Server:
    def __init__(
        self,
        path: str,
        ruleset: RuleSet,
        reuse_port: bool = False,
        worker: int = 0,
        dataplane: str | None = None,
    ) -> None:
        self.path = path
        self.reuse_port = reuse_port
        self.worker = worker
        self.ruleset = ruleset
        self.logger = LogWriter(ruleset.logfile, ruleset.log.format)
        self.counters = Counters()
        self.metrics = MetricsServer(self._page)
        loop = asyncio.get_running_loop()
        names = Names(loop)
        self.context = Context(
            global_access=ruleset.access,
            log=self.logger.log,
            poller=Poller(loop),
            budget=Budget(
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                enabled=not os.environ.get("RINETD_RUN_NO_BUDGET"),
            ),
            deadlines=DeadlineTimer(loop),
            names=names,
            max_connections=ruleset.max_connections,
            pools=PoolMembers(names, note=self.logger.note),
        )
        self._count_with(ruleset)
        self.listeners: dict[Key, _Listener] = {}
        self.dataplane = dataplane  # `--dataplane`, over the rule set's statement
        # With --workers, worker 0 alone owns the kernel's table (one for the host).
        self.kernel = (
            KernelSide(dataplane, self.context.names, self._log, _in_the_reload_thread)
            if worker == 0
            else None
        )

    def _page(self) -> Callable[[], str]:
        if self.kernel is not None:
            self.counters.kernel_events_lost = self.kernel.lost
        self.counters.members = self.context.pools.rows()
        traffic = self.kernel.traffic if self.kernel is not None and self.kernel.loaded else None
        return functools.partial(page, self.counters.snapshot(), traffic)

    def _count_with(self, ruleset: RuleSet) -> None:
        """Log events pass through the counters while the rule set has `metrics`."""
        self.counters.rule_set(ruleset, ruleset.digest)
        log = self.logger.log
        self.context.log = counting(log, self.counters) if ruleset.metrics else log

    async def _prepare_metrics(self, ruleset: RuleSet) -> Move:
        """The metrics endpoint the rule set asks for, opened beside the one served now
        (kept if unchanged); BindError if it cannot be."""
        where = _metrics_at(ruleset, self.worker)
        try:
            return await self.metrics.prepare(where)
        except OSError as error:
            assert where is not None and ruleset.metrics is not None
            raise BindError(
                f"cannot serve metrics on {where[0]} {where[1]} (line {ruleset.metrics.line}): "
                f"{error.strerror or error}"
            ) from None

    def _count_base(self) -> None:
        """What the process holds besides its connections, for the descriptor budget."""
        held = open_descriptors()
        if held is not None:
            context = self.context
            context.budget.base = max(held - 2 * context.tcp_links - context.udp_sessions, 0)

    async def _kernel_checked(self, ruleset: RuleSet) -> tuple[KernelRule, ...]:
        """The kernel's rules of ``ruleset`` (none if this process owns no table), chosen
        in the reload thread and checked by nft; BindError if nft would not load them."""
        if self.kernel is None:
            return ()
        with _refused_table():
            kernel = await _in_the_reload_thread(functools.partial(self.kernel.checked, ruleset))
        self.kernel.say_how_many(ruleset, kernel)
        return kernel

    async def _kernel_load(self, kernel: tuple[KernelRule, ...], ruleset: RuleSet) -> None:
        """The table for ``kernel`` loaded; BindError (the old one stays) if it cannot be."""
        if self.kernel is None:
            return
        with _refused_table():
            await self.kernel.load(kernel, ruleset)
        self.counters.kernel_rules = len(kernel)

    def _mark_kernel_limited(self, ruleset: RuleSet) -> None:
        """The listeners of kernel rules with limits refuse whoever reaches them (the
        table refused them): after the listeners took the rule set's rules.  Every
        worker decides it (the same pure choice), since each takes its share of them."""
        limited = set()
        for rule in kernel_rules(ruleset, dataplane_of(ruleset, self.dataplane)):
            options = effective(ruleset, rule)
            if options.max_connections or options.max_connections_per_client:
                limited.add(rule.listener)
        for listener in self.listeners.values():
            binding = listener.binding
            binding.kernel_limited = binding.rule.listener in limited

    def _log(self, event: Event) -> None:
        self.context.log(event)

    async def start(self) -> None:
        """Bind every rule, then load the kernel's table if it has rules; BindError
        (nothing left open) if either fails."""
        plan = plan_reload((), self.ruleset.rules)
        members = self.context.pools.states_for(self.ruleset)
        opened = self._open(plan.open, self.ruleset, members)
        try:
            self.metrics.commit(await self._prepare_metrics(self.ruleset))
            kernel = await self._kernel_checked(self.ruleset)
            await self._kernel_load(kernel, self.ruleset)
        except BindError:
            self._discard(opened, None)
            raise
        await self._start(opened)
        self.listeners = opened
        self.context.pools.commit(self.ruleset, members)
        self._mark_kernel_limited(self.ruleset)
        self.context.names.plan(self.ruleset)
        self._count_base()
        # What start made lives long (no connection exists yet, so no cycle is frozen
        # with it): later collections need not walk it, on the loop.
        gc.freeze()

    def _open(
        self, rules: dict[Key, Rule], ruleset: RuleSet, members: MemberStates
    ) -> dict[Key, _Listener]:
        """The rules' sockets, bound (BindError, nothing left open, if one cannot be) but
        not yet served: ``_start`` serves them once the rule set is taken."""
        opened: dict[Key, _Listener] = {}
        try:
            for key, rule in rules.items():
                binding = Binding(rule, self.context, effective(ruleset, rule))
                opened[key] = _Listener(binding, open_socket(rule, self.reuse_port))
                opened[key].serve(rule, ruleset, members)
        except BindError:
            for listener in opened.values():
                listener.sock.close()
            raise
        return opened

    async def _start(self, opened: dict[Key, _Listener]) -> None:
        loop = asyncio.get_running_loop()
        for key, listener in opened.items():
            binding = listener.binding
            if key[0] == "tcp":
                listener.acceptor = Acceptor(
                    listener.sock,
                    functools.partial(accept_client, binding),
                    functools.partial(self._accept_failed, binding),
                    self.context.tcp_may_accept,
                )
                listener.acceptor.start(BACKLOG)
            else:
                transport, _protocol = await loop.create_datagram_endpoint(
                    functools.partial(UdpListener, binding), sock=listener.sock
                )
                listener.transport = transport

    async def reload(self, agree: Agreement | None = None) -> Outcome:
        """Re-read the rule set; on any trouble keep serving the old one and say why.

        Everything that can fail (reading, checking, binding the new sockets and the
        metrics endpoint) is done first; then ``agree`` is told whether this process
        could apply the rule set and answers whether every process can (with
        ``--workers``: all of them apply it, or none); only then is it taken.

        Never run two at once (``main`` makes them wait in turn): the plan is made
        from the listeners as they are, so a second reload planned mid-way through a
        first would bind some ports twice."""
        say("received SIGHUP, reloading configuration...")
        agree = agree or _alone
        opened: dict[Key, _Listener] = {}
        move: Move | None = None
        try:
            # Reading, checking, resolving and planning happen in a thread: a big file
            # or a slow DNS must not pause forwarding.  Only the swap runs on the loop.
            ruleset, plan = await _off_the_loop(_load_and_plan, self.path, tuple(self.listeners))
            members = self.context.pools.states_for(ruleset)
            opened = self._open(plan.open, ruleset, members)
            move = await self._prepare_metrics(ruleset)
            kernel = await self._kernel_checked(ruleset)
        except (RuleSetError, BindError) as error:
            self._discard(opened, move)
            await agree(False)
            return self._failed(str(error))
        if not await agree(True):
            self._discard(opened, move)
            return self._failed("another worker could not apply it")
        try:  # checked above; the old table stays if nft still refuses it
            await self._kernel_load(kernel, ruleset)
        except BindError as error:
            self._discard(opened, move)
            return self._failed(str(error))
        self.metrics.commit(move)
        await self._start(opened)
        for key in plan.close:
            self.listeners.pop(key).close()
        self.context.pools.commit(ruleset, members)
        for key, rule in plan.keep.items():
            self.listeners[key].serve(rule, ruleset, members)
        self.listeners.update(opened)
        self._mark_kernel_limited(ruleset)
        self.ruleset = ruleset
        self.context.global_access = ruleset.access
        self.context.max_connections = ruleset.max_connections
        self.context.names.plan(ruleset)
        self._count_with(ruleset)
        self.counters.reloads["done"] += 1
        self.logger.reconfigure(ruleset.logfile, ruleset.log.format)
        self._count_base()
        message = f"reloaded: forwarding {len(ruleset.rules)} rules"
        say(message)
        return Outcome(True, message)

    def _discard(self, opened: dict[Key, _Listener], move: Move | None) -> None:
        for listener in opened.values():
            listener.close()
            listener.sock.close()
        if move is not None:
            self.metrics.discard(move)

    def _failed(self, why: str) -> Outcome:
        message = f"reload failed, keeping the old rules: {why}"
        say(message)
        self.counters.reloads["failed"] += 1
        # SIGHUP also means "reopen the log" (logrotate): done with the old rules' log, so a
        # rotation never goes on writing into the renamed file.
        self.logger.reconfigure(self.ruleset.logfile, self.ruleset.log.format)
        return Outcome(False, message)

    async def stop(self, grace: float) -> None:
        """Stop accepting, let TCP connections finish for ``grace`` seconds, end the rest.

        UDP sessions end at once: they have no end of their own but the idle timeout.
        The kernel's table goes first (forwarding put back, then the table): it would
        take new connections, and connections it forwarded have no grace.
        """
        if self.kernel is not None:
            self.kernel.stop()
        for listener in self.listeners.values():
            listener.close()
        self.context.pools.close()  # no new connection needs a member's health
        deadline = asyncio.get_running_loop().time() + grace
        while self.context.links and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for link in list(self.context.links):
            link.finish(abort=True)
        self.listeners.clear()
        self.metrics.close()
        self.context.deadlines.close()
        self.context.names.close()
        self.context.poller.shut()
        self.logger.close()

    def _accept_failed(self, binding: Binding, error: OSError) -> None:
        rule = binding.rule
        say(f"accept on line {rule.line}'s port: {error}")
        self.context.log(logline.rule_event(rule, "?", 0, 0, logline.ACCEPT_FAILED))
