"""A customer's monthly report: its tickets of the month with their times and SLA outcomes, and the medians
against the contract; and the durable monthly run that sends every customer's report.

The month is a calendar month on the help desk's clock (Europe/Rome). Its tickets are the
customer's tickets opened in it whose caller was matched to the customer (a typed code alone
is a claim, not the customer's ticket). Each ticket's two clocks (helpdesk.deadlines) are
met (stopped by the deadline), missed (stopped after it, or still running past it) or
running (not stopped, deadline not yet come). The medians are of the time each clock ran in
the contract's own time (helpdesk.sla: business hours for the levels that count them), the
time the contract's minutes are counted in, so that the two can be compared; a ticket whose
clock has not stopped has no time yet and is not in the median.

The report goes to the customer's referents, each in their language: the language they last
spoke to the line in (their latest ticket's, as the confirmation emails choose), else Italian.

Once a month: while MONTHLY_REPORTS is on, the relay makes sure the month has one outbox row,
keyed by the month (`schedule_monthly_reports`), due on the next month's first at SEND_HOUR.
Its key is unique, so several relays write it once; its job (ivr.jobs.reports) queues one
email per customer and referent, each keyed by customer, month and referent, so a job that
runs twice, or a `flask customer-report --send` of the same month, sends nothing twice.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

import prompts
from helpdesk import deadlines
from helpdesk.sla import UNREGISTERED_LEVEL, SlaTable
from helpdesk.thread import HELP_DESK_ZONE
from storage import outbox
from storage.contacts import get_customer_by_code
from storage.models import Contact, Customer, Ticket
from storage.tickets import URGENCIES

MET, MISSED, RUNNING = "met", "missed", "running"  # a clock's outcome
SEND_HOUR = 7  # the reports go out at 07:00 on the first of the month, Italian time
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class ReportError(ValueError):
    """The report cannot be made as asked: a malformed month, a month to come, an unknown customer."""


@dataclass(frozen=True)
class TicketLine:
    """One ticket of the month: its times, its deadlines and each clock's outcome and SLA minutes."""

    number: str
    urgency: str
    opened_at: datetime
    first_response_at: datetime | None
    restored_at: datetime | None
    response_due_at: datetime
    restore_due_at: datetime
    response: str  # MET | MISSED | RUNNING
    restore: str
    response_minutes: float | None  # SLA time to the first response; None: not yet
    restore_minutes: float | None


@dataclass(frozen=True)
class UrgencyFigures:
    """For one urgency: its tickets, the median SLA minutes of each clock (None: none stopped) and the contract's."""

    urgency: str
    tickets: int
    median_response: float | None
    contract_response: int
    median_restore: float | None
    contract_restore: int


@dataclass(frozen=True)
class Reader:
    """A referent who receives the report, and the language they read it in."""

    contact_id: int
    name: str
    email: str
    language: str


@dataclass(frozen=True)
class Report:
    customer_code: str
    customer_name: str
    level: str
    around_the_clock: bool  # whether the level's minutes count every hour (else business hours)
    month: date  # its first day
    tickets: list[TicketLine]
    figures: list[UrgencyFigures]  # every urgency, most urgent first
    readers: list[Reader]


def parse_month(text: str, today: date) -> date:
    """The first day of the month written YYYY-MM; ReportError if malformed or after `today`'s month."""
    found = _MONTH.fullmatch(text.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 2000:
        raise ReportError(f"month {text!r}: write it as YYYY-MM, like 2026-11")
    month = date(int(found.group(1)), int(found.group(2)), 1)
    if month > today.replace(day=1):
        raise ReportError(f"month {text}: it has not begun yet")
    return month


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_period(month: date) -> tuple[datetime, datetime]:
    """[start, end) of the month on the help desk's clock, as aware instants."""
    start = datetime.combine(month, time(), HELP_DESK_ZONE)
    return start, datetime.combine(next_month(month), time(), HELP_DESK_ZONE)


def get_customer(session: Session, code: str) -> Customer:
    """The customer with `code`; ReportError if none."""
    customer = get_customer_by_code(session, code.strip())
    if customer is None:
        raise ReportError(f"no customer has the code {code!r}")
    return customer


def build_report(session: Session, customer: Customer, month: date, table: SlaTable, now: datetime) -> Report:
    """The customer's report for the month, as of `now` (a deadline still to come is running)."""
    start, end = month_period(month)
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.customer_id == customer.id,
                Ticket.needs_match.is_(False),
                Ticket.created_at >= start,
                Ticket.created_at < end,
            )
            .order_by(Ticket.created_at, Ticket.id)
        )
    )
    level = customer.sla if customer.sla in table.response else UNREGISTERED_LEVEL
    lines = [_line(ticket, table, now) for ticket in tickets]
    figures = []
    for urgency in URGENCIES:
        mine = [line for line in lines if line.urgency == urgency]
        figures.append(
            UrgencyFigures(
                urgency,
                len(mine),
                _median([line.response_minutes for line in mine]),
                int(table.response[level][urgency].total_seconds() // 60),
                _median([line.restore_minutes for line in mine]),
                int(table.restore[level][urgency].total_seconds() // 60),
            )
        )
    return Report(
        customer.code,
        customer.name,
        level,
        table.hours_of(level).around_the_clock,
        month,
        lines,
        figures,
        readers(session, customer),
    )


def _line(ticket: Ticket, table: SlaTable, now: datetime) -> TicketLine:
    response_due, restore_due = deadlines.due(ticket, table)
    level = deadlines.level_of(ticket)

    def minutes(stop: datetime | None) -> float | None:
        return None if stop is None else table.elapsed(level, ticket.created_at, stop).total_seconds() / 60

    return TicketLine(
        ticket.number or "",
        ticket.urgency,
        ticket.created_at,
        ticket.first_response_at,
        ticket.restored_at,
        response_due,
        restore_due,
        outcome(ticket.first_response_at, response_due, now),
        outcome(ticket.restored_at, restore_due, now),
        minutes(ticket.first_response_at),
        minutes(ticket.restored_at),
    )


def outcome(stopped_at: datetime | None, due_at: datetime, now: datetime) -> str:
    """A clock's outcome: met by the deadline, missed (late, or still running past it), or running."""
    if stopped_at is not None:
        return MET if stopped_at <= due_at else MISSED
    return MISSED if now > due_at else RUNNING


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def readers(session: Session, customer: Customer) -> list[Reader]:
    """The customer's referents, each with the language of their latest ticket (Italian if none)."""
    found = []
    for contact in customer.contacts:
        if contact.referent:
            found.append(Reader(contact.id, contact.name, contact.email, contact_language(session, contact)))
    return found


def contact_language(session: Session, contact: Contact) -> str:
    """The language the contact last spoke to the line in (as its confirmations were written); else Italian."""
    language = session.scalar(
        select(Ticket.language)
        .where(Ticket.contact_id == contact.id, Ticket.needs_match.is_(False))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    return language if language in prompts.LANGUAGES else prompts.DEFAULT_LANGUAGE


# -- once a month --------------------------------------------------------------------------------


def reports_key(month: date) -> str:
    """The outbox key of a month's run: one row per month, whoever writes it."""
    return f"{outbox.MONTHLY_REPORTS}:{month:%Y-%m}"


def month_of_key(key: str) -> date:
    """The month a run's key names (`reports_key`)."""
    year, month = key.rpartition(":")[2].split("-")
    return date(int(year), int(month), 1)


def send_time(month: date) -> datetime:
    """When the month's reports go: the next month's first, at SEND_HOUR, Italian time."""
    return datetime.combine(next_month(month), time(SEND_HOUR), HELP_DESK_ZONE)


def schedule_monthly_reports(session: Session, now: datetime) -> bool:
    """Make sure the current month's run is in the outbox, due on the next month's first; True if written now.

    Two relays may both find it missing: the key is unique, so the second's commit fails (an
    IntegrityError its caller ignores) and the month still has one row.
    """
    month = now.astimezone(HELP_DESK_ZONE).date().replace(day=1)
    key = reports_key(month)
    if outbox.get_work(session, key) is not None:
        return False
    outbox.add(session, outbox.MONTHLY_REPORTS, key, due_at=send_time(month))
    session.flush()
    return True


def customers_with_referents(session: Session) -> list[Customer]:
    """Every customer that has someone to send the report to, by code."""
    return [
        customer
        for customer in session.scalars(select(Customer).order_by(Customer.code))
        if any(contact.referent for contact in customer.contacts)
    ]
