"""The pure choice of a pool member and the health counting (``balance``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from rinetd_run.balance import FULL, Balancer, MemberState, after_check
from rinetd_run.ruleset import Member


def _states(*weights: int, backup: tuple[int, ...] = (), most: int = 0) -> list[MemberState]:
    return [
        MemberState(
            "web",
            Member(
                f"10.0.0.{n}",
                f"10.0.0.{n}",
                80,
                None,
                n,
                weight=w,
                backup=n in backup,
                max_connections=most,
            ),
        )
        for n, w in enumerate(weights, start=1)
    ]


def test_smooth_round_robin_interleaves_by_weight() -> None:
    states = _states(5, 1, 1)
    balancer = Balancer("roundrobin")
    order = [states.index(balancer.choose(states, "c")) for _ in range(7)]  # type: ignore[arg-type]
    assert order == [0, 0, 1, 0, 2, 0, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 256), min_size=1, max_size=6))
def test_round_robin_gives_each_member_its_share_exactly_per_cycle(weights: list[int]) -> None:
    states = _states(*weights)
    balancer = Balancer("roundrobin")
    chosen = Counter(id(balancer.choose(states, "c")) for _ in range(sum(weights)))
    assert [chosen[id(s)] for s in states] == weights


def test_backups_only_when_no_other_member_is_up_and_down_members_are_still_tried() -> None:
    states = _states(1, 1, 1, backup=(3,))
    balancer = Balancer("roundrobin")
    assert {balancer.choose(states, "c") for _ in range(10)} == set(states[:2])
    states[0].up = states[1].up = False
    assert balancer.choose(states, "c") is states[2]
    states[2].up = False  # every member down: the others first, still
    assert balancer.choose(states, "c") in states[:2]
    assert balancer.choose(states, "c", tried=states) is None


def test_a_member_without_an_address_is_never_tried_even_when_all_are_down() -> None:
    states = _states(1, 1, 1, backup=(3,))
    unresolved = states[0]
    unresolved.take(replace(unresolved.member, address=None))
    for state in states:
        state.up = False
    balancer = Balancer("roundrobin")
    assert {balancer.choose(states, "c") for _ in range(6)} == {states[1]}
    assert balancer.choose(states, "c", tried=[states[1]]) is states[2]  # then the backup
    assert balancer.choose(states, "c", tried=states[1:]) is None


def test_full_members_are_skipped_and_all_full_is_said() -> None:
    states = _states(1, 1, most=1)
    balancer = Balancer("leastconn")
    states[0].open = 1
    assert balancer.choose(states, "c") is states[1]
    states[1].open = 1
    assert balancer.choose(states, "c") is FULL


def test_leastconn_and_random_prefer_the_least_loaded_for_its_weight() -> None:
    states = _states(1, 2)
    states[0].open, states[1].open = 3, 4  # loads 3 and 2
    assert Balancer("leastconn").choose(states, "c") is states[1]
    states = _states(1, 1)
    states[0].open = 50
    picks = Counter(id(Balancer("random", seed=n).choose(states, "c")) for n in range(200))
    assert picks[id(states[1])] > picks[id(states[0])] * 2  # two choices, the less loaded


def test_source_is_stable_and_moves_only_the_clients_of_a_member_that_goes() -> None:
    states = _states(1, 1, 1, 1)
    balancer = Balancer("source")
    clients = [f"192.0.2.{n}" for n in range(1, 255)]
    before = {c: balancer.choose(states, c) for c in clients}
    assert all(balancer.choose(states, c) is before[c] for c in clients)
    assert len({id(s) for s in before.values()}) == 4
    states[1].up = False
    after = {c: balancer.choose(states, c) for c in clients}
    moved = {c for c in clients if after[c] is not before[c]}
    assert moved == {c for c in clients if before[c] is states[1]}


def test_health_moves_after_fall_failures_and_rise_passes_in_a_row() -> None:
    (state,) = _states(1)
    assert not after_check(state, False, rise=2, fall=3)
    assert not after_check(state, False, rise=2, fall=3)
    assert not after_check(state, True, rise=2, fall=3)  # a pass breaks the run
    assert [after_check(state, False, 2, 3) for _ in range(3)] == [False, False, True]
    assert not state.up
    assert [after_check(state, True, 2, 3) for _ in range(2)] == [False, True]
    assert state.up
