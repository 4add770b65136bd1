"""Fixtures of the manager dashboard tests: the app on SQLite and PostgreSQL with a fake clock."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from hall_server.config import HallConfig, load_config
from tests.hall_server.conftest import FakeClock, HallClient, clock, db_url, make_client  # noqa: F401

HERE = Path(__file__).parent


@pytest.fixture
def manager_config() -> HallConfig:
    return load_config(HERE / "manager_hall.toml")


@pytest.fixture
def hall(manager_config: HallConfig, db_url: str, clock: FakeClock) -> Iterator[HallClient]:  # noqa: F811
    hc = make_client(manager_config, db_url, clock)
    for who in ("clerk1", "clerk2", "clerk9", "boss"):
        hc.login(who)
    for device in ("kiosk1", "eval1", "gw"):
        hc.device(device)
    yield hc
    hc.db.dispose()
