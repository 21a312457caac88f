"""Lookups flat at a million tickets: the same lookups timed at 1,000 and at 1,000,000 tickets.

    .venv/bin/python -m benchmarks.lookups [--database-url URL] [--large 1000000]

Fills a fresh database (a temporary SQLite file by default; on PostgreSQL, a private schema
of the database given, dropped after the run) with the demo caller's tickets, then with other callers' tickets up
to 1,000, then up to 1,000,000, in bulk (one INSERT ... SELECT over a generated series). At each
size it times, per call, the median of many: a ticket by its number, a caller's tickets, a
contact's open tickets, and the status menu's webhook (main menu, key 2: "your open tickets"),
signed as Twilio signs it and posted through the app's test client. Prints the 1M/1k ratio of
each; flat is close to 1.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

from flask import Flask
from sqlalchemy import Engine, bindparam, func, insert, select, text
from sqlalchemy.orm import Session

from benchmarks import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BASE_URL,
    bench_app,
    database_of_its_own,
    print_ratios,
    thousand_and_million,
)
from helpdesk.phases import OPEN_PHASES
from ivr.simulator import twilio_requests as twilio
from ivr.simulator.commands import DEMO_CALLER
from storage.contacts import import_contacts
from storage.db import upgrade
from storage.models import Call, Contact, Customer, Ticket, UTCDateTime, utcnow
from storage.tickets import get_ticket_by_number, get_tickets_of_caller, get_tickets_of_contact, open_ticket_for_call

DIRECTORY = Path(__file__).resolve().parent.parent / "examples" / "contacts.csv"
OTHER_CONTACTS = 1_000  # the other tickets are spread over these contacts of one other customer
OPEN_ONE_IN = 20  # of the other tickets, one in 20 is still open


def add_demo_tickets(session: Session, caller: str) -> tuple[int, str]:
    """Three open and three closed tickets of the demo caller; returns the contact's id and an open ticket's number."""
    contact = session.scalars(select(Contact).where(Contact.phone == caller)).one()
    numbers = []
    for status in ("diagnostics", "triage", "received", "closed", "closed", "closed"):
        call = Call(call_sid=twilio.new_sid("CA"), caller=caller, language="it", attempts=0)
        call.contact, call.customer = contact, contact.customer
        session.add(call)
        session.flush()
        ticket = open_ticket_for_call(session, call, "high", voicemail=False, opened_by="line")
        ticket.status = status
        numbers.append(ticket.number or "")
    return contact.id, numbers[0]


def add_other_contacts(session: Session) -> int:
    """A customer with OTHER_CONTACTS contacts, the other tickets' callers; returns the first contact's id."""
    customer = Customer(code="99999", name="Other callers S.p.A.", sla="base")
    session.add(customer)
    session.flush()
    session.execute(
        insert(Contact),
        [
            {
                "customer_id": customer.id,
                "name": f"Caller {i}",
                "email": f"c{i}@other.example.it",
                "phone": f"+3902{i:08d}",
                "referent": False,
            }
            for i in range(OTHER_CONTACTS)
        ],
    )
    return session.scalars(select(func.min(Contact.id)).where(Contact.customer_id == customer.id)).one()


def fill_tickets(engine: Engine, first: int, last: int, first_contact_id: int) -> None:
    """Other callers' tickets numbered `first`..`last` (inclusive), in one INSERT ... SELECT over a series."""
    if engine.dialect.name == "postgresql":
        series, i = "generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n(i)", "n.i"
        prefix = ""
    else:  # SQLite: a recursive CTE counts
        series, i = "n", "n.i"
        prefix = "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
    phone = f"'+3902' || substr('00000000' || ({i} % {OTHER_CONTACTS}), -8, 8)"
    if engine.dialect.name == "postgresql":
        phone = f"'+3902' || lpad(({i} % {OTHER_CONTACTS})::text, 8, '0')"
    statement = text(
        prefix + "INSERT INTO tickets (number, status, urgency, channel, language, caller, callback_number,"
        " customer_id, contact_id, needs_match, voicemail, created_at, updated_at)"
        f" SELECT '9' || {i}, CASE WHEN {i} % {OPEN_ONE_IN} = 0 THEN 'diagnostics' ELSE 'closed' END,"
        f" 'normal', 'phone', 'it', {phone}, NULL,"
        f" (SELECT customer_id FROM contacts WHERE id = :contact), :contact + {i} % {OTHER_CONTACTS},"
        f" false, false, :at, :at FROM {series}"
    ).bindparams(bindparam("at", type_=UTCDateTime()))
    with engine.begin() as connection:
        connection.execute(
            statement, {"first": first, "last": last, "contact": first_contact_id, "at": utcnow() - timedelta(days=30)}
        )
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE tickets"))


def median_us(run: Callable[[], object], times: int) -> float:
    """The median time of `run`, in microseconds, after a few runs to warm up."""
    for _ in range(3):
        run()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def status_menu_webhook(app: Flask, caller: str) -> Callable[[], object]:
    """A run: a new call reaches the main menu (untimed), then presses 2: the timed status-menu webhook."""
    client = app.test_client()
    pending: list[tuple[twilio.TwilioCall, str]] = []

    def post(call: twilio.TwilioCall, url: str, fields: dict[str, str] | None = None) -> ElementTree.Element:
        request = call.request(url, fields)
        response = client.post(request.path, data=request.params, headers=request.headers)
        assert response.status_code == 200, f"{request.path} answered {response.status_code}"
        return ElementTree.fromstring(response.data)

    def to_main_menu() -> None:
        call = twilio.TwilioCall(ACCOUNT_SID, AUTH_TOKEN, caller, status="in-progress")
        welcome = post(call, f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})
        redirect = next(welcome.iter("Redirect"))
        menu = post(call, (redirect.text or "").strip())
        pending.append((call, next(menu.iter("Gather")).get("action", "")))

    def press_2() -> object:
        call, action = pending.pop()
        start = time.perf_counter()
        answer = post(call, action, twilio.keys_pressed("2"))
        elapsed = time.perf_counter() - start
        said = " ".join(e.text or "" for e in answer.iter("Say"))
        assert "richieste aperte" in said or "richiesta aperta" in said, said
        return elapsed

    def run() -> object:
        to_main_menu()
        return press_2()

    return run


def measure(app: Flask, contact_id: int, number: str, caller: str, times: int) -> dict[str, float]:
    sessions = app.config["SESSIONMAKER"]

    def in_session(lookup: Callable[[Session], object]) -> Callable[[], object]:
        def run() -> object:
            with sessions() as session:
                return lookup(session)

        return run

    webhook = status_menu_webhook(app, caller)
    webhook_times = [float(webhook()) for _ in range(3 + times // 4)][3:]  # type: ignore[arg-type]
    return {
        "ticket by number": median_us(in_session(lambda s: get_ticket_by_number(s, number)), times),
        "caller's tickets": median_us(in_session(lambda s: get_tickets_of_caller(s, caller)), times),
        "contact's open tickets": median_us(
            in_session(lambda s: get_tickets_of_contact(s.connection(), contact_id, OPEN_PHASES)), times
        ),
        "status-menu webhook": statistics.median(webhook_times) * 1e6,
    }


def main() -> None:
    args = thousand_and_million(__doc__, times=400, what="lookup")
    with database_of_its_own(args.database_url, "lookups") as url:
        run_rounds(url, args.small, args.large, args.times)


def run_rounds(url: str, small_size: int, large_size: int, times: int) -> None:
    """Fill the database at `url` to `small_size`, then `large_size` tickets, timing the lookups; print the table."""
    upgrade(url)
    app = bench_app(url)
    logging.getLogger("ivr").setLevel(logging.WARNING)  # not a line per call
    engine: Engine = app.config["ENGINE"]
    caller = DEMO_CALLER
    with app.config["SESSIONMAKER"]() as session, session.begin():
        import_contacts(session, DIRECTORY.read_text(encoding="utf-8"))
        contact_id, number = add_demo_tickets(session, caller)
        first_contact_id = add_other_contacts(session)

    results: dict[int, dict[str, float]] = {}
    filled = 0
    for size in (small_size, large_size):
        with engine.connect() as connection:
            existing = connection.scalar(select(func.count()).select_from(Ticket)) or 0
        start = time.perf_counter()
        fill_tickets(engine, filled + 1, filled + size - existing, first_contact_id)
        filled += size - existing
        print(f"filled to {size:,} tickets in {time.perf_counter() - start:.1f} s", flush=True)
        results[size] = measure(app, contact_id, number, caller, times)

    print(f"\n{engine.dialect.name}: median per lookup, {small_size:,} and {large_size:,} tickets\n")
    print_ratios("lookup", (small_size, large_size), results, "µs")
    engine.dispose()


if __name__ == "__main__":
    main()
