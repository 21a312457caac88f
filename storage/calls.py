"""A call's row as the webhooks read and change it: Core statements, one transaction, at most one write.

The webhooks are the hot path: each answers a caller who is waiting in silence. So a
webhook opens no transaction when its step needs nothing stored (a key leading to the
next menu), reads the call without locking it when it only reads, and otherwise locks the
call's row first (on SQLite: takes the write lock before reading, so that writers queue
instead of failing to upgrade), changes a `CallRecord` in memory and writes what changed
in one UPDATE. Statements go to the driver (storage.statements); the ORM shares the
connection and the transaction only where the ORM is needed (reading a ticket's status).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from storage.db import BUSY_TIMEOUT_MS
from storage.models import Call, Customer, Ticket, utcnow
from storage.statements import Alone, Statement, none_of, run

log = logging.getLogger(__name__)

calls: Table = Call.__table__  # type: ignore[assignment]
_customers: Table = Customer.__table__  # type: ignore[assignment]
_tickets: Table = Ticket.__table__  # type: ignore[assignment]

# The call's columns a webhook reads and may change.
COLUMNS = (
    "id",
    "call_sid",
    "caller",
    "language",
    "customer_id",
    "contact_id",
    "callback_number",
    "suggested_contact_id",
    "severity",
    "recording_sid",
    "recording_url",
    "recording_duration",
    "ticket_id",
    "inquiry_ticket_id",
    "inquiry_number",
    "call_status",
    "duration",
    "forwarded_at",
    "status_heard_at",
    "started_at",
    "ended_at",
)
# Moments kept from their first time in the call (for statistics): a later change leaves them as they are.
ONCE = frozenset({"forwarded_at", "status_heard_at"})
SHORT_WAIT_MS = 200  # how long a read-only webhook waits for SQLite's write lock to store them
# Read with it, from the rows it points to: what the line says without another query.
JOINED = ("company", "customer_sla", "ticket_number", "ticket_recording_sid")


def _by_sid(lock: bool) -> Statement:
    statement = (
        select(
            *(calls.c[name] for name in COLUMNS),
            _customers.c.name.label("company"),
            _customers.c.sla.label("customer_sla"),
            _tickets.c.number.label("ticket_number"),
            _tickets.c.recording_sid.label("ticket_recording_sid"),
        )
        .select_from(
            calls.outerjoin(_customers, _customers.c.id == calls.c.customer_id).outerjoin(
                _tickets, _tickets.c.id == calls.c.ticket_id
            )
        )
        .where(calls.c.call_sid == bindparam("sid"))
    )
    return Statement(statement.with_for_update(of=calls) if lock else statement)


_READ, _LOCK = _by_sid(False), _by_sid(True)


class CallRecord:
    """The stored call in memory: its columns as attributes, and which of them changed.

    `company` and `customer_sla` are the name and SLA of the call's customer, `ticket_number`
    and `ticket_recording_sid` its ticket's: read with the call, never written through it.
    """

    __slots__ = (*COLUMNS, *JOINED, "changed")
    id: int
    call_sid: str
    caller: str | None
    language: str
    customer_id: int | None
    contact_id: int | None
    callback_number: str | None
    suggested_contact_id: int | None
    severity: int | None
    recording_sid: str | None
    recording_url: str | None
    recording_duration: int | None
    ticket_id: int | None
    inquiry_ticket_id: int | None
    inquiry_number: str | None
    call_status: str | None
    duration: int | None
    forwarded_at: datetime | None
    status_heard_at: datetime | None
    started_at: datetime
    ended_at: datetime | None
    company: str | None
    customer_sla: str | None
    ticket_number: str | None
    ticket_recording_sid: str | None
    changed: dict[str, Any]

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "changed", {})
        for name in (*COLUMNS, *JOINED):
            object.__setattr__(self, name, values.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in JOINED:
            object.__setattr__(self, name, value)
            return
        if name not in COLUMNS or name == "id":
            raise AttributeError(f"a call has no column {name!r} to change")
        if getattr(self, name) != value:
            self.changed[name] = value
        object.__setattr__(self, name, value)

    def take_changes(self) -> dict[str, Any]:
        changes = self.changed
        object.__setattr__(self, "changed", {})
        return changes


_NEW_CALL_DEFAULTS = {"language": "it", "attempts": 0, "inquiry_index": 0, "contact_id": None, "customer_id": None}
# Built once: a statement built per request costs more than running it.
_INSERT_IF_NEW = {
    dialect.__name__.rpartition(".")[2]: Statement(
        dialect.insert(calls)
        .values(
            {
                name: bindparam(name, type_=calls.c[name].type)
                for name in ("call_sid", "caller", "started_at", "updated_at", *_NEW_CALL_DEFAULTS)
            }
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
        .inline()
    )
    for dialect in (postgresql, sqlite)
}


def start_call(connection: Connection | Alone, call_sid: str, caller: str | None, **identity: Any) -> None:
    """A new call, stored; nothing happens if it is stored already (Twilio may send two first requests at once)."""
    now = utcnow()
    row = {**_NEW_CALL_DEFAULTS, "call_sid": call_sid, "caller": caller, "started_at": now, "updated_at": now}
    run(connection, _INSERT_IF_NEW[connection.dialect.name], {**row, **identity})


def get_call(connection: Connection | Alone, call_sid: str, *, lock: bool) -> CallRecord | None:
    """The call with this CallSid; `lock`: its row locked until the transaction ends (PostgreSQL)."""
    statement = _LOCK if lock else _READ
    rows = run(connection, statement, {"sid": call_sid})
    return CallRecord(statement.mapping(rows[0])) if rows else None


def get_or_start_call(connection: Connection | Alone, call_sid: str, caller: str | None, *, lock: bool) -> CallRecord:
    call = get_call(connection, call_sid, lock=lock)
    if call is None:
        start_call(connection, call_sid, caller)
        call = get_call(connection, call_sid, lock=lock)
        assert call is not None
    return call


FINAL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")  # Twilio's CallStatus when a call is over
_END = (
    update(calls)
    .where(
        calls.c.call_sid == bindparam("sid"),
        or_(calls.c.call_status.is_(None), none_of(calls.c.call_status, FINAL_STATUSES)),
    )
    .values(
        call_status=bindparam("status"),
        duration=bindparam("duration"),
        ended_at=bindparam("ended_at", type_=calls.c.ended_at.type),
        updated_at=bindparam("now", type_=calls.c.updated_at.type),
    )
    .returning(calls.c.id, calls.c.ticket_id, calls.c.recording_sid)
)


# The usual end: the call owes no ticket (it has one, or no message was recorded), so ending it is all there is to do.
_END_OWING_NOTHING = Statement(_END.where(or_(calls.c.ticket_id.is_not(None), calls.c.recording_sid.is_(None))))
_END_ANY = Statement(_END)


@dataclass(frozen=True)
class EndedCall:
    id: int
    ticket_id: int | None
    recording_sid: str | None


def end_call(connection: Connection, call_sid: str, status: str, duration: int, ended_at: datetime) -> EndedCall | None:
    """Store how a call ended, in one statement; None when the call is not stored or had ended already."""
    params = {"sid": call_sid, "status": status, "duration": duration, "ended_at": ended_at, "now": utcnow()}
    rows = run(connection, _END_ANY, params)
    return EndedCall(*rows[0]) if rows else None


def save_call(connection: Connection | Alone, call: CallRecord) -> None:
    """Write what changed, in one UPDATE (none when nothing did)."""
    changes = call.take_changes()
    if changes:
        changes["updated_at"] = utcnow()
        run(connection, _update_of(frozenset(changes)), {**changes, "call_id": call.id})


@lru_cache(maxsize=256)
def _update_of(columns: frozenset[str]) -> Statement:
    """The UPDATE of these columns, built once for each set of columns a webhook changes."""
    values = {name: bindparam(name, type_=calls.c[name].type) for name in sorted(columns)}
    return Statement(update(calls).where(calls.c.id == bindparam("call_id")).values(values))


@lru_cache(maxsize=64)
def _upsert_of(dialect_name: str, columns: frozenset[str]) -> Statement:
    """Store a call with these columns set: inserted if new, else only these columns (and updated_at) changed."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    names = ("call_sid", "caller", "started_at", "updated_at", *_NEW_CALL_DEFAULTS, *sorted(columns))
    insert = dialect.insert(calls).values({name: bindparam(name, type_=calls.c[name].type) for name in names})
    changed: dict[str, Any] = {name: insert.excluded[name] for name in (*sorted(columns), "updated_at")}
    for name in ONCE & columns:  # told without reading: the stored moment, if any, stays
        changed[name] = func.coalesce(calls.c[name], insert.excluded[name])
    return Statement(insert.on_conflict_do_update(index_elements=["call_sid"], set_=changed).inline())


def _autocommit(engine: Engine) -> dict[str, Any]:
    """Execution options that run each statement on its own: PostgreSQL's driver in autocommit; SQLite
    without the BEGIN storage.db sends (its driver never begins on its own), so each statement commits itself."""
    return {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {"single_statement": True}


def _sqlite_busy_timeout(connection: Connection | Alone, milliseconds: int) -> None:
    """How long SQLite waits for another's write lock, set on the driver's own connection (not a statement)."""
    driver_connection: Any = connection.connection.driver_connection
    driver_connection.execute(f"PRAGMA busy_timeout = {milliseconds}")


class CallTransaction:
    """One webhook's database work on one call: nothing until needed, then one transaction, for reading or writing.

    Ask for `writing()` before the first read when the webhook may write: the call is then
    read with its row locked (PostgreSQL) and the transaction holds SQLite's write lock from
    its start. A webhook that never asks reads outside any transaction, each statement on its
    own: on SQLite it waits for no writer and makes none wait.

    A webhook that only stores what it was told (`start()`, `change()`), reading nothing,
    writes it at `commit()` as one statement on its own, without BEGIN and COMMIT around it.

    Notes go through `notes_engine` (storage.db.make_notes_engine: on PostgreSQL, a commit that
    does not wait for the disk): a new call's row, which the call's next webhook stores again
    if a database crash lost it; the moments kept for statistics (ONCE); and the usual end of a
    call that owes nothing (`end_alone`). What the caller chose or said, and tickets, are never notes.
    """

    def __init__(
        self,
        engine: Engine,
        call_sid: str,
        caller: Callable[[], str | None],
        session_info: Mapping[str, object] | None = None,
        notes_engine: Engine | None = None,
    ) -> None:
        self.engine = engine
        self.notes_engine = notes_engine or engine
        self.session_info = dict(session_info or {})  # the process's `Session.info` (storage.db.make_sessionmaker)
        self.call_sid = call_sid
        self.caller = caller  # the caller ID in E.164 (None when withheld): asked only to store a new call
        self.write = False
        self._connection: Connection | Alone | None = None
        self._reader: Connection | None = None  # the ORM's, when a webhook that only reads asks for a session
        self._session: Session | None = None
        self._call: CallRecord | None = None
        self._told: dict[str, Any] | None = None  # what to store without reading: None, nothing at all

    def _reading(self) -> bool:
        """This webhook has read for reading only (the call, its tickets, the ORM's session)."""
        return not self.write and (self._connection is not None or self._reader is not None)

    def writing(self) -> None:
        if self._reading():
            raise RuntimeError("this webhook read the database for reading only, then asked to write")
        self.write = True

    def start(self) -> None:
        """Store the call if it is new (Twilio's first request for it)."""
        self.writing()
        if self._call is None and self._told is None:
            self._told = {}

    def change(self, **columns: Any) -> None:
        """Set these columns of the call, without needing to read it.

        In a webhook that read for reading only, they are stored after its reads, as one
        statement of their own: reading still waits for no writer. A moment of ONCE that the
        call read has already is left as it is (and, told without reading, kept by the statement).
        """
        if self._call is not None:
            columns = {
                name: value for name, value in columns.items() if name not in ONCE or getattr(self._call, name) is None
            }
            if not columns:
                return
        if self._reading():
            self._told = {**(self._told or {}), **columns}
            return
        self.writing()
        if self._call is not None:
            for name, value in columns.items():
                setattr(self._call, name, value)
        else:
            self._told = {**(self._told or {}), **columns}

    def end_alone(self, status: str, duration: int, ended_at: datetime) -> bool:
        """End the call in one statement on its own, if that is all its end asks: the call is stored, was
        not ended before and owes no ticket (storage.calls.end_call does the rest in a transaction).
        Returns whether it did; when not, nothing was written."""
        if self._connection is not None:
            raise RuntimeError("end_alone runs before anything else of the webhook")
        params = {"sid": self.call_sid, "status": status, "duration": duration, "ended_at": ended_at, "now": utcnow()}
        with Alone(self.notes_engine) as connection:
            return bool(run(connection, _END_OWING_NOTHING, params))

    @property
    def connection(self) -> Connection | Alone:
        """A transaction when writing; when reading, each statement on its own, outside any transaction
        (on SQLite no lock is held between them; on PostgreSQL no BEGIN and COMMIT round trips)."""
        if self._connection is None:
            if self.write:
                connection = self.engine.connect()
                connection.begin()
                self._connection = connection
            else:
                self._connection = Alone(self.notes_engine)  # reads; and notes, when all it writes is notes
        return self._connection

    @property
    def transaction(self) -> Connection:
        """The connection of a webhook that writes (`writing()` first), in its transaction."""
        connection = self.connection
        if not isinstance(connection, Connection):
            raise RuntimeError("this webhook reads for reading only: it has no transaction")
        return connection

    def call(self) -> CallRecord:
        """The call, read once (stored first if Twilio's first request for it went astray); `commit` saves it."""
        if self._call is None:
            call = get_or_start_call(self.connection, self.call_sid, self.caller(), lock=self.write)
            for name, value in (self._told or {}).items():
                if name not in ONCE or getattr(call, name) is None:
                    setattr(call, name, value)
            self._call, self._told = call, None
        return self._call

    @property
    def session(self) -> Session:
        """An ORM session in the same transaction (its commit leaves the transaction to `commit()`); in a
        webhook that only reads, on a connection of its own, each statement on its own too."""
        if self._session is None:
            if self.write:
                bind = self.transaction
            else:
                self._reader = self.engine.connect().execution_options(**_autocommit(self.engine))
                bind = self._reader
            self._session = Session(bind=bind, expire_on_commit=False, autoflush=True, info=dict(self.session_info))
        return self._session

    def commit(self) -> None:
        if self._session is not None:
            self._session.flush()
        connection = self._connection
        if connection is None:
            if self._told is not None:  # told without reading the call: one statement on its own
                with Alone(self.notes_engine if self._told_notes() else self.engine) as alone:
                    self._store_told(alone, wait=self.write or not self._told_notes())
            return
        if self._call is not None:
            save_call(connection, self._call)
        if isinstance(connection, Connection):
            connection.commit()
        if self._told:  # told after reading for reading only: on the same connection, outside any transaction
            if connection.engine is self.engine or self._told_notes():
                self._store_told(connection, wait=self.write or not self._told_notes())
            else:  # read on the notes' connection, and told more than notes
                with Alone(self.engine) as alone:
                    self._store_told(alone)

    def _told_notes(self) -> bool:
        """What is to be stored without reading is notes only: a new call's row, moments for statistics."""
        return ONCE.issuperset(self._told or {})

    def _store_told(self, connection: Connection | Alone, *, wait: bool = True) -> None:
        """One statement, atomic on its own: no transaction around it (on PostgreSQL, two round trips fewer).

        `connection` runs each statement on its own (`Alone`, or `_autocommit`). Not `wait`: moments for
        statistics alone, told after a read-only webhook's reads, which waits for no writer:
        on SQLite, while another process holds the write lock, they are dropped after a short
        wait (and logged) rather than keep the caller in silence.
        """
        told = self._told or {}
        now = utcnow()
        row = {**_NEW_CALL_DEFAULTS, "call_sid": self.call_sid, "caller": self.caller()}
        row.update(told, started_at=now, updated_at=now)
        patient = wait or connection.dialect.name != "sqlite"
        if not patient:
            _sqlite_busy_timeout(connection, SHORT_WAIT_MS)
        try:
            if told:
                run(connection, _upsert_of(connection.dialect.name, frozenset(told)), row)
            else:
                run(connection, _INSERT_IF_NEW[connection.dialect.name], row)
            if isinstance(connection, Connection):
                connection.commit()  # ends SQLAlchemy's record of a transaction: the statement committed itself
        except OperationalError:
            if patient:
                raise
            log.warning("call %s: the database was locked; not stored: %s", self.call_sid, sorted(told))
        finally:
            if not patient:
                _sqlite_busy_timeout(connection, BUSY_TIMEOUT_MS)
        self._told = None

    def close(self) -> None:
        """Roll back what was not committed and give the connection back."""
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._call, self._told = None, None
