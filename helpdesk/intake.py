"""Opening a ticket: the one way a call becomes a ticket, from the line, the fallback answer or the spool."""

from __future__ import annotations

from sqlalchemy.orm import Session

from helpdesk import deadlines, oncall, sla
from helpdesk.urgency import opening_urgency
from storage.contacts import get_contact_by_phone
from storage.models import Call, Ticket
from storage.tickets import open_ticket_for_call


def open_ticket(
    session: Session, call: Call, *, voicemail: bool, opened_by: str, table: sla.SlaTable | None = None
) -> Ticket:
    """The call's one ticket, opened (or found) with the urgency of its triage and its caller-ID-verified SLA.

    `voicemail` when the caller did not confirm the message on the line; `opened_by` says
    how the ticket came (storage.tickets.open_ticket_for_call lists the codes).
    A call that ended before the menu identified its caller is identified here, by caller ID.
    A new ticket gets its SLA deadlines from `table`, the table in force
    (helpdesk.sla.load(settings.sla_table)); None reads the default, helpdesk/sla.toml.
    A new critical ticket is alerted to the on-call technician (helpdesk.oncall).
    """
    if call.contact is None and call.caller is not None and call.ticket is None:
        contact = get_contact_by_phone(session, call.caller)
        if contact is not None:
            call.contact, call.customer = contact, contact.customer
    ticket = open_ticket_for_call(session, call, opening_urgency(call), voicemail=voicemail, opened_by=opened_by)
    if ticket.response_due_at is None:  # new (a ticket found again keeps its deadlines)
        table = table or sla.load()
        deadlines.count(ticket, table)
        oncall.alert_if_critical(session, ticket, table)  # in this transaction: the alert is as durable as the ticket
    return ticket
