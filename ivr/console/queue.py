"""The queue: open tickets, the most urgent first, then by the time left before the SLA's response deadline
(once a person has answered, the restore deadline).

The page works without JavaScript (the filters are a GET form, "refresh" a link); with it,
static/queue.js fetches `/console/queue/rows` with the same filters every few seconds and
swaps in the table's body, so new tickets appear without reloading. The order and the
marks are helpdesk.queue's; the query is storage.queue's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from helpdesk import sla
from helpdesk.phases import OPEN_PHASES
from helpdesk.queue import Standing, in_order, marks, whole_minutes
from ivr.console.i18n import local, t
from ivr.db import db_session
from storage.models import Ticket, utcnow
from storage.queue import UNASSIGNED, QueueFilters, get_customers, get_open_tickets, get_technicians
from storage.tickets import URGENCIES

bp = Blueprint("queue", __name__, template_folder="templates", url_prefix="/console")

MAX_SEARCH = 100  # characters of the search box taken into account


@dataclass(frozen=True)
class Row:
    """One line of the queue: the ticket, its standing against the deadline, its marks, the time left in words."""

    ticket: Ticket
    standing: Standing
    marks: tuple[str, ...]
    left: str  # "12 min", "in ritardo di 2 h 5 min", "risposta data, ripristino: 3 h 30 min"
    left_hint: str  # the deadline; once answered, when, and the restore deadline


@bp.get("/")
@login_required
def index() -> Any:
    """The queue page: the filters, and the table of open tickets."""
    chosen = chosen_filters(request.args)
    session = db_session()
    return render_template(
        "queue.html",
        rows=queue_rows(chosen),
        chosen=chosen,
        phases=OPEN_PHASES,
        urgencies=tuple(reversed(URGENCIES)),
        customers=get_customers(session),
        technicians=get_technicians(session),
        ticket_url=ticket_url,
    )


@bp.get("/queue/rows")
@login_required
def rows() -> Any:
    """The queue table's body alone, for the same filters as the page: what queue.js swaps in."""
    chosen = chosen_filters(request.args)
    return render_template("queue_rows.html", rows=queue_rows(chosen), chosen=chosen, ticket_url=ticket_url)


def chosen_filters(args: MultiDict[str, str]) -> dict[str, str]:
    """The filters of the query string that mean something, as strings; anything else is left out."""
    chosen: dict[str, str] = {}
    if args.get("phase") in OPEN_PHASES:
        chosen["phase"] = args["phase"]
    if args.get("urgency") in URGENCIES:
        chosen["urgency"] = args["urgency"]
    customer = args.get("customer", "").strip()
    if customer:
        chosen["customer"] = customer[:20]
    technician = args.get("technician", "")
    if technician == "none" or (technician.isascii() and technician.isdigit()):
        chosen["technician"] = technician
    if args.get("mine") in ("1", "on", "yes", "true"):
        chosen["mine"] = "1"
    search = " ".join(args.get("q", "").split())[:MAX_SEARCH]
    if search:
        chosen["q"] = search
    return chosen


def queue_rows(chosen: dict[str, str]) -> list[Row]:
    """The open tickets that match the chosen filters, in the queue's order, ready to show."""
    technician: int | None = None
    if chosen.get("mine"):
        technician = current_user.user.id
    elif chosen.get("technician") == "none":
        technician = UNASSIGNED
    elif chosen.get("technician"):
        technician = int(chosen["technician"])
    filters = QueueFilters(
        phase=chosen.get("phase"),
        urgency=chosen.get("urgency"),
        customer_code=chosen.get("customer"),
        technician_id=technician,
        search=chosen.get("q", ""),
    )
    tickets = get_open_tickets(db_session(), OPEN_PHASES, filters)
    table = sla.load(current_app.config["SETTINGS"].sla_table)
    return [row(ticket, standing) for ticket, standing in in_order(tickets, table, utcnow())]


def row(ticket: Ticket, standing: Standing) -> Row:
    """A ticket's line, with the time left (or overdue, or answered) in the user's words."""
    if standing.breached:
        left = t("queue_overdue", time=span_words(standing.left))
    else:
        left = span_words(standing.left)
    if standing.answered:  # the restore clock: said as such, with when the answer came
        left = t("queue_answered_restore", time=left)
        hint = t("queue_answered_hint", when=local(ticket.first_response_at), due=local(standing.due))
    else:
        hint = t("queue_due_hint", when=local(standing.due))
    return Row(ticket=ticket, standing=standing, marks=marks(ticket), left=left, left_hint=hint)


def span_words(span: timedelta) -> str:
    """A span as a dispatcher reads it at a glance: its two largest units, "2 h 5 min", "1 g 3 h", "12 min"."""
    units = list(zip(("queue_days", "queue_hours", "queue_minutes"), whole_minutes(span), strict=True))
    while len(units) > 1 and units[0][1] == 0:
        units.pop(0)
    shown = [t(key, n=count) for key, count in units[:2] if count or key == units[0][0]]
    return " ".join(shown)


def ticket_url(number: str) -> str:
    """The ticket's page: by its endpoint once the ticket blueprint has one, else by its path."""
    if "ticket.view" in current_app.view_functions:
        return url_for("ticket.view", number=number)
    return f"{request.script_root}/console/tickets/{number}"
