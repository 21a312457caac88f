"""The queue's queries: the open tickets a dispatcher filters and searches, and the choices of its filters.

One query loads the rows with everything the queue shows (customer, contact, technician);
the order is helpdesk.queue's, made from the SLA table after loading.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, false, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from storage.models import Customer, Ticket, User
from storage.phones import to_e164

UNASSIGNED = 0  # `technician` of QueueFilters: tickets no technician holds


@dataclass(frozen=True)
class QueueFilters:
    """What the dispatcher narrowed the queue to; None (or empty) leaves a filter out."""

    phase: str | None = None
    urgency: str | None = None
    customer_code: str | None = None
    technician_id: int | None = None  # a user's id, or UNASSIGNED
    search: str = ""  # a ticket number, a phone number, or part of a customer's name or its code


def get_open_tickets(session: Session, open_phases: Collection[str], filters: QueueFilters) -> list[Ticket]:
    """The tickets in one of `open_phases` (helpdesk.phases names them) that match `filters`, in one query."""
    query: Select[Ticket] = (
        select(Ticket)
        .outerjoin(Ticket.customer)
        .options(contains_eager(Ticket.customer), joinedload(Ticket.contact), joinedload(Ticket.technician))
        .where(Ticket.status.in_(open_phases))
        .order_by(Ticket.created_at, Ticket.id)
    )
    if filters.phase:
        query = query.where(Ticket.status == filters.phase)
    if filters.urgency:
        query = query.where(Ticket.urgency == filters.urgency)
    if filters.customer_code:
        query = query.where(Customer.code == filters.customer_code)
    if filters.technician_id == UNASSIGNED:
        query = query.where(Ticket.technician_id.is_(None))
    elif filters.technician_id is not None:
        query = query.where(Ticket.technician_id == filters.technician_id)
    if filters.search.strip():
        query = query.where(matching(filters.search))
    return list(session.scalars(query).unique())


def matching(search: str) -> ColumnElement[bool]:
    """Tickets whose number, caller's or callback number, or customer (part of the name, or the code) is `search`.

    A phone number is compared in E.164 (`039 2301122` finds +390392301122), a ticket number
    whole, with any spaces, dots or dashes a reader may put in it left out.
    """
    text = search.strip()
    conditions: list[ColumnElement[bool]] = [Customer.name.icontains(text, autoescape=True), Customer.code == text]
    digits = "".join(ch for ch in text if ch not in " .-")
    if digits.isascii() and digits.isdigit():
        conditions.append(Ticket.number == digits)
    phone = to_e164(text)
    if phone is not None:
        conditions.extend([Ticket.caller == phone, Ticket.callback_number == phone])
    return or_(false(), *conditions)


def get_customers(session: Session) -> list[Customer]:
    """Every customer, by name: the choices of the queue's customer filter."""
    return list(session.scalars(select(Customer).order_by(Customer.name, Customer.code)))


def get_technicians(session: Session) -> list[User]:
    """The active technicians, by name: the choices of the queue's technician filter."""
    return list(
        session.scalars(select(User).where(User.role == "technician", User.active.is_(True)).order_by(User.name))
    )
