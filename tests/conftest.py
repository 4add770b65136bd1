"""Shared fixtures. Server tests run on SQLite and on the real PostgreSQL (HALL_TEST_PG_URL)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PG_URL = os.environ.get("HALL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HALL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parent.parent


def pg_available() -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # PostgreSQL is part of the product: in CI its absence is a failure, not a skip.
    if os.environ.get("CI") and not pg_available():
        raise pytest.UsageError(f"PostgreSQL is not reachable at {PG_URL}; `make test` should have started it")


from tests.browser import browser, page  # noqa: E402,F401  (page tests in every folder)
