"""The pure 好差评 rules: classes of grades, the satisfaction rate, working-day deadlines."""
from __future__ import annotations

import datetime as dt

import pytest

from hall_server.rules import evaluation as r


def test_grades_classes_and_rate() -> None:
    assert [r.grade_class(g) for g in (5, 4, 3, 2, 1, None)] == ["good", "good", "mid", "bad", "bad", "unrated"]
    assert r.label(None) == "未评价" and r.label(2) == "不满意"
    assert r.satisfaction_rate([5, 4, 3, 1, None, None]) == 0.5  # unrated visits do not count
    assert r.satisfaction_rate([None]) is None


def test_working_days_skip_weekends_and_holidays_and_count_make_up_days() -> None:
    fri = dt.date(2026, 11, 20)
    assert r.add_working_days(fri, 5) == dt.date(2026, 11, 27)
    assert r.add_working_days(fri, 5, holidays=[dt.date(2026, 11, 24)]) == dt.date(2026, 11, 30)
    assert r.add_working_days(fri, 1, workdays=[dt.date(2026, 11, 21)]) == dt.date(2026, 11, 21)
    assert not r.is_overdue(dt.date(2026, 11, 27), dt.date(2026, 11, 27), closed=False)
    assert r.is_overdue(dt.date(2026, 11, 27), dt.date(2026, 11, 28), closed=False)
    assert not r.is_overdue(dt.date(2026, 11, 27), dt.date(2026, 12, 28), closed=True)


def test_sub_scores_are_the_three_national_ones() -> None:
    assert r.clean_sub_scores({"attitude": 5}) == {"attitude": 5}
    with pytest.raises(ValueError, match="speed"):
        r.clean_sub_scores({"speed": 5})
    with pytest.raises(ValueError, match="服务态度"):
        r.clean_sub_scores({"attitude": 6})
