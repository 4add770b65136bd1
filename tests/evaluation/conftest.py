from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from hall_server.config import HallConfig, load_config
from tests.hall_server.conftest import FakeClock, HallClient, clock, db_url, make_client  # noqa: F401

EVAL_HALL = Path(__file__).parent / "eval_hall.toml"


@pytest.fixture
def eval_config() -> HallConfig:
    return load_config(EVAL_HALL)


@pytest.fixture
def hall(eval_config: HallConfig, db_url: str, clock: FakeClock) -> Iterator[HallClient]:  # noqa: F811
    hc = make_client(eval_config, db_url, clock)
    for user in ("clerk1", "clerk2", "clerk3", "boss"):
        hc.login(user)
    for device in ("kiosk1", "evalpad-1", "evalpad-2", "gw"):
        hc.device(device)
    yield hc
    hc.db.dispose()
