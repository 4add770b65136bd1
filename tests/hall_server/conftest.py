from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Callable, Iterator

import pytest
import sqlalchemy as sa

from hall_server.config import HallConfig, load_config
from tests.conftest import PG_URL, pg_available

HERE = Path(__file__).parent
_pg_ready = False


def reset_postgres() -> None:
    """Empty the test database: the schema is rebuilt by the migrations on first use."""
    global _pg_ready
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        # connections a finished test left behind (a server thread still polling) would deadlock TRUNCATE
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        if not _pg_ready:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            tables = [r[0] for r in conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))]
            if tables:
                conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    _pg_ready = True


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hall.db"
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    reset_postgres()
    return PG_URL


@pytest.fixture
def small_config() -> HallConfig:
    return load_config(HERE / "small_hall.toml")


class FakeClock:
    """A controllable clock for midnight and ageing tests."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
def clock() -> FakeClock:
    # 10:00 in Shanghai
    return FakeClock(dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.timezone.utc))


@pytest.fixture
def request_ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"req-{next(counter):08d}"


class HallClient:
    """The app under test with signed-in principals; `call` raises on unexpected statuses."""

    def __init__(self, app, socketio, config: HallConfig) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.socketio = socketio
        self.config = config
        self.client = app.test_client()
        ext = app.extensions["hall"]
        self.service = ext["service"]
        self.auth = ext["auth"]
        self.db = ext["db"]
        self.tokens: dict[str, str] = {}
        self.admin_password: str | None = None
        self._ids = itertools.count()

    def login(self, username: str, password: str = "correct-horse-1") -> str:
        self.auth.set_password(username, password, one_time=False)
        r = self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.get_json()
        self.tokens[username] = r.get_json()["token"]
        return self.tokens[username]

    def device(self, device_id: str, hall: str = "t") -> str:
        self.tokens[device_id] = self.auth.device_token(hall, device_id)
        return self.tokens[device_id]

    def req(self, method: str, url: str, who: str | None = None, **kw):  # type: ignore[no-untyped-def]
        headers = kw.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.client.open(url, method=method, headers=headers, **kw)

    def issue(self, who: str = "kiosk1", hall: str = "t", expect: int = 201, **body):  # type: ignore[no-untyped-def]
        body.setdefault("request_id", f"rid-{next(self._ids):08d}")
        r = self.req("POST", f"/api/v1/halls/{hall}/tickets", who, json=body)
        assert r.status_code == expect, r.get_json()
        return r.get_json()

    def act(self, window: str, action: str, who: str = "clerk1", expect: int = 200, hall: str = "t", **body):  # type: ignore[no-untyped-def]
        r = self.req("POST", f"/api/v1/halls/{hall}/windows/{window}/{action}", who, json=body if body else None)
        assert r.status_code == expect, (action, r.status_code, r.get_json())
        return r.get_json()


def make_client(config: HallConfig, db_url: str, clock=None, tmp_path: Path | None = None, **kw) -> HallClient:  # type: ignore[no-untyped-def]
    from hall_server.app import create_app, prepare_database

    extra = {"clock": clock} if clock is not None else {}
    app, socketio = create_app(config, database_url=db_url, redis_url="", secret=b"test-secret-key", **extra, **kw)
    hc = HallClient(app, socketio, config)
    hc.admin_password = prepare_database(app)
    return hc


@pytest.fixture
def hall(small_config: HallConfig, db_url: str, clock: FakeClock) -> Iterator[HallClient]:
    hc = make_client(small_config, db_url, clock)
    hc.login("clerk1")
    hc.login("clerk2")
    hc.login("boss")
    hc.device("kiosk1")
    hc.device("pad1")
    yield hc
    hc.db.dispose()
