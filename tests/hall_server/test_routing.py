"""Pure unit and property tests for hall_server.rules.routing (no database, no service).

The first half checks the documented rule one clause at a time; the second half drives a small
simulated hall in memory (windows repeatedly call ``rank`` and take the first candidate, the
per-queue priority streak is updated with ``apply_call`` after every call, exactly as
``HallService.call_next`` / ``_after_call`` do) and checks the invariants the rule promises.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hall_server.rules import routing
from hall_server.rules.routing import Candidate, QueuePolicy, RoutingState, apply_call, reactivation_place

T0 = 1_700_000_000.0  # a realistic epoch second: places are seconds since the epoch

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def C(tid: int, queue: str = "A", place: float = 0.0, priority: bool = False,
      eligible_at: float = 0.0, target: str | None = None) -> Candidate:
    return Candidate(ticket_id=tid, queue=queue, place=T0 + place, priority=priority,
                     eligible_at=(T0 + eligible_at) if eligible_at else 0.0, target_window=target)


def ids(window: str, queues: list[str], cands: list[Candidate], policies: dict[str, QueuePolicy] | None = None,
        streak: dict[str, int] | None = None, now: float = 1000.0, order: str = "preference") -> list[int]:
    out = routing.rank(window, queues, cands, policies or {}, RoutingState(dict(streak or {})), T0 + now, order)
    return [c.ticket_id for c in out]


# ---------------------------------------------------------------------------------------------
# 1. tickets sent to this window
# ---------------------------------------------------------------------------------------------

def test_targeted_tickets_come_first_oldest_place_first() -> None:
    cands = [C(1, "A", 10), C(2, "A", 50, target="W1"), C(3, "A", 30, target="W1"), C(4, "A", 5, priority=True)]
    assert ids("W1", ["A"], cands) == [3, 2, 4, 1]


def test_targeted_ticket_of_an_unserved_queue_is_called_and_other_windows_skip_it() -> None:
    cands = [C(1, "A", 10), C(2, "Z", 0, target="W1"), C(3, "A", 1, target="W2")]
    assert ids("W1", ["A"], cands) == [2, 1]
    assert ids("W2", ["A"], cands) == [3, 1]
    assert ids("W3", ["A"], cands) == [1]  # neither targeted ticket belongs to W3


def test_targeted_tickets_ignore_priority_and_tie_break_by_ticket_id() -> None:
    cands = [C(5, "A", 10, priority=True, target="W1"), C(4, "A", 10, target="W1"), C(3, "A", 20, target="W1")]
    assert ids("W1", ["A"], cands) == [4, 5, 3]


# ---------------------------------------------------------------------------------------------
# 2. queues in the window's order
# ---------------------------------------------------------------------------------------------

def test_preference_order_serves_first_queue_with_a_ticket() -> None:
    cands = [C(1, "A", 100), C(2, "B", 0), C(3, "C", 50)]
    assert ids("W", ["B", "A", "C"], cands) == [2, 1, 3]
    assert ids("W", ["C", "A", "B"], cands) == [3, 1, 2]
    assert ids("W", ["A", "C"], cands) == [1, 3]  # B is not served by this window


def test_preference_order_skips_a_queue_whose_tickets_are_not_callable() -> None:
    cands = [C(1, "A", 0, priority=True, eligible_at=2000), C(2, "B", 500)]
    assert ids("W", ["A", "B"], cands) == [2]


def test_longest_wait_order_serves_oldest_head_first() -> None:
    cands = [C(1, "A", 100), C(2, "B", 0), C(3, "C", 50), C(4, "A", 120)]
    assert ids("W", ["A", "B", "C"], cands, order="longest_wait") == [2, 3, 1, 4]


def test_longest_wait_ties_go_to_the_earlier_listed_queue() -> None:
    cands = [C(1, "A", 10), C(2, "B", 10)]
    assert ids("W", ["B", "A"], cands, order="longest_wait") == [2, 1]
    assert ids("W", ["A", "B"], cands, order="longest_wait") == [1, 2]


def test_overdue_queue_head_is_served_before_preferred_queue() -> None:
    pol = {"A": QueuePolicy(max_wait=600), "B": QueuePolicy(max_wait=300)}
    cands = [C(1, "A", 900), C(2, "B", 600)]  # now=1000: B waited 400 s > 300 s; A only 100 s
    assert ids("W", ["A", "B"], cands, pol) == [2, 1]
    # B not yet overdue (waited 250 s < 300 s): preference order wins even though B is older
    assert ids("W", ["A", "B"], [C(1, "A", 700), C(2, "B", 650)], pol, now=900) == [1, 2]


def test_overdue_heads_are_served_oldest_first_before_the_rest() -> None:
    pol = {q: QueuePolicy(max_wait=100) for q in "ABC"}
    cands = [C(1, "A", 990), C(2, "B", 850), C(3, "C", 500)]  # B, C overdue; A not
    assert ids("W", ["A", "B", "C"], cands, pol) == [3, 2, 1]
    assert ids("W", ["A", "B", "C"], cands, pol, order="longest_wait") == [3, 2, 1]


def test_queue_without_max_wait_never_counts_as_overdue() -> None:
    pol = {"A": QueuePolicy(max_wait=None), "B": QueuePolicy(max_wait=300)}
    cands = [C(1, "A", 0), C(2, "B", 100)]  # A waited 1000 s but has no bound; B is overdue
    assert ids("W", ["A", "B"], cands, pol) == [2, 1]


# ---------------------------------------------------------------------------------------------
# 3. priority within a queue
# ---------------------------------------------------------------------------------------------

def test_priority_before_normal() -> None:
    cands = [C(1, "A", 0), C(2, "A", 50, priority=True)]
    assert ids("W", ["A"], cands, {"A": QueuePolicy(ratio=2)}) == [2, 1]


@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_at_most_ratio_priority_calls_in_a_row_while_a_normal_waits(ratio: int) -> None:
    prios = [C(10 + i, "A", 10 + i, priority=True) for i in range(6)]
    normals = [C(1, "A", 0), C(2, "A", 1)]
    order = ids("W", ["A"], prios + normals, {"A": QueuePolicy(ratio=ratio)})
    expected = [10 + i for i in range(ratio)] + [1] + [10 + i for i in range(ratio, 2 * ratio)] + [2]
    assert order[: len(expected)] == expected


def test_persisted_streak_is_honoured() -> None:
    pol = {"A": QueuePolicy(ratio=2)}
    cands = [C(1, "A", 0), C(2, "A", 50, priority=True)]
    assert ids("W", ["A"], cands, pol, streak={"A": 1})[0] == 2
    assert ids("W", ["A"], cands, pol, streak={"A": 2})[0] == 1
    assert ids("W", ["A"], cands, pol, streak={"A": 7})[0] == 1
    assert ids("W", ["A"], cands, pol, streak={"B": 9})[0] == 2  # another queue's streak is irrelevant


def test_priority_streak_only_applies_while_a_normal_waits() -> None:
    cands = [C(i, "A", i, priority=True) for i in range(1, 5)]
    assert ids("W", ["A"], cands, {"A": QueuePolicy(ratio=1)}, streak={"A": 5}) == [1, 2, 3, 4]


def test_ratio_zero_is_plain_fifo() -> None:
    cands = [C(3, "A", 30, priority=True), C(1, "A", 10), C(2, "A", 20, priority=True), C(4, "A", 40)]
    assert ids("W", ["A"], cands, {"A": QueuePolicy(ratio=0)}) == [1, 2, 3, 4]
    assert ids("W", ["A"], cands, {"A": QueuePolicy(ratio=0, max_wait=5)}) == [1, 2, 3, 4]


def test_aged_normal_ticket_beats_priority() -> None:
    pol = {"A": QueuePolicy(ratio=3, max_wait=300)}
    cands = [C(1, "A", 600), C(2, "A", 650, priority=True)]
    assert ids("W", ["A"], cands, pol, now=899)[0] == 2  # waited 299 s: not aged yet
    assert ids("W", ["A"], cands, pol, now=900)[0] == 1  # waited exactly 300 s: aged
    assert ids("W", ["A"], cands, pol, now=900, streak={"A": 0})[0] == 1


def test_missing_policy_defaults_to_ratio_two() -> None:
    cands = [C(1, "A", 0)] + [C(10 + i, "A", 10 + i, priority=True) for i in range(3)]
    assert ids("W", ["A"], cands, {}) == [10, 11, 1, 12]


# ---------------------------------------------------------------------------------------------
# 4. first in, first out within a class
# ---------------------------------------------------------------------------------------------

def test_fifo_within_class_by_place_then_ticket_id() -> None:
    cands = [C(5, "A", 20), C(3, "A", 10), C(4, "A", 10), C(9, "A", 5, priority=True), C(8, "A", 5, priority=True)]
    assert ids("W", ["A"], cands, {"A": QueuePolicy(ratio=5)}) == [8, 9, 3, 4, 5]
    assert ids("W", ["A"], cands, {"A": QueuePolicy(ratio=0)}) == [8, 9, 3, 4, 5]


def test_transferred_ticket_keeps_its_original_place() -> None:
    # ticket 7 came from another queue but was issued earlier: it goes ahead of later normal tickets
    cands = [C(1, "A", 100), C(2, "A", 200), C(7, "A", 50)]
    assert ids("W", ["A"], cands) == [7, 1, 2]


# ---------------------------------------------------------------------------------------------
# 5. not yet eligible
# ---------------------------------------------------------------------------------------------

def test_not_yet_eligible_appointment_is_excluded() -> None:
    early = C(1, "A", 1200, priority=True, eligible_at=1200)
    cands = [early, C(2, "A", 100)]
    assert ids("W", ["A"], cands, now=1000) == [2]
    assert ids("W", ["A"], cands, now=1200) == [1, 2]  # eligible_at == now is callable
    assert ids("W", ["A"], [C(3, "A", 0, eligible_at=1001, target="W")], now=1000) == []


def test_empty_inputs() -> None:
    assert ids("W", ["A"], []) == []
    assert ids("W", [], [C(1, "A", 0)]) == []


def test_rank_does_not_mutate_state() -> None:
    state = RoutingState({"A": 1})
    routing.rank("W", ["A"], [C(i, "A", i, priority=i % 2 == 0) for i in range(6)], {}, state, T0 + 100)
    assert state.priority_streak == {"A": 1}


def test_apply_call() -> None:
    assert apply_call(0, True) == 1
    assert apply_call(4, True) == 5
    assert apply_call(4, False) == 0
    assert apply_call(0, False) == 0


def test_rank_order_after_a_targeted_priority_call_matches_successive_calls() -> None:
    pol = {"A": QueuePolicy(ratio=1)}
    cands = [C(1, "A", 10, priority=True, target="W"), C(2, "A", 20, priority=True), C(3, "A", 30)]
    ranked = ids("W", ["A"], cands, pol, streak={"A": 0})
    # successive calls: 1 (targeted, priority -> streak 1), then ratio 1 reached -> normal 3, then 2
    after_first = ids("W", ["A"], cands[1:], pol, streak={"A": apply_call(0, True)})
    assert ranked == [1] + after_first  # actual: [1, 2, 3]; successive calls give [1, 3, 2]


# ---------------------------------------------------------------------------------------------
# reactivation_place
# ---------------------------------------------------------------------------------------------

def _behind(place: float, waiting: list[float]) -> int:
    return sum(1 for p in waiting if p < place)


def test_reactivation_goes_behind_k_waiting_tickets() -> None:
    waiting = [T0 + x for x in (50, 10, 40, 20, 30)]
    p = reactivation_place(waiting, 2, T0 + 100)
    assert T0 + 20 < p < T0 + 30
    assert _behind(p, waiting) == 2


def test_reactivation_is_last_when_fewer_wait() -> None:
    waiting = [T0 + 10, T0 + 20]
    assert reactivation_place(waiting, 3, T0 + 100) > T0 + 20
    assert reactivation_place(waiting, 2, T0 + 100) > T0 + 20
    assert reactivation_place([], 3, T0 + 100) == T0 + 100


def test_reactivation_behind_zero_goes_first() -> None:
    waiting = [T0 + 10, T0 + 20]
    assert reactivation_place(waiting, 0, T0 + 100) < T0 + 10
    assert reactivation_place([], 0, T0 + 100) == T0 + 100


def test_reactivation_with_equal_places() -> None:
    same = T0 + 10
    waiting = [same, same, same, T0 + 20]
    p = reactivation_place(waiting, 1, T0 + 100)
    # no place lies strictly between equal places: it goes behind all of them, ahead of the next
    assert same < p < T0 + 20
    waiting = [T0 + 5, same, same]
    p = reactivation_place(waiting, 1, T0 + 100)
    assert T0 + 5 < p < same
    p = reactivation_place([same, same], 1, T0 + 100)
    assert p > same


def test_reactivated_ticket_is_called_after_exactly_k_waiting_tickets() -> None:
    waiting = [C(i, "A", 10 * i) for i in range(1, 6)]
    p = reactivation_place([c.place for c in waiting], 3, T0 + 100)
    back = Candidate(ticket_id=0, queue="A", place=p)  # oldest ticket id: it must not jump the queue
    assert ids("W", ["A"], waiting + [back], {"A": QueuePolicy(ratio=0)}, now=100) == [1, 2, 3, 0, 4, 5]


@PROPS
@given(
    st.lists(st.floats(min_value=T0 - 86_400, max_value=T0 + 86_400, allow_nan=False), max_size=12),
    st.integers(min_value=0, max_value=14),
    st.booleans(),
)
def test_reactivation_place_property(raw: list[float], behind: int, duplicate: bool) -> None:
    waiting = raw + raw[:2] if duplicate else raw  # exercise equal places
    now = T0 + 100_000
    p = reactivation_place(waiting, behind, now)
    places = sorted(waiting)
    assert math.isfinite(p)
    if not places:
        assert p == now
    elif behind <= 0:
        assert p < places[0]
    elif len(places) <= behind:
        assert p > places[-1]
    else:
        k = behind
        assert p > places[k - 1]  # behind (at least) k waiting tickets, even with equal places
        later = [x for x in places if x > places[k - 1]]
        if later:  # ... but no further back than the tickets tied with the k-th
            assert p <= later[0]
            if math.nextafter(places[k - 1], math.inf) < later[0]:
                assert p < later[0]  # strictly ahead when a place in between exists
                assert _behind(p, waiting) == sum(1 for x in places if x <= places[k - 1])


# ---------------------------------------------------------------------------------------------
# simulated hall (property tests)
# ---------------------------------------------------------------------------------------------

QUEUES = ["A", "B", "C"]


@dataclass
class Call:
    window: str
    ticket: Candidate
    now: float
    waiting: list[Candidate]  # everything waiting (callable or not) just before the call
    targeted: bool


@dataclass
class Hall:
    windows: dict[str, tuple[list[str], str]]  # window -> (queues, order)
    policies: dict[str, QueuePolicy]
    arrivals: list[tuple[float, Candidate]]  # (arrival time, ticket)
    streak: dict[str, int] = field(default_factory=dict)
    waiting: list[Candidate] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    ranks: list[tuple[str, float, list[Candidate], list[Candidate]]] = field(default_factory=list)

    def run(self, step: float, max_steps: int, window_order: list[int]) -> float:
        pending = sorted(self.arrivals, key=lambda a: (a[0], a[1].ticket_id))
        now = T0
        names = list(self.windows)
        for n in range(max_steps):
            while pending and pending[0][0] <= now:
                self.waiting.append(pending.pop(0)[1])
            if not pending and not self.waiting:
                return now
            # windows take turns in a drawn order; each calls at most one ticket per step
            turn = window_order[n % len(window_order)] % len(names)
            for i in range(len(names)):
                self.call_one(names[(turn + i) % len(names)], now)
            now += step
            if not pending and self.waiting and all(c.eligible_at > now for c in self.waiting):
                now = min(c.eligible_at for c in self.waiting)  # nothing to do: skip idle time
        return now

    def call_one(self, window: str, now: float) -> Candidate | None:
        queues, order = self.windows[window]
        before = list(self.waiting)
        ranked = routing.rank(window, queues, before, self.policies, RoutingState(dict(self.streak)), now, order)
        self.ranks.append((window, now, before, ranked))
        if not ranked:
            return None
        c = ranked[0]
        self.calls.append(Call(window, c, now, before, c.target_window is not None))
        self.streak[c.queue] = apply_call(self.streak.get(c.queue, 0), c.priority)  # as _after_call does
        self.waiting.remove(c)
        return c


KINDS = ["walk_in", "walk_in", "priority", "appointment", "transfer", "targeted"]
# built once: constructing strategies inside a composite on every draw dominates the run time
_ticket = st.tuples(
    st.integers(min_value=0, max_value=400),  # arrival, seconds after the hall opens
    st.integers(min_value=0, max_value=2),  # queue index
    st.integers(min_value=0, max_value=len(KINDS) - 1),
    st.integers(min_value=0, max_value=600),  # slot offset / age of a transferred ticket
    st.booleans(),  # priority of a transferred ticket
    st.integers(min_value=0, max_value=2),  # target window index
)
_policy = st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from([None, 60.0, 120.0, 300.0]))
_window = st.tuples(st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=3, unique=True),
                    st.sampled_from(["preference", "longest_wait"]))


@st.composite
def halls(draw: st.DrawFn, targeted: bool = True, need_max_wait: bool = False, n_max: int = 24) -> tuple[Hall, float, list[int]]:
    nq = draw(st.integers(min_value=1, max_value=3))
    queues = QUEUES[:nq]
    policies = {}
    for q in queues:
        ratio, max_wait = draw(_policy)
        policies[q] = QueuePolicy(ratio=ratio, max_wait=max_wait if max_wait or not need_max_wait else 60.0)
    nw = draw(st.integers(min_value=1, max_value=3))
    windows: dict[str, tuple[list[str], str]] = {}
    for i in range(nw):
        served, order = draw(_window)
        windows[f"W{i + 1}"] = (list(dict.fromkeys(queues[j % nq] for j in served)), order)
    names = list(windows)
    covered = sorted({q for served, _ in windows.values() for q in served})
    arrivals = []
    size = draw(st.integers(min_value=0, max_value=n_max))  # plain st.lists stays too short to form queues
    raw = draw(st.lists(_ticket, min_size=size, max_size=size))
    for tid, (arrive, qi, ki, off, prio, wi) in enumerate(raw, start=1):
        at = T0 + arrive
        q = covered[qi % len(covered)]
        kind = KINDS[ki]
        if kind == "targeted" and not targeted:
            kind = "transfer"
        if kind == "walk_in":
            c = Candidate(tid, q, at)
        elif kind == "priority":
            c = Candidate(tid, q, at, priority=True)
        elif kind == "appointment":  # checked in early: place = slot time, callable from the slot on
            slot = at + off // 2
            c = Candidate(tid, q, slot, priority=True, eligible_at=slot)
        elif kind == "transfer":  # keeps its original, earlier issue time
            c = Candidate(tid, q, at - off, priority=prio)
        else:  # sent to a named window, possibly of a queue that window does not serve
            c = Candidate(tid, queues[qi % nq], at - off, priority=prio, target_window=names[wi % nw])
        arrivals.append((at, c))
    step = draw(st.sampled_from([5.0, 15.0, 30.0, 60.0]))
    window_order = draw(st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=5))
    return Hall(windows, policies, arrivals), step, window_order


def _callable_in_queue(waiting: list[Candidate], queue: str, now: float) -> list[Candidate]:
    return [c for c in waiting if c.queue == queue and c.target_window is None and c.eligible_at <= now]


@PROPS
@given(halls())
def test_property_fifo_within_a_class_per_queue(h: tuple[Hall, float, list[int]]) -> None:
    hall, step, worder = h
    hall.run(step, 400, worder)
    for call in hall.calls:
        c = call.ticket
        if call.targeted:
            continue
        pol = hall.policies[c.queue]
        rivals = _callable_in_queue(call.waiting, c.queue, call.now)
        same_class = rivals if pol.ratio == 0 else [r for r in rivals if r.priority == c.priority]
        first = min(same_class, key=lambda r: (r.place, r.ticket_id))
        assert first == c, f"{call.window} called {c} while {first} was ahead of it in its class"


@PROPS
@given(halls())
def test_property_priority_ratio_bound(h: tuple[Hall, float, list[int]]) -> None:
    hall, step, worder = h
    hall.run(step, 400, worder)
    run: dict[str, int] = {}  # consecutive priority calls per queue, counted over every call (as the service)
    for call in hall.calls:
        c = call.ticket
        run[c.queue] = run.get(c.queue, 0) + 1 if c.priority else 0
        ratio = hall.policies[c.queue].ratio
        if call.targeted or not c.priority or ratio == 0:
            continue  # targeted tickets come first by rule 1; ratio 0 is plain FIFO
        normal_waits = any(not r.priority for r in _callable_in_queue(call.waiting, c.queue, call.now))
        if normal_waits:
            assert run[c.queue] <= ratio, (
                f"{run[c.queue]} priority calls in a row from {c.queue} (ratio {ratio}) while a normal waited")


@PROPS
@given(halls())
def test_property_no_starvation_when_arrivals_stop(h: tuple[Hall, float, list[int]]) -> None:
    hall, step, worder = h
    n = len(hall.arrivals)
    hall.run(step, 2 * n + 200, worder)
    assert not hall.waiting, f"tickets never called: {hall.waiting}"
    assert sorted(c.ticket.ticket_id for c in hall.calls) == list(range(1, n + 1))


@PROPS
@given(halls(need_max_wait=True, n_max=32))
def test_property_aged_normal_is_never_passed_over_by_a_later_ticket(h: tuple[Hall, float, list[int]]) -> None:
    hall, step, worder = h
    hall.run(step, 600, worder)
    assert not hall.waiting
    for call in hall.calls:
        if call.targeted:
            continue  # rule 1: a ticket sent to this window comes first
        served = hall.windows[call.window][0]
        aged = [r for q in served for r in _callable_in_queue(call.waiting, q, call.now)
                if not r.priority and call.now - r.place >= hall.policies[q].max_wait]  # type: ignore[operator]
        for r in aged:
            assert call.ticket.place <= r.place, (
                f"{call.window} called {call.ticket} at {call.now - T0:.0f} while aged normal {r} waited")


@PROPS
@given(halls())
def test_property_rank_returns_each_callable_candidate_once_and_only_its_own(h: tuple[Hall, float, list[int]]) -> None:
    hall, step, worder = h
    hall.run(step, 400, worder)
    for window, now, waiting, ranked in hall.ranks:
        queues = hall.windows[window][0]
        got = [c.ticket_id for c in ranked]
        assert len(got) == len(set(got))
        for c in ranked:
            assert c.eligible_at <= now
            assert c.target_window == window or (c.target_window is None and c.queue in queues)
        expected = {c.ticket_id for c in waiting if c.eligible_at <= now and (
            c.target_window == window or (c.target_window is None and c.queue in queues))}
        assert set(got) == expected
        targeted = [c for c in ranked if c.target_window is not None]
        assert ranked[: len(targeted)] == targeted  # targeted tickets first


@PROPS
@given(halls(targeted=False, n_max=15), st.integers(min_value=0, max_value=3))
def test_property_rank_order_is_the_order_of_successive_calls(h: tuple[Hall, float, list[int]], streak0: int) -> None:
    """Without targeted tickets, rank's list equals what one window gets by calling again and again."""
    hall, _step, _worder = h
    window = "W1"
    queues, order = hall.windows[window]
    now = T0 + 700
    waiting = [c for _, c in hall.arrivals]
    streak = {q: streak0 for q in hall.policies}
    ranked = routing.rank(window, queues, waiting, hall.policies, RoutingState(dict(streak)), now, order)
    successive = []
    while True:
        r = routing.rank(window, queues, waiting, hall.policies, RoutingState(dict(streak)), now, order)
        if not r:
            break
        successive.append(r[0])
        streak[r[0].queue] = apply_call(streak.get(r[0].queue, 0), r[0].priority)
        waiting = [c for c in waiting if c != r[0]]
    assert ranked == successive
