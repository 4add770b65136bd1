"""PostgreSQL: the call path's statements sent through psycopg directly.

SQLAlchemy's execution layer costs ~200 µs of CPU per statement on top of psycopg's own work
(``python -m bench.statement_cost``: 253 against 65 µs for the window's lock, 426 against 210 for the
candidates), and a window action runs three or four such statements. A ``RawStatement`` is a Core
statement compiled once for the PostgreSQL dialect; it is run on the session's own psycopg connection,
inside the session's transaction, with the types' bind and result processing applied as SQLAlchemy
would (``UTCDateTime``), and answers plain tuples. Used only where the service builds model objects
from rows itself (``QueueService._record``), so nothing of the ORM is skipped that the path used.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from psycopg import ClientCursor
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


def driver_connection(s: Session) -> Any:
    """The psycopg connection under the session's transaction (begun if it was not); kept in the
    session for the transaction (asking SQLAlchemy for it costs ~50 µs each time)."""
    transaction, hit = s.get_transaction(), s.info.get("driver_connection")
    if transaction is not None and hit is not None and hit[0] is transaction:
        return hit[1]
    raw = s.connection().connection.driver_connection
    s.info["driver_connection"] = (s.get_transaction(), raw)
    return raw


class RawStatement:
    """``stmt`` (a SELECT, or an UPDATE without RETURNING for ``render``) compiled once for ``dialect``."""

    def __init__(self, stmt: Any, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self._compiled = compiled
        self._bind: list[tuple[str, Callable[[Any], Any]]] = [
            (name, proc) for name, bp in compiled.binds.items()
            if (proc := bp.type.bind_processor(dialect)) is not None]
        columns = getattr(stmt, "selected_columns", ())
        self._result: list[Callable[[Any], Any] | None] = [c.type.result_processor(dialect, None) for c in columns]
        self._processed = any(p is not None for p in self._result)

    def params(self, values: Mapping[str, object]) -> dict[str, Any]:
        params = self._compiled.construct_params(values)
        for name, proc in self._bind:
            if name in params:
                params[name] = proc(params[name])
        return params

    def rows(self, raw: Any, values: Mapping[str, object]) -> list[tuple[Any, ...]]:
        """Run it on psycopg connection ``raw`` (prepared as the engine's connections prepare)."""
        with raw.cursor() as cur:
            cur.execute(self.sql, self.params(values))
            rows: Sequence[tuple[Any, ...]] = cur.fetchall()
        if not self._processed:
            return list(rows)
        procs = self._result
        return [tuple(v if p is None else p(v) for p, v in zip(procs, row)) for row in rows]

    def render(self, raw: Any, values: Mapping[str, object]) -> str:
        """The statement with its parameters bound as literals (psycopg's client-side binding), for a
        message that sends several statements at once."""
        return ClientCursor(raw).mogrify(self.sql, self.params(values))
