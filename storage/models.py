"""The support line's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use storage.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """A company under contract; `code` is the number its people can type on the keypad."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    sla: Mapped[str] = mapped_column(String(20))  # base | business | premium
    pin_hash: Mapped[str | None] = mapped_column(String(200))

    contacts: Mapped[list[Contact]] = relationship(back_populates="customer", order_by="Contact.id")


class Contact(Base):
    """A person of a customer; `referent`s are copied on their colleagues' tickets."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("customer_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    referent: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship(back_populates="contacts")


class Call(Base):
    """One phone call, keyed by Twilio's CallSid: where the caller is in the menu and how it ended."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    caller: Mapped[str | None] = mapped_column(String(20))  # E.164, None when withheld
    language: Mapped[str] = mapped_column(String(5), default="it")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    callback_number: Mapped[str | None] = mapped_column(String(20))
    # The contact a typed callback number belongs to: a suggestion for the dispatcher, never identity.
    suggested_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # No longer written: the step, its attempts and the status menu's ticket at hand travel in
    # the signed step URLs (callflows.engine.Turn). Kept for the rows of earlier versions.
    step: Mapped[str | None] = mapped_column(String(50))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    severity: Mapped[int | None] = mapped_column(Integer)
    recording_sid: Mapped[str | None] = mapped_column(String(64))
    recording_url: Mapped[str | None] = mapped_column(String(500))
    recording_duration: Mapped[int | None] = mapped_column(Integer)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # A status inquiry: the ticket being read, a typed number awaiting the PIN, the own ticket at hand.
    inquiry_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    inquiry_number: Mapped[str | None] = mapped_column(String(20))
    inquiry_index: Mapped[int] = mapped_column(Integer, default=0)  # no longer written (see `step`)
    call_status: Mapped[str | None] = mapped_column(String(20))
    duration: Mapped[int | None] = mapped_column(Integer)
    # For statistics: when the line first dialled a technician, first read a ticket's status to the caller.
    forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_heard_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)  # a period's calls
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship()
    contact: Mapped[Contact | None] = relationship(foreign_keys=[contact_id])
    suggested_contact: Mapped[Contact | None] = relationship(foreign_keys=[suggested_contact_id])
    ticket: Mapped[Ticket | None] = relationship(foreign_keys=[ticket_id])
    inquiry_ticket: Mapped[Ticket | None] = relationship(foreign_keys=[inquiry_ticket_id])


class Ticket(Base):
    """A support request; `number` (digits + check digit) is the reference in every later contact."""

    __tablename__ = "tickets"
    # What the line and the console look tickets up by, so that a lookup stays flat as tickets pile up.
    # A contact's open tickets in one index: with contact_id alone, PostgreSQL ANDs it with the
    # status index and so reads every open ticket. The queue filters by phase, then by urgency; by
    # customer through the index of a customer's period, whose first column it is.
    __table_args__ = (
        Index("ix_tickets_contact_id_status", "contact_id", "status"),
        Index("ix_tickets_status_urgency", "status", "urgency"),
        Index("ix_tickets_customer_id_created_at", "customer_id", "created_at"),  # a customer's period (statistics)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="received")
    urgency: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20), default="phone")
    language: Mapped[str] = mapped_column(String(5), default="it")
    caller: Mapped[str | None] = mapped_column(String(20), index=True)
    callback_number: Mapped[str | None] = mapped_column(String(20), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # True until a dispatcher confirms who called: the caller ID matched no contact, so the
    # customer (from a typed code) is provisional and no email goes to the customer's people.
    needs_match: Mapped[bool] = mapped_column(Boolean, default=False)
    suggested_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    skill_needed: Mapped[str | None] = mapped_column(String(50))  # set by a dispatcher: who can fix it
    vendor_name: Mapped[str | None] = mapped_column(String(200))  # escalated to an external vendor
    vendor_reference: Mapped[str | None] = mapped_column(String(100))
    vendor_restore_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    courtesy_device: Mapped[str | None] = mapped_column(String(200))  # lent while the customer's is repaired
    courtesy_lent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    courtesy_returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    urgency_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a person confirmed the urgency
    # The SLA clocks (helpdesk.deadlines): the deadlines, counted from the opening in the level's SLA
    # time (None on tickets from before they were kept: counted from the table when read), and the
    # moments that stop them. Indexed by deadline, to find breaches; by opening, for a period's statistics.
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    restore_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a person's first action
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # moved to resolved (None again if reopened)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    estimated_restore_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voicemail: Mapped[bool] = mapped_column(Boolean, default=False)
    severity: Mapped[int | None] = mapped_column(Integer)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_url: Mapped[str | None] = mapped_column(String(500))
    recording_path: Mapped[str | None] = mapped_column(String(500))
    recording_problem: Mapped[str | None] = mapped_column(String(200))  # why the audio could not be had
    transcript: Mapped[str | None] = mapped_column(Text)
    transcribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatch_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship()
    contact: Mapped[Contact | None] = relationship(foreign_keys=[contact_id])
    suggested_contact: Mapped[Contact | None] = relationship(foreign_keys=[suggested_contact_id])
    technician: Mapped[User | None] = relationship()
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="(TicketEvent.at, TicketEvent.id)"
    )


class User(Base):
    """A person of the help desk who signs in to the console: a dispatcher, or a technician with skills.

    Technicians are assigned to tickets; callers hear only their first name. A user made
    before the console (no password) cannot sign in until `flask add-user` sets one.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="technician")  # dispatcher | technician
    skills: Mapped[str] = mapped_column(String(500), default="")  # comma-separated, lower case
    language: Mapped[str] = mapped_column(String(5), default="it")  # the console's language for this user
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped at every sign-in and sign-out: sessions made before are no longer valid.
    session_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else ""

    @property
    def skill_set(self) -> frozenset[str]:
        return frozenset(skill.strip() for skill in self.skills.split(",") if skill.strip())


class VoiceMessage(Base):
    """A message a caller added by phone to an existing ticket (status menu, key 1)."""

    __tablename__ = "voice_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5), default="it")
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    recording_url: Mapped[str] = mapped_column(String(500))
    recording_path: Mapped[str | None] = mapped_column(String(500))
    recording_problem: Mapped[str | None] = mapped_column(String(200))
    transcript: Mapped[str | None] = mapped_column(Text)
    transcribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    ticket: Mapped[Ticket] = relationship()


class TicketEvent(Base):
    """One entry of a ticket's thread, oldest first: its kind and its facts, put into words when read
    (helpdesk.thread), in the reader's language."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    # JSON values only; {"note": ...} alone is said as it is (rows written before facts were kept).
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # who did it; None: the line or the worker

    ticket: Mapped[Ticket] = relationship(back_populates="events")
    user: Mapped[User | None] = relationship()


class SentOnce:
    """The columns of a message sent once (storage.sending): claimed before it is sent (`claimed_by`,
    an update that succeeds once while `claimed_until` lasts), then sent, or refused for good with
    the server's answer (`refusal`)."""

    id: Mapped[int]
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refusal: Mapped[str | None] = mapped_column(String(500))


class Email(SentOnce, Base):
    """One email to one recipient, rendered when queued and sent by its own outbox work.

    Claimed in the database before it is sent (`claimed_by`, an update that succeeds once),
    so two jobs never send it twice; `refusal` keeps a permanent refusal's server answer.
    """

    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # what the email is, once
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    to_address: Mapped[str] = mapped_column(String(320))
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)  # copied addresses, in the same message
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)  # an HTML alternative of `body` (monthly report)
    message_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    ticket: Mapped[Ticket | None] = relationship()


class TextMessage(SentOnce, Base):
    """One SMS to one number, written when its job first runs and sent through Twilio's Messages API.

    Claimed in the database before it is sent (`claimed_by`, an update that succeeds once), like
    an email, so two jobs never send it twice; `refusal` keeps Twilio's answer to a 4xx, `twilio_sid`
    the message's SID once Twilio took it.
    """

    __tablename__ = "text_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # what the SMS is, once
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    to_number: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    twilio_sid: Mapped[str | None] = mapped_column(String(64))

    ticket: Mapped[Ticket | None] = relationship()


class PendingWork(Base):
    """Work for the worker, written in the same transaction as what it is about (transactional outbox).

    Only storage.outbox reads and writes these rows. The relay enqueues rows that are not
    done; a job owns its row through a lease (`lease_token`, `lease_until` on the
    database's clock), and `version` grows when new input arrives (a late recording), so
    work is marked done only if nothing arrived while it ran.
    """

    __tablename__ = "pending_work"
    # The work not yet done, without reading the done (statistics: the backlog, the failed jobs).
    __table_args__ = (Index("ix_pending_work_done_at_failed_at", "done_at", "failed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)  # what the work is about, once
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("voice_messages.id"))
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # not run before (a reminder); None: at once
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    runs: Mapped[int] = mapped_column(Integer, default=0)  # times enqueued
    starts: Mapped[int] = mapped_column(Integer, default=0)  # leases taken since a run last ended (killed runs)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
