"""Which ticket a window calls next.

The rule, in the order it is applied:

1. **Tickets sent to this window** (a transfer to a named window) come first, oldest place first.
2. **Queues in the window's order.** A window lists the queues it serves. With ``order="preference"``
   it serves the first queue that has a callable ticket, then the next; with ``order="longest_wait"``
   (typical for a 综合窗口 serving every queue) it serves the queue whose head has waited longest.
   In both modes a queue head that has waited past its queue's ageing bound (``max_wait``) is served
   before any queue head that has not, oldest first, so no queue behind a busier one starves.
3. **Within a queue**, priority tickets (elderly, disabled, green channel, appointments ...) go before
   normal ones, but at most ``ratio`` priority calls in a row while a normal ticket waits; then one
   normal ticket is called. A normal ticket that has waited past ``max_wait`` is called before any
   priority ticket. ``ratio=0`` turns priority off for the queue (pure FIFO).
4. **Within a class**, first in, first out by ``place`` (the issue time; an appointment's place is its
   slot time; a transferred ticket keeps its original issue time; a re-activated no-show gets a place
   behind a few waiting tickets).
5. A ticket whose ``eligible_at`` lies in the future (an appointment checked in early) is not callable yet.

:func:`rank` returns every callable candidate in the order the rule would call them, so the caller can
try to claim the first and fall back to the next when another window got there first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Literal


@dataclass(frozen=True)
class Candidate:
    ticket_id: int
    queue: str
    place: float  # seconds since the epoch: the ticket's position in its queue
    priority: bool = False
    eligible_at: float = 0.0
    target_window: str | None = None


@dataclass(frozen=True)
class QueuePolicy:
    ratio: int = 2  # priority calls allowed in a row while a normal ticket waits
    max_wait: float | None = None  # seconds; ageing bound for normal tickets and queue heads


@dataclass
class RoutingState:
    """Per queue: how many priority tickets were called in a row. Persisted by the caller."""

    priority_streak: dict[str, int] = field(default_factory=dict)


def _pick_in_queue(items: list[Candidate], policy: QueuePolicy, streak: int, now: float) -> Candidate:
    normals = [c for c in items if not c.priority]
    prios = [c for c in items if c.priority]
    n = min(normals, key=lambda c: (c.place, c.ticket_id)) if normals else None
    p = min(prios, key=lambda c: (c.place, c.ticket_id)) if prios else None
    if p is None or n is None:
        chosen = p or n
        assert chosen is not None
        return chosen
    if policy.ratio == 0:  # priority off: plain first in, first out
        return min((n, p), key=lambda c: (c.place, c.ticket_id))
    if policy.max_wait is not None and now - n.place >= policy.max_wait:
        return n
    return p if streak < policy.ratio else n


def _head_order(
    heads: dict[str, Candidate], queues: list[str], policies: dict[str, QueuePolicy],
    order: Literal["preference", "longest_wait"], now: float,
) -> list[str]:
    def aged(q: str) -> bool:
        mw = policies.get(q, QueuePolicy()).max_wait
        return mw is not None and now - heads[q].place >= mw

    present = [q for q in queues if q in heads]
    overdue = sorted((q for q in present if aged(q)), key=lambda q: heads[q].place)
    rest = [q for q in present if q not in overdue]
    if order == "longest_wait":
        rest.sort(key=lambda q: heads[q].place)
    return overdue + rest


def rank(
    window: str,
    queues: list[str],
    candidates: Iterable[Candidate],
    policies: dict[str, QueuePolicy],
    state: RoutingState,
    now: float,
    order: Literal["preference", "longest_wait"] = "preference",
) -> list[Candidate]:
    """All callable candidates for ``window``, in the order the rule calls them."""
    pool = [c for c in candidates if c.eligible_at <= now]
    targeted = sorted((c for c in pool if c.target_window == window), key=lambda c: (c.place, c.ticket_id))
    by_queue: dict[str, list[Candidate]] = {}
    for c in pool:
        if c.target_window is None and c.queue in queues:
            by_queue.setdefault(c.queue, []).append(c)
    streak = dict(state.priority_streak)
    for c in targeted:  # calls of tickets sent to this window count in their queue's streak too
        streak[c.queue] = apply_call(streak.get(c.queue, 0), c.priority)
    out = list(targeted)
    while by_queue:
        heads = {
            q: _pick_in_queue(items, policies.get(q, QueuePolicy()), streak.get(q, 0), now)
            for q, items in by_queue.items()
        }
        q = _head_order(heads, queues, policies, order, now)[0]
        chosen = heads[q]
        out.append(chosen)
        streak[q] = apply_call(streak.get(q, 0), chosen.priority)
        by_queue[q].remove(chosen)
        if not by_queue[q]:
            del by_queue[q]
    return out


def apply_call(streak: int, priority: bool) -> int:
    """The priority streak after a call: grows on a priority call, resets on a normal one."""
    return streak + 1 if priority else 0


def reactivation_place(waiting_places: list[float], behind: int, now: float) -> float:
    """Place for a returning no-show: behind ``behind`` waiting tickets, or last if fewer wait."""
    places = sorted(waiting_places)
    if behind <= 0:
        return (places[0] - 0.001) if places else now
    if len(places) <= behind:
        return places[-1] + 0.001 if places else now
    mid = (places[behind - 1] + places[behind]) / 2
    return mid if mid > places[behind - 1] else math.nextafter(places[behind - 1], math.inf)


