"""好差评 rules (国办发〔2019〕51号, GB/T 39734): grades, what counts as good or bad, the satisfaction
rate, and follow-up deadlines counted in working days. Pure: no database or web code.

Grades are stored as 5..1 (5 非常满意 ... 1 非常不满意); NULL means the citizen did not rate
(未评价) before the pad's timeout. Unrated visits are counted but never enter the rate.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

GRADE_LABELS: dict[int, str] = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
GRADE_CODES: dict[str, int] = {
    "very_satisfied": 5, "satisfied": 4, "basic": 3, "dissatisfied": 2, "very_dissatisfied": 1,
}
CLASS_LABELS = {"good": "好评", "mid": "中评", "bad": "差评", "unrated": "未评价"}
SUB_SCORES: dict[str, str] = {"efficiency": "服务效率", "level": "服务水平", "attitude": "服务态度"}
UNRATED_LABEL = "未评价"
ONLINE_STAGE = "一事一评"  # the stage key of the one online evaluation of a ticket (一事一评)
DEFAULT_TIMEOUT_SECONDS = 30
LATE_GRACE_SECONDS = 15  # a pad answer travelling through the gateway may arrive a little after the timeout


def label(grade: int | None) -> str:
    return UNRATED_LABEL if grade is None else GRADE_LABELS[grade]


def valid_grade(grade: int) -> bool:
    return grade in GRADE_LABELS


def is_good(grade: int | None) -> bool:
    """好评: 非常满意 or 满意."""
    return grade is not None and grade >= 4


def is_mid(grade: int | None) -> bool:
    return grade == 3


def is_bad(grade: int | None) -> bool:
    """差评: 不满意 or 非常不满意. Every one opens a follow-up case."""
    return grade is not None and grade <= 2


def grade_class(grade: int | None) -> str:
    if grade is None:
        return "unrated"
    return "good" if is_good(grade) else "mid" if is_mid(grade) else "bad"


def satisfaction_rate(grades: Iterable[int | None]) -> float | None:
    """(非常满意 + 满意) / rated; None when nothing was rated (not 0 %, not 100 %)."""
    rated = [g for g in grades if g is not None]
    if not rated:
        return None
    return sum(1 for g in rated if is_good(g)) / len(rated)


def is_working_day(day: dt.date, holidays: Iterable[dt.date] = (), workdays: Iterable[dt.date] = ()) -> bool:
    """Monday to Friday, except listed holidays; ``workdays`` lists weekend days worked (调休上班)."""
    if day in set(workdays):
        return True
    return day.weekday() < 5 and day not in set(holidays)


def add_working_days(start: dt.date, n: int, holidays: Iterable[dt.date] = (),
                     workdays: Iterable[dt.date] = ()) -> dt.date:
    """The date ``n`` working days after ``start`` (the day of the review does not count).
    Friday + 5 working days is the next Friday."""
    hol, work = set(holidays), set(workdays)
    day = start
    left = n
    while left > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, hol, work):
            left -= 1
    return day


def is_overdue(deadline: dt.date, today: dt.date, closed: bool) -> bool:
    """An open case is overdue from the day after its deadline (the deadline day itself is in time)."""
    return not closed and today > deadline


def clean_sub_scores(scores: dict[str, int] | None) -> dict[str, int] | None:
    """Keep only the three national sub-scores, each 1..5; raises ValueError naming the bad key."""
    if not scores:
        return None
    out: dict[str, int] = {}
    for key, value in scores.items():
        if key not in SUB_SCORES:
            raise ValueError(f"未知的分项评价 {key!r}（可用: {', '.join(SUB_SCORES)}）")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
            raise ValueError(f"分项评价 {SUB_SCORES[key]}({key}) 应为 1-5 的整数，收到 {value!r}")
        out[key] = value
    return out
