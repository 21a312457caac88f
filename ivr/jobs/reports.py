"""The monthly reports in the worker: the month's run queues every customer's report, one email per referent.

The run is one outbox row per month (helpdesk.reports.schedule_monthly_reports, written by the
relay), due on the next month's first. It queues the emails in one short transaction under
its lease; each email is keyed by customer, month and referent, so a second run (a retry, a
second worker) queues nothing new, and each email is then sent by its own job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from helpdesk import reports
from helpdesk.report_email import queue_report
from helpdesk.sla import load as load_sla
from storage import outbox
from storage.models import utcnow

if TYPE_CHECKING:
    from ivr.jobs.follow_up import Job

log = logging.getLogger(__name__)


def send_monthly_reports(job: Job) -> None:
    """Queue the month's report to every customer's referents (nothing when MONTHLY_REPORTS is off)."""
    if job.settings.monthly_reports != "on":
        log.info("MONTHLY_REPORTS is off: the month's reports are not sent")
        return
    table = load_sla(job.settings.sla_table)
    with job.hold() as session:
        key = outbox.get_work_key(session, job.lease.work_id)
        assert key is not None
        month = reports.month_of_key(key)
        now, queued, before = utcnow(), 0, 0
        for customer in reports.customers_with_referents(session):
            report = reports.build_report(session, customer, month, table, now)
            new, old = queue_report(session, report)
            queued, before = queued + len(new), before + len(old)
    log.info("monthly reports of %s: %d email(s) queued, %d queued before", f"{month:%Y-%m}", queued, before)
