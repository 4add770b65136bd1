"""PostgreSQL: many rows in one INSERT whose text does not grow with them.

``INSERT .. SELECT .. FROM unnest(%s::type[], ..)`` takes one array parameter per column. A multi-row
``VALUES`` list (SQLAlchemy's "insertmanyvalues") has a text of its own for every number of rows, and
psycopg caches its parse of a query text only below 4 KB: a batch of 30 tickets was parsed anew on
every execution, 8 % of the server's CPU when issuing (docs/benchmarks.md, seventh round). This text is
parsed once and, like every statement here, prepared once per connection. Used for an issue batch's
tickets; a transaction's one or two events stay a VALUES list in its commit message (``service``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from sqlalchemy import Float, Table
from sqlalchemy.dialects import postgresql


class UnnestInsert:
    """An INSERT of ``columns`` of ``table`` answering the ``returning`` columns of each row; rows are
    inserted, and take ids from their sequence, in the order given (``WITH ORDINALITY .. ORDER BY``)."""

    def __init__(self, table: Table, columns: Sequence[str], returning: Sequence[str]) -> None:
        dialect = postgresql.dialect()
        quote = dialect.identifier_preparer.quote
        self.columns = tuple(columns)
        types = [table.c[c].type for c in self.columns]
        self._floats = {c for c, t in zip(self.columns, types) if isinstance(t, Float)}
        names = ", ".join(quote(c) for c in self.columns)
        arrays = ", ".join(f"%s::{t.compile(dialect=dialect)}[]" for t in types)
        aliases = ", ".join(f"c{i}" for i in range(len(self.columns)))
        self.sql = (f"INSERT INTO {quote(table.name)} ({names}) SELECT {aliases} FROM unnest({arrays}) "
                    f"WITH ORDINALITY AS u({aliases}, ord) ORDER BY ord "
                    f"RETURNING {', '.join(quote(c) for c in returning)}")

    def params(self, rows: Sequence[Mapping[str, object]]) -> list[list[object]]:
        """One list per column. A column's list must hold one Python type (psycopg dumps it as one
        array), so a float column's whole numbers become floats."""
        out = []
        for c in self.columns:
            values = [r.get(c) for r in rows]
            if c in self._floats:
                values = [None if v is None else float(v) for v in values]  # type: ignore[arg-type]
            out.append(values)
        return out
