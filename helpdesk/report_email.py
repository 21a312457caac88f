"""The monthly report as an email: HTML with a plain-text alternative, in the reader's language.

The words come from the prompts' catalogues (`report_*`). The chart of the medians against
the contract is a bar chart made of table cells with percentage widths and background
colours: an inline SVG is dropped by most mail clients, a PNG needs an image library, and an
SVG in a data: URI is blocked by Gmail and Outlook; table cells every client draws. Each bar
also says its value in words, and the table under it gives the same figures, so a reader
with images, colours or styles off loses nothing. The text part gives the figures and the
same bars drawn with characters.

One email per referent (storage.emails keeps one recipient per row), keyed by the customer,
the month and the referent: queued twice, it is sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from html import escape

from sqlalchemy.orm import Session

import prompts
from helpdesk.notices import Draft, queue
from helpdesk.reports import MET, MISSED, Report, TicketLine
from helpdesk.thread import HELP_DESK_ZONE
from storage.emails import get_email

MONTHLY_REPORT = "monthly_report"  # the emails' kind
INK, MUTED, RULE = "#1d2430", "#4a5566", "#d8dce1"
# Okabe and Ito's colour-blind safe palette: the medians dark, the contract's light, as two series.
MEDIAN_COLOUR, CONTRACT_COLOUR = "#0072B2", "#E69F00"
BAR_TEXT_WIDTH = 40  # characters of the longest bar in the text part


def report_key(report: Report, contact_id: int) -> str:
    """What one referent's report is, once: the customer, the month, the referent."""
    return f"{MONTHLY_REPORT}:{report.customer_code}:{report.month:%Y-%m}:{contact_id}"


def drafts(report: Report) -> list[Draft]:
    """One email per referent, in the referent's language."""
    found = []
    for reader in report.readers:
        words = Words(reader.language)
        subject = words.text("report_subject", company=report.customer_name, month=words.month(report.month))
        found.append(
            Draft(
                MONTHLY_REPORT,
                report_key(report, reader.contact_id),
                reader.email,
                subject,
                text_body(report, reader.language, reader.name),
                html=html_body(report, reader.language, reader.name),
            )
        )
    return found


def queue_report(session: Session, report: Report) -> tuple[list[str], list[str]]:
    """Queue the report to each referent in the caller's transaction: (addresses queued now, already queued)."""
    queued: list[str] = []
    before: list[str] = []
    for draft in drafts(report):
        (before if get_email(session, draft.key) is not None else queued).append(draft.to)
        queue(session, draft)
    return queued, before


@dataclass(frozen=True)
class Words:
    """The report's words in one language."""

    language: str

    def text(self, key: str, **values: object) -> str:
        return prompts.catalogue(self.language).text(key, **values)

    def month(self, month: date) -> str:
        names = [name.strip() for name in self.text("months").split(",")]
        return f"{names[month.month - 1]} {month.year}"

    def when(self, moment: datetime | None) -> str:
        if moment is None:
            return self.text("report_not_yet")
        local = moment.astimezone(HELP_DESK_ZONE)
        return self.text("report_time", day=local.day, month=local.month, hour=local.hour, minute=local.minute)

    def duration(self, minutes: float | None) -> str:
        if minutes is None:
            return self.text("report_no_figure")
        whole = round(minutes)
        if whole < 60:
            return self.text("report_minutes", minutes=whole)
        return self.text("report_hours_minutes", hours=whole // 60, minutes=whole % 60)

    def outcome(self, outcome: str) -> str:
        return self.text(
            {MET: "report_outcome_met", MISSED: "report_outcome_missed"}.get(outcome, "report_outcome_open")
        )

    def urgency(self, urgency: str) -> str:
        return self.text(f"urgency_{urgency}")

    def counts(self, report: Report) -> str:
        return self.text(
            "report_counts_around_the_clock" if report.around_the_clock else "report_counts_business_hours"
        )


def _ticket_cells(words: Words, line: TicketLine) -> list[str]:
    return [
        line.number,
        words.urgency(line.urgency),
        words.when(line.opened_at),
        words.when(line.first_response_at),
        words.when(line.restored_at),
        words.outcome(line.response),
        words.outcome(line.restore),
    ]


TICKET_COLUMNS = (
    "report_col_number",
    "report_col_urgency",
    "report_col_opened",
    "report_col_first_response",
    "report_col_restored",
    "report_col_response_sla",
    "report_col_restore_sla",
)
MEDIAN_COLUMNS = (
    "report_col_urgency",
    "report_col_tickets",
    "report_col_median_response",
    "report_col_contract_response",
    "report_col_median_restore",
    "report_col_contract_restore",
)


def _median_cells(words: Words, report: Report) -> list[list[str]]:
    return [
        [
            words.urgency(f.urgency),
            str(f.tickets),
            words.duration(f.median_response),
            words.duration(f.contract_response),
            words.duration(f.median_restore),
            words.duration(f.contract_restore),
        ]
        for f in report.figures
    ]


def _bars(report: Report) -> list[tuple[str, list[tuple[str, str, float | None]]]]:
    """(urgency, [(series key, colour, minutes)]) for each urgency with tickets: the chart's rows."""
    rows = []
    for f in report.figures:
        if f.tickets:
            rows.append(
                (
                    f.urgency,
                    [
                        ("median_response", MEDIAN_COLOUR, f.median_response),
                        ("contract_response", CONTRACT_COLOUR, float(f.contract_response)),
                        ("median_restore", MEDIAN_COLOUR, f.median_restore),
                        ("contract_restore", CONTRACT_COLOUR, float(f.contract_restore)),
                    ],
                )
            )
    return rows


def _scale(report: Report) -> float:
    values = [minutes or 0.0 for _, bars in _bars(report) for _, _, minutes in bars]
    return max(values, default=0.0) or 1.0


# -- text ---------------------------------------------------------------------------------------


def text_body(report: Report, language: str, name: str) -> str:
    """The plain-text part: greeting, the tickets, the medians against the contract, the bars in characters."""
    words = Words(language)
    month = words.month(report.month)
    lines = [
        words.text("email_greeting", name=name),
        "",
        words.text("report_intro", company=report.customer_name, month=month, level=report.level),
        words.text("report_contract_time", counts=words.counts(report)),
        "",
        words.text("report_tickets_heading"),
        "",
    ]
    if report.tickets:
        lines += _text_table(
            [words.text(key) for key in TICKET_COLUMNS], [_ticket_cells(words, t) for t in report.tickets]
        )
        lines.append(words.text("report_times_zone"))
    else:
        lines.append(words.text("report_no_tickets"))
    lines += ["", words.text("report_medians_heading"), ""]
    lines += _text_table([words.text(key) for key in MEDIAN_COLUMNS], _median_cells(words, report))
    bars = _bars(report)
    if bars:
        lines += ["", words.text("report_chart_title"), ""]
        scale = _scale(report)
        label_width = max(len(words.text(f"report_chart_{key}")) for key, _, _ in bars[0][1])
        for urgency, series in bars:
            lines.append(words.urgency(urgency))
            for key, _, minutes in series:
                length = round((minutes or 0) / scale * BAR_TEXT_WIDTH)
                label = words.text(f"report_chart_{key}").ljust(label_width)
                lines.append(f"  {label} {'#' * length} {words.duration(minutes)}")
    lines += ["", words.text("email_signature")]
    return "\n".join(lines)


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * width for width in widths]), *(line(row) for row in rows)]


# -- HTML ---------------------------------------------------------------------------------------


def html_body(report: Report, language: str, name: str) -> str:
    """The HTML part: the same content, tables styled inline (mail clients drop <style> sheets), the chart in cells."""
    words = Words(language)
    month = words.month(report.month)
    title = words.text("report_title", month=month)
    parts = [
        f'<!DOCTYPE html>\n<html lang="{escape(language)}"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title></head>",
        f'<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;color:{INK};font-size:14px">',
        f'<h1 style="font-size:20px;margin:0 0 12px">{escape(title)} &middot; {escape(report.customer_name)}</h1>',
        f"<p>{escape(words.text('email_greeting', name=name))}</p>",
        f"<p>{escape(words.text('report_intro', company=report.customer_name, month=month, level=report.level))} ",
        f"{escape(words.text('report_contract_time', counts=words.counts(report)))}</p>",
        f'<h2 style="font-size:16px;margin:20px 0 8px">{escape(words.text("report_tickets_heading"))}</h2>',
    ]
    if report.tickets:
        parts.append(
            _html_table(
                [words.text(key) for key in TICKET_COLUMNS],
                [_ticket_cells(words, t) for t in report.tickets],
                "tickets",
            )
        )
        parts.append(f'<p style="color:{MUTED};font-size:12px">{escape(words.text("report_times_zone"))}</p>')
    else:
        parts.append(f"<p>{escape(words.text('report_no_tickets'))}</p>")
    parts.append(f'<h2 style="font-size:16px;margin:20px 0 8px">{escape(words.text("report_medians_heading"))}</h2>')
    parts.append(_html_chart(report, words))
    parts.append(_html_table([words.text(key) for key in MEDIAN_COLUMNS], _median_cells(words, report), "medians"))
    parts.append(f'<p style="margin-top:20px">{escape(words.text("email_signature"))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_table(header: list[str], rows: list[list[str]], ident: str) -> str:
    cell = f"padding:4px 8px;border-bottom:1px solid {RULE};text-align:left"
    head = "".join(f'<th scope="col" style="{cell}">{escape(text)}</th>' for text in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="{cell}">{escape(text)}</td>' for text in row) + "</tr>" for row in rows
    )
    return (
        f'<table id="{ident}" role="table" cellpadding="0" cellspacing="0" style="border-collapse:collapse;'
        f'margin:8px 0">\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody></table>'
    )


def _html_chart(report: Report, words: Words) -> str:
    """The medians against the contract: per urgency, four bars whose widths are percentages of the longest."""
    bars = _bars(report)
    if not bars:
        return ""
    scale = _scale(report)
    rows = [
        f'<tr><td colspan="2" style="padding:8px 0 4px;font-weight:bold">{escape(words.text("report_chart_title"))}'
        "</td></tr>"
    ]
    for urgency, series in bars:
        rows.append(f'<tr><td colspan="2" style="padding:6px 0 2px">{escape(words.urgency(urgency))}</td></tr>')
        for key, colour, minutes in series:
            label = words.text(f"report_chart_{key}")
            value = words.duration(minutes)
            width = max(0, min(100, round((minutes or 0) / scale * 100)))
            shown = "" if minutes is None else str(round(minutes))
            bar = (
                f'<td width="{width}%" bgcolor="{colour}" style="background:{colour};height:14px;font-size:1px;'
                f'line-height:1px" title="{escape(label)}: {escape(value)}">&nbsp;</td>'
                if width
                else ""
            )
            rest = (
                f'<td width="{100 - width}%" style="font-size:1px;line-height:1px">&nbsp;</td>' if width < 100 else ""
            )
            rows.append(
                f'<tr data-series="{key}" data-urgency="{urgency}" data-minutes="{shown}">'
                f'<td width="40%" style="padding:1px 8px 1px 12px;color:{MUTED};font-size:12px;white-space:nowrap">'
                f"{escape(label)}: {escape(value)}</td>"
                f'<td width="60%" style="padding:1px 0"><table width="100%" cellpadding="0" cellspacing="0" '
                f'role="presentation"><tr>{bar}{rest}</tr></table></td></tr>'
            )
    return (
        '<table id="chart" class="chart" width="100%" cellpadding="0" cellspacing="0" '
        'style="max-width:640px;margin:8px 0">\n' + "\n".join(rows) + "\n</table>"
    )
