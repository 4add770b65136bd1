"""Reports are computed on the evaluation tests' hall (it has pads, so satisfaction figures exist)."""
from __future__ import annotations

from tests.evaluation.conftest import EVAL_HALL, eval_config, hall  # noqa: F401
from tests.hall_server.conftest import FakeClock, HallClient, clock, db_url, make_client  # noqa: F401
