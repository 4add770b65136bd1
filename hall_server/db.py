"""Engine and sessions. SQLite runs in WAL mode and takes its write lock at BEGIN (``BEGIN IMMEDIATE``)
so concurrent writers queue on the busy timeout instead of failing on a lock upgrade."""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from . import gevent_wait


def make_engine(url: str, *, pool_size: int = 20, prepared: bool = True) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            immediate = conn.get_execution_options().get("hall_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # LIFO: the connection used last goes out first, so a quiet hall runs on one or two connections
    # whose statements are prepared already. First-in-first-out turned every connection a burst had
    # opened (up to 40) and each had to prepare, and plan, every statement again: 43-52 PREPAREs in the
    # benchmark's paced 20 s against 26-28 (docs/benchmarks.md, eleventh round). Connections left
    # resting at the bottom are pinged when a burst needs them again (_ping_when_idle).
    engine = create_engine(url, pool_size=pool_size, max_overflow=20, pool_recycle=PLAN_LIFETIME, pool_use_lifo=True,
                           connect_args=_prepared(url) if prepared else {"prepare_threshold": None})
    _ping_when_idle(engine)
    gevent_wait.install()  # under gunicorn's gevent worker: psycopg waits on gevent's watchers
    return engine


PLAN_LIFETIME = 600  # seconds a PostgreSQL connection, and the plans prepared on it, are kept


def _prepared(url: str) -> dict[str, object]:
    """With ``[server] prepared_statements`` (the default) every statement is prepared on a connection
    the first time it runs there and keeps one generic plan. Planning costs more than running the call
    path's statements (the candidates union plans in ~2 ms and runs in ~0.6); psycopg prepares only
    from a statement's 5th run on a connection and PostgreSQL plans the first 5 runs of a prepared
    statement anew, so with a pool of connections and a call every few minutes per window, nearly every
    call planned every statement (docs/benchmarks.md, fourth round). Our statements filter on indexed
    equalities, where a generic plan is the custom one. Behind PgBouncer in transaction mode (before
    1.21) prepared statements must be off: ``prepared_statements = false``. ``options`` given in the
    database URL are kept.

    A generic plan is made from the table statistics of its first run and kept as long as its
    connection: plans made on a new hall's empty tables would read whole tables once they hold months
    of history. So connections are replaced after ``PLAN_LIFETIME`` (the pool's recycle time), and
    values that decide a plan, like ``status = 'waiting'``, are written into the statement
    (``models.status_is``)."""
    given = str(make_url(url).query.get("options") or "")
    return {"prepare_threshold": 0, "options": f"{given} -c plan_cache_mode=force_generic_plan".strip()}


PING_AFTER_IDLE = 5.0  # seconds a pooled PostgreSQL connection may rest before it is checked on checkout


def _ping_when_idle(engine: Engine) -> None:
    """A connection that rested in the pool may have been closed by the server (a restart, an idle
    timeout): check it with ``SELECT 1`` before use, and let the pool replace it if that fails. Only
    after a rest: SQLAlchemy's ``pool_pre_ping`` pings on every checkout, a round trip per
    transaction, while a busy hall's connections never rest long."""

    @event.listens_for(engine, "checkin")
    def _rested_since(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("checked_in", time.monotonic()) < PING_AFTER_IDLE:
            return
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
        except Exception as exc:  # the pool retries the checkout with a fresh connection
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, prepared: bool = True) -> None:
        self.url = url
        self.closed = False
        self.engine = make_engine(url, pool_size=pool_size, prepared=prepared)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(hall_write=True), expire_on_commit=False)
        # SQLite has one writer at a time anyway; queueing this process's writers on a lock instead of
        # in SQLite's busy handler (which sleeps up to 100 ms between retries) cuts the tail latency.
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if not self.is_postgres else contextlib.nullcontext())

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that will write: commits on success, rolls back on any error."""
        with self._write_lock, self._writer() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close the pool for good; background loops of this app (publisher, alert monitor) stop."""
        self.closed = True
        self.engine.dispose()
