"""hall_server.rules.estimate: when a ticket's measured wait begins."""
from __future__ import annotations

import datetime as dt

from hall_server.rules.estimate import waiting_since

CHECK_IN = dt.datetime(2026, 11, 20, 2, 10, tzinfo=dt.timezone.utc)  # 10:10 in Shanghai


def test_a_walk_in_waits_from_its_ticket() -> None:
    assert waiting_since(CHECK_IN, {"channel": "kiosk"}) == CHECK_IN
    assert waiting_since(CHECK_IN, None) == CHECK_IN


def test_an_appointment_waits_from_its_slot_or_its_check_in_whichever_is_later() -> None:
    assert waiting_since(CHECK_IN, {"wait_from": "2026-11-20T10:30:00+08:00"}) == CHECK_IN + dt.timedelta(minutes=20)
    assert waiting_since(CHECK_IN, {"wait_from": "2026-11-20T10:00:00+08:00"}) == CHECK_IN


def test_unreadable_or_zoneless_slots_fall_back_to_the_ticket() -> None:
    for bad in ("half past ten", "2026-11-20T10:30:00", 42, ""):
        assert waiting_since(CHECK_IN, {"wait_from": bad}) == CHECK_IN
