"""Shared fixtures. Server tests run on SQLite and on the real PostgreSQL (HALL_TEST_PG_URL)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PG_URL = os.environ.get("HALL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HALL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parent.parent


def _own_worker_resources() -> None:
    """Under pytest-xdist every worker gets a PostgreSQL database and a Redis db number of its own
    (``test`` -> ``test_gw0``, ``test_gw1`` ...; Redis 15 -> 15, 14 ...), so tests that reset the schema
    or listen on Redis never see another worker's. Subprocesses the tests start inherit them."""
    global PG_URL, REDIS_URL
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    n = int(worker[2:])
    base, db = PG_URL.rsplit("/", 1)
    PG_URL = f"{base}/{db}_{worker}"
    rbase, rdb = REDIS_URL.rsplit("/", 1)
    REDIS_URL = f"{rbase}/{(int(rdb or 0) - n) % 16}"
    os.environ["HALL_TEST_PG_URL"], os.environ["HALL_TEST_REDIS_URL"] = PG_URL, REDIS_URL
    import sqlalchemy as sa
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

    @retry(retry=retry_if_exception_type(sa.exc.DBAPIError), stop=stop_after_attempt(5), wait=wait_fixed(0.5),
           reraise=True)  # two workers creating at once: "template1 is being accessed by other users"
    def create() -> None:
        admin = sa.create_engine(f"{base}/{db}", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": f"{db}_{worker}"}).scalar():
                conn.execute(sa.text(f'CREATE DATABASE "{db}_{worker}"'))

    try:
        create()
    except sa.exc.DBAPIError:
        pass  # PostgreSQL down: pg_available() and the PostgreSQL fixtures report it where it matters


_own_worker_resources()


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


from tests.browser import browser, page, utc_page  # noqa: E402,F401  (page tests in every folder)
