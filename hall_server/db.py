"""Engine and sessions. SQLite runs in WAL mode and takes its write lock at BEGIN (``BEGIN IMMEDIATE``)
so concurrent writers queue on the busy timeout instead of failing on a lock upgrade."""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
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
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self.closed = False
        self.engine = make_engine(url, pool_size=pool_size)
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
