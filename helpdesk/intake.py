"""Opening a ticket: the one way a call becomes a ticket, from the line, the fallback answer or the spool."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from helpdesk import deadlines, oncall, sla
from helpdesk.urgency import provisional_urgency, verified_sla
from storage.contacts import identify_by_phone
from storage.models import Call, Ticket, utcnow
from storage.tickets import CallFacts, OpenedTicket, open_call_ticket, ticket_of_opened


def open_ticket_of_call(
    connection: Connection,
    call: CallFacts,
    customer_sla: str | None,
    *,
    voicemail: bool,
    opened_by: str,
    table: sla.SlaTable | None = None,
    alerts: bool = False,
) -> OpenedTicket:
    """The call's one ticket, opened (or found) with the urgency of its triage and its caller-ID-verified SLA.

    `customer_sla` is the SLA of the call's customer (None without one); it counts only when
    the caller ID identified the contact (helpdesk.urgency.verified_sla). `voicemail` when the
    caller did not confirm the message on the line; `opened_by` says how the ticket came
    (storage.tickets.open_call_ticket lists the codes). A call that ended before the menu
    identified its caller is identified here, by caller ID. A new ticket gets its SLA deadlines
    from `table`, the table in force (helpdesk.sla.load(settings.sla_table)); None reads the
    default, helpdesk/sla.toml. With `alerts` on (the process's ONCALL_SMS_TO, helpdesk.oncall),
    a new critical ticket is alerted to the on-call technician, in this transaction: the alert
    is as durable as the ticket.
    """
    if call.ticket_id is None and call.contact_id is None and call.caller is not None:
        identity = identify_by_phone(connection, call.caller)
        if identity is not None:
            call.contact_id, call.customer_id, customer_sla = identity.contact_id, identity.customer_id, identity.sla
    level = verified_sla(call.contact_id, customer_sla)
    urgency = provisional_urgency(call.severity, level)
    table = table or sla.load()
    now = utcnow()
    due = deadlines.deadlines_from(now, level, urgency, table)
    opened = open_call_ticket(
        connection, call, urgency, voicemail=voicemail, opened_by=opened_by, opened_at=now, due=due
    )
    if opened.new and alerts:
        oncall.alert_new_ticket(connection, opened.id, now, level, urgency, table)
    return opened


def open_ticket(
    session: Session, call: Call, *, voicemail: bool, opened_by: str, table: sla.SlaTable | None = None
) -> Ticket:
    """open_ticket_of_call in the session's transaction, for code that holds the call as an ORM object."""
    session.flush()
    had_contact = call.contact_id
    opened = open_ticket_of_call(
        session.connection(),
        call,
        call.customer.sla if call.customer is not None else None,
        voicemail=voicemail,
        opened_by=opened_by,
        table=table,
        alerts=bool(session.info.get(oncall.ALERTS)),
    )
    if call.contact_id != had_contact:  # identified by caller ID: the ORM reads the new contact
        session.expire(call, ["contact", "customer"])
    return ticket_of_opened(session, call, opened)
