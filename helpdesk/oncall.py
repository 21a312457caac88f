"""On-call alerts: a ticket of the highest urgency is sent at once to the on-call technician, and again at
half its response time if nobody has acted on it.

Whatever makes a ticket critical (its triage on the line, a dispatcher's urgency, the
worker's reading of the transcript) calls `alert_if_critical` in the same transaction, so
the alert is durable from the moment the ticket is: two outbox rows, the SMS due now and
the reminder due at half the response time (helpdesk.deadlines.half_response, in SLA time).
Once per ticket: a ticket that goes critical, down and critical again is not alerted twice.
The worker writes and sends the SMS (ivr.jobs.oncall); it knows the numbers, this module
does not.

Whether alerts are on is the process's setting (ONCALL_SMS_TO), which the help desk's rules
do not read: the process puts it in its sessions' `info` (`ALERTS`), and without it no
row is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from helpdesk import deadlines
from helpdesk.sla import SlaTable
from storage import outbox
from storage.models import Ticket

CRITICAL = "critical"  # the urgency that is alerted
ALERTS = "oncall_alerts"  # the key of Session.info that says alerts are on


def session_info(alerts_on: bool) -> dict[str, object]:
    """What a process puts in its sessions' `info`: whether on-call alerts are on (ONCALL_SMS_TO is set)."""
    return {ALERTS: alerts_on}


def alert_key(ticket_id: int) -> str:
    return f"{outbox.ONCALL_SMS}:{ticket_id}"


def reminder_key(ticket_id: int) -> str:
    return f"{outbox.ONCALL_REMINDER}:{ticket_id}"


def alert_if_critical(session: Session, ticket: Ticket, table: SlaTable) -> bool:
    """Queue the ticket's alert and its half-time reminder if it is critical now and was never alerted.

    Call it after the urgency and the deadlines are set. Returns whether it queued them.
    A half time already past when the ticket becomes critical (the transcript raised it late)
    makes the reminder due at once: nobody has acted for half the response time.
    """
    if ticket.urgency != CRITICAL or not session.info.get(ALERTS):
        return False
    if ticket.id is None:
        session.flush()
    if outbox.get_work(session, alert_key(ticket.id)) is not None:
        return False
    outbox.add(session, outbox.ONCALL_SMS, alert_key(ticket.id), ticket_id=ticket.id)
    outbox.add(session, **_reminder(ticket.id, deadlines.half_response(ticket, table)))
    return True


def alert_new_ticket(
    connection: Connection, ticket_id: int, opened_at: datetime, level: str | None, urgency: str, table: SlaTable
) -> bool:
    """alert_if_critical for a ticket just opened in Core (helpdesk.intake), whose alert cannot exist yet.

    Call it only when the process's alerts are on (`ALERTS`). Returns whether it queued them.
    """
    if urgency != CRITICAL:
        return False
    half_time = deadlines.half_response_from(opened_at, level, urgency, table)
    alert = outbox.new_work(outbox.ONCALL_SMS, alert_key(ticket_id), ticket_id=ticket_id)
    outbox.add_new(connection, [alert, outbox.new_work(**_reminder(ticket_id, half_time))])
    return True


def _reminder(ticket_id: int, half_time: datetime) -> dict[str, Any]:
    return {"kind": outbox.ONCALL_REMINDER, "key": reminder_key(ticket_id), "ticket_id": ticket_id, "due_at": half_time}
