"""The webhooks' statements, compiled once per dialect and handed to the driver directly.

On these machines `Connection.execute` spends 150 to 300 µs around each statement (the
execution context, events, result metadata), several times what SQLite takes to run it:
on a webhook that stores one row it is most of the cost. A `Statement` here is a Core
statement compiled once for each dialect; `run` gives its SQL and parameters to the
driver's cursor on the Connection's own driver connection, converted by the same type
processors SQLAlchemy uses (UTC timestamps, JSON), and converts the rows back likewise.

What stays SQLAlchemy's: the transaction (a statement runs in the Connection's, begun first
if there is none, as `execute` would, so commit, rollback and an ORM session sharing it are
unchanged), its error handling (a driver error is raised as SQLAlchemy's `DBAPIError`, a
dropped connection invalidated with the pool's older ones), and `before_cursor_execute`
listeners, which see the statement as the driver gets it. `Alone` goes one step further for
a webhook that stores one statement or only reads: a pooled driver connection without a
Connection around it, each statement committing on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, Connection, Dialect, Engine, Executable, literal
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


def one_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (...)` over values fixed when the statement is built: compiled once, with no expansion per run."""
    return column.in_([literal(value, column.type) for value in values])


def none_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column NOT IN (...)` over values fixed when the statement is built (see one_of)."""
    return column.not_in([literal(value, column.type) for value in values])


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters in the order of the SQL's placeholders
    positional: bool  # SQLite's driver takes a sequence (qmark), psycopg a mapping (pyformat)
    fixed: dict[str, Any]  # values fixed in the statement (one_of, literal), already converted
    column_defaults: tuple[tuple[str, Callable[[], Any]], ...]  # for the columns a statement leaves out
    to_driver: tuple[tuple[str, Processor], ...]  # parameters the driver takes converted
    from_driver: tuple[tuple[int, Processor], ...]  # the result columns the driver gives unconverted, by position
    in_order: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # the values in the placeholders' order (qmark)

    def parameters(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = {**self.fixed, **params}
        for name, default in self.column_defaults:
            if name not in params:
                values[name] = default()
        for name, process in self.to_driver:
            values[name] = process(values[name])
        return self.in_order(values) if self.positional else values

    def rows(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self.from_driver:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            values = list(row)
            for index, process in self.from_driver:
                values[index] = process(values[index])
            converted.append(tuple(values))
        return converted


class Statement:
    """A Core statement run by `run`: compiled once per dialect (no expanding IN: use one_of)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self.keys = tuple(column.key for column in getattr(statement, "exported_columns", ()))  # its rows' names
        self._compiled: dict[str, _Compiled] = {}

    def mapping(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A row of this statement, by its columns' names."""
        return dict(zip(self.keys, row, strict=True))

    def compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return compiled


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    if compiled.has_out_parameters or compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError(f"not a statement to compile once: {compiled.string}")
    if compiled.escaped_bind_names:
        raise ValueError(f"bind names the driver cannot take as they are: {sorted(compiled.escaped_bind_names)}")
    defaults = compiled.params
    names = tuple(compiled.positiontup or defaults)
    # The dialect's own form of each type (SQLite's DATETIME as text), as SQLAlchemy's execute uses them.
    processors = {name: compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names}
    column_defaults = _column_defaults(compiled)
    given = {name for name in names if compiled.binds[name].required or name in column_defaults}
    fixed = {}
    for name in names:
        if name not in given:
            process = processors[name]
            fixed[name] = defaults[name] if process is None else process(defaults[name])
    columns = list(getattr(statement, "exported_columns", ()))
    result_processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    return _Compiled(
        sql=compiled.string,
        names=names,
        positional=compiled.positional,
        fixed=fixed,
        column_defaults=tuple(column_defaults.items()),
        to_driver=tuple((name, process) for name, process in processors.items() if process and name in given),
        from_driver=tuple((index, process) for index, process in enumerate(result_processors) if process),
        in_order=_in_order(names),
    )


def _in_order(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function of the values by name that gives them as a tuple in `names`' order (itemgetter's speed)."""
    if len(names) > 1:
        return itemgetter(*names)
    return lambda values: tuple(values[name] for name in names)


def _column_defaults(compiled: SQLCompiler) -> dict[str, Callable[[], Any]]:
    """The Python-side defaults (`default=`, `onupdate=`) of the columns the statement leaves to them, by
    parameter name: SQLAlchemy's execute computes them before each run, and so does `run`."""
    made: dict[str, Callable[[], Any]] = {}
    for columns, attribute in ((compiled.insert_prefetch, "default"), (compiled.update_prefetch, "onupdate")):
        for column in columns:
            default = getattr(column, attribute)
            if default is None or not (default.is_scalar or default.is_callable):
                raise ValueError(f"a default SQLAlchemy computes otherwise, for {column}")
            if column.key not in compiled.binds:
                raise ValueError(f"no parameter named {column.key} for the default of {column}")
            made[column.key] = partial(_constant, default.arg) if default.is_scalar else partial(default.arg, None)
    return made


def _constant(value: Any) -> Any:
    return value


class Alone:
    """A pooled driver connection of `engine` on which each statement commits on its own, outside any
    transaction (PostgreSQL's driver in autocommit; SQLite's never begins by itself, storage.db): for a
    webhook whose work is one statement, without what a Connection costs around it. Close it after use.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.connection = engine.raw_connection()
        self._autocommit = self.dialect.name == "postgresql"
        if self._autocommit:
            self.connection.driver_connection.autocommit = True  # type: ignore[union-attr]

    def close(self) -> None:
        try:
            if self._autocommit and self.connection.is_valid:
                self.connection.driver_connection.autocommit = False  # type: ignore[union-attr]
        finally:
            self.connection.close()

    def __enter__(self) -> Alone:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def run(
    connection: Connection | Alone,
    statement: Statement,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = {},
) -> list[tuple[Any, ...]]:
    """Run `statement` in the connection's transaction (or on its own, on `Alone`), on the driver's cursor;
    its rows, as tuples. A list of mappings runs it once for each (executemany; no rows come back).
    """
    if isinstance(connection, Connection) and not connection.in_transaction():
        connection.begin()  # as Connection.execute would (autobegin)
    compiled = statement.compiled(connection.dialect)
    if isinstance(params, Mapping):
        # Rows only from a statement that has result columns: a SELECT, or one with RETURNING.
        rows = execute_sql(connection, compiled.sql, compiled.parameters(params), rows=bool(statement.keys))
        return compiled.rows(rows)
    execute_sql(connection, compiled.sql, [compiled.parameters(each) for each in params], many=True)
    return []


def execute_sql(
    connection: Connection | Alone, sql: str, params: Any = (), *, many: bool = False, rows: bool = False
) -> list[Any]:
    """SQL for the driver as it is, on the connection's driver connection, as it stands (no autobegin):
    the driver's rows, when the statement has `rows` (told, not read off the cursor: psycopg builds its
    description anew at each look, some 2 µs a column). For statements compiled by `Statement`, and for
    storage.db's BEGIN."""
    cursor = connection.connection.cursor()
    try:
        dispatch = connection.dispatch if isinstance(connection, Connection) else connection.engine.dispatch
        listeners = dispatch.before_cursor_execute
        if listeners:
            for listener in listeners:
                listener(connection, cursor, sql, params, None, many)
        if many:
            cursor.executemany(sql, params)
            return []
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if rows else []
    except connection.dialect.loaded_dbapi.Error as error:
        if isinstance(connection, Connection):
            # SQLAlchemy's own handling: wrapped in DBAPIError, a disconnect invalidating the pool's connections.
            connection._handle_dbapi_exception(error, sql, params, cursor, None)
        raise _wrapped(connection, error, sql, params, cursor) from error
    finally:
        cursor.close()


def _wrapped(alone: Alone, error: Any, sql: str, params: Any, cursor: Any) -> StatementError:
    """A driver error on `Alone`, as SQLAlchemy would raise it; on a disconnect, the connection and the
    pool's idle ones (opened before, so likely dropped too) are discarded, as SQLAlchemy does (by
    `Engine.dispose`, which storage.db.make_notes_engine's companion engines listen to)."""
    disconnected = alone.dialect.is_disconnect(error, alone.connection.driver_connection, cursor)
    if disconnected:
        alone.connection.invalidate(error)
        alone.engine.dispose()
    return DBAPIError.instance(
        sql,
        params,
        error,
        alone.dialect.loaded_dbapi.Error,
        hide_parameters=alone.engine.hide_parameters,
        connection_invalidated=disconnected,
        dialect=alone.dialect,
    )
