"""Ticket and window states; every legal transition is listed here and nowhere else."""
from __future__ import annotations

import enum


class TicketStatus(str, enum.Enum):
    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    FINISHED = "finished"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # still waiting when the service day ended (midnight policy "close")


ACTIVE_STATES = frozenset({TicketStatus.CALLED, TicketStatus.SERVING})
OPEN_STATES = frozenset({TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.SERVING})
FINAL_STATES = frozenset({TicketStatus.FINISHED, TicketStatus.CANCELLED, TicketStatus.EXPIRED})


class Action(str, enum.Enum):
    CALL = "call"
    RECALL = "recall"
    START = "start"
    FINISH = "finish"
    NO_SHOW = "no_show"
    REACTIVATE = "reactivate"
    TRANSFER = "transfer"
    CANCEL = "cancel"
    EXPIRE = "expire"


TRANSITIONS: dict[Action, tuple[frozenset[TicketStatus], TicketStatus | None]] = {
    # action: (states it may start from, state it leads to; None = stays in the same state)
    Action.CALL: (frozenset({TicketStatus.WAITING}), TicketStatus.CALLED),
    Action.RECALL: (frozenset({TicketStatus.CALLED}), None),
    Action.START: (frozenset({TicketStatus.CALLED}), TicketStatus.SERVING),
    Action.FINISH: (frozenset({TicketStatus.SERVING}), TicketStatus.FINISHED),
    Action.NO_SHOW: (frozenset({TicketStatus.CALLED}), TicketStatus.NO_SHOW),
    Action.REACTIVATE: (frozenset({TicketStatus.NO_SHOW}), TicketStatus.WAITING),
    Action.TRANSFER: (frozenset({TicketStatus.CALLED, TicketStatus.SERVING}), TicketStatus.WAITING),
    Action.CANCEL: (frozenset({TicketStatus.WAITING, TicketStatus.NO_SHOW}), TicketStatus.CANCELLED),
    Action.EXPIRE: (frozenset({TicketStatus.WAITING}), TicketStatus.EXPIRED),
}

STATUS_LABELS = {
    TicketStatus.WAITING: "等候中",
    TicketStatus.CALLED: "已叫号",
    TicketStatus.SERVING: "办理中",
    TicketStatus.FINISHED: "已办结",
    TicketStatus.NO_SHOW: "过号",
    TicketStatus.CANCELLED: "已取消",
    TicketStatus.EXPIRED: "已过期",
}

ACTION_LABELS = {
    Action.CALL: "叫号",
    Action.RECALL: "重呼",
    Action.START: "开始办理",
    Action.FINISH: "办结",
    Action.NO_SHOW: "过号",
    Action.REACTIVATE: "过号重排",
    Action.TRANSFER: "转移",
    Action.CANCEL: "取消",
    Action.EXPIRE: "过期",
}


class IllegalTransition(ValueError):
    def __init__(self, action: Action, status: TicketStatus, number: str = "") -> None:
        self.action = action
        self.status = status
        who = f"{number} " if number else ""
        super().__init__(
            f"票号{who}当前状态为“{STATUS_LABELS[status]}”，不能{ACTION_LABELS[action]}"
            f" (ticket {number or '?'} is {status.value}; {action.value} is not allowed)"
        )


def next_status(action: Action, status: TicketStatus, number: str = "") -> TicketStatus:
    sources, target = TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(action, status, number)
    return status if target is None else target


class WindowStatus(str, enum.Enum):
    CLOSED = "closed"  # nobody signed in
    IDLE = "idle"  # signed in, no ticket
    CALLING = "calling"  # a ticket called, citizen walking to the window
    SERVING = "serving"
    PAUSED = "paused"


WINDOW_LABELS = {
    WindowStatus.CLOSED: "未开放",
    WindowStatus.IDLE: "空闲",
    WindowStatus.CALLING: "叫号中",
    WindowStatus.SERVING: "办理中",
    WindowStatus.PAUSED: "暂停服务",
}


def window_status(signed_in: bool, paused: bool, ticket_status: TicketStatus | None) -> WindowStatus:
    """A window's status is derived, never stored twice."""
    if not signed_in:
        return WindowStatus.CLOSED
    if ticket_status == TicketStatus.CALLED:
        return WindowStatus.CALLING
    if ticket_status == TicketStatus.SERVING:
        return WindowStatus.SERVING
    if paused:
        return WindowStatus.PAUSED
    return WindowStatus.IDLE
