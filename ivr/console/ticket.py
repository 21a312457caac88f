"""A ticket: the caller, the recording, the transcript, the thread, and the actions on it.

Each action is one form and one POST: the form checks its input, helpdesk.roles says who
may act, helpdesk.actions changes the ticket and writes its thread entry, and the request
commits once. A refused form or action re-renders the page (400) with the message beside
the field, and nothing is written.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from helpdesk import actions, thread
from helpdesk.actions import ActionForbidden, ActionRefused
from helpdesk.phases import OPEN_PHASES, allowed_moves
from helpdesk.roles import may_act, may_move, may_view, phase_action
from helpdesk.sla import load as load_sla
from ivr.console import forms
from ivr.console.i18n import language, local, t
from ivr.db import db_session
from ivr.settings import Settings
from storage.models import Customer, Ticket, User
from storage.ticket_numbers import is_valid
from storage.tickets import get_ticket_by_number, get_ticket_for_update
from storage.users import active_technicians, technicians_with_skill

bp = Blueprint("ticket", __name__, template_folder="templates", url_prefix="/console/tickets")

MAX_NUMBER_LENGTH = 20  # the column's width: anything longer is no ticket


@dataclass(frozen=True)
class Action:
    """An action on a ticket as the console offers it: its form, who may take it, what it does, the words once done."""

    form: type[forms.ActionForm]
    role: str  # the action's name in helpdesk.roles
    run: Callable[[Session, Ticket, User, Any, Settings], object]  # (session, ticket, actor, form, settings)
    done: str
    shown: Callable[[Ticket], bool] = lambda ticket: True  # whether it applies to the ticket as it stands
    # The role's action once the form is read, when what is chosen decides it (a move to closed is `close`).
    chosen_role: Callable[[Any], str] | None = None
    # The form's field for a parameter of the action whose name differs (a refusal names the parameter).
    fields: tuple[tuple[str, str], ...] = ()


ACTIONS: dict[str, Action] = {
    "urgency": Action(
        forms.UrgencyForm,
        "change_urgency",
        lambda s, ticket, actor, f, settings: actions.set_urgency(
            s, ticket, actor, f.urgency.data, f.reason.data, table=load_sla(settings.sla_table)
        ),
        "ticket_done_urgency",
        shown=lambda ticket: _is_open(ticket),
    ),
    "match": Action(
        forms.MatchForm,
        "match_caller",
        lambda s, ticket, actor, f, settings: actions.match_caller(
            s, ticket, actor, f.contact.data, f.save_number.data, table=load_sla(settings.sla_table)
        ),
        "ticket_done_match",
        shown=lambda ticket: _is_open(ticket) and ticket.needs_match,
        fields=(("contact_id", "contact"),),
    ),
    "phase": Action(
        forms.PhaseForm,
        "move_phase",  # or close: which one depends on the phase chosen (helpdesk.roles.phase_action)
        lambda s, ticket, actor, f, _: actions.move_phase(s, ticket, actor, f.phase.data),
        "ticket_done_phase",
        shown=lambda ticket: bool(allowed_moves(ticket.status)),
        chosen_role=lambda f: phase_action(f.phase.data),
    ),
    "estimate": Action(
        forms.EstimateForm,
        "set_estimate",
        lambda s, ticket, actor, f, settings: actions.set_restore_estimate(
            s, ticket, actor, forms.as_utc(f.when.data, settings.business_timezone)
        ),
        "ticket_done_estimate",
        shown=lambda ticket: _is_open(ticket),
    ),
    "assign": Action(
        forms.AssignForm,
        "assign",
        lambda s, ticket, actor, f, _: actions.assign(s, ticket, actor, f.technician.data, skill=f.skill.data or None),
        "ticket_done_assign",
        shown=lambda ticket: _is_open(ticket),
        fields=(("technician_id", "technician"),),
    ),
    "vendor": Action(
        forms.VendorForm,
        "escalate",
        lambda s, ticket, actor, f, settings: actions.escalate_to_vendor(
            s,
            ticket,
            actor,
            f.vendor.data,
            f.reference.data,
            forms.as_utc(f.restore_at.data, settings.business_timezone),
        ),
        "ticket_done_vendor",
        shown=lambda ticket: _is_open(ticket),
    ),
    "device": Action(
        forms.DeviceForm,
        "lend_device",
        lambda s, ticket, actor, f, settings: actions.lend_device(
            s, ticket, actor, f.device.data, table=load_sla(settings.sla_table)
        ),
        "ticket_done_device",
        shown=lambda ticket: _is_open(ticket) and not _device_out(ticket) and _courtesy_included(ticket),
    ),
    "device-return": Action(
        forms.DeviceReturnForm,
        "return_device",
        lambda s, ticket, actor, f, _: actions.return_device(s, ticket, actor),
        "ticket_done_device_return",
        shown=lambda ticket: _device_out(ticket),
    ),
    "note": Action(
        forms.NoteForm,
        "add_note",
        lambda s, ticket, actor, f, _: actions.add_note(s, ticket, actor, f.text.data),
        "ticket_done_note",
    ),
    "reply": Action(
        forms.ReplyForm,
        "reply",
        lambda s, ticket, actor, f, _: actions.reply(s, ticket, actor, f.text.data),
        "ticket_done_reply",
    ),
}


@bp.get("/<number>")
@login_required
def view(number: str) -> Any:
    """The ticket's page, with the forms of the actions the user may do on it now."""
    session = db_session()
    ticket = _ticket_or_404(session, number)
    _may_view_or_403(ticket)
    return _page(session, ticket)


@bp.post("/<number>/<action>")
@login_required
def act(number: str, action: str) -> Any:
    """Do one action (view, check, act): form, roles, helpdesk.actions, one commit; then back to the page."""
    offered = ACTIONS.get(action)
    if offered is None:
        abort(404)
    session = db_session()
    ticket = _ticket_or_404(session, number, for_update=True)
    _may_view_or_403(ticket)
    user: User = current_user.user
    if not may_act(user, ticket, offered.role):
        abort(403)
    form = _form(session, ticket, action, request.form)
    if form.validate():
        if offered.chosen_role is not None and not may_act(user, ticket, offered.chosen_role(form)):
            abort(403)
        try:
            offered.run(session, ticket, user, form, _settings())
        except ActionForbidden:
            session.rollback()
            abort(403)
        except ActionRefused as refused:
            session.rollback()
            field = dict(offered.fields).get(refused.field or "", refused.field)
            form.refuse(field, refused.words(language()))
        else:
            session.commit()
            flash(t(offered.done), "success")
            return redirect(url_for("ticket.view", number=number))
    current_app.logger.info("console: %s on ticket %s refused: %s", action, number, sorted(_error_fields(form)))
    return _page(session, ticket, posted=(action, form)), 400


@bp.get("/<number>/recording")
@login_required
def recording(number: str) -> Any:
    """The caller's recorded message, with range requests so the player can seek; only from the recordings folder."""
    ticket = _ticket_or_404(db_session(), number)
    _may_view_or_403(ticket)
    path = _recording_file(ticket.recording_path, _settings().recordings_dir)
    if path is None:
        abort(404)
    mimetype = mimetypes.guess_type(path.name)[0] or "audio/wav"
    response = send_file(path, mimetype=mimetype, conditional=True, max_age=0)
    response.cache_control.private = True
    response.cache_control.no_store = True  # a caller's voice stays off shared and disk caches
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page(session: Session, ticket: Ticket, posted: tuple[str, forms.ActionForm] | None = None) -> str:
    user: User = current_user.user
    offered = {
        name: posted[1] if posted is not None and posted[0] == name else _form(session, ticket, name, None)
        for name, action in ACTIONS.items()
        if action.shown(ticket) and may_act(user, ticket, action.role) and (name != "phase" or _moves(user, ticket))
    }
    if posted is not None:
        offered.setdefault(*posted)  # a form refused even though it no longer applies keeps its message
    tongue = language()
    entries = [
        {
            "text": thread.render(event, tongue),
            "who": event.user.name if event.user is not None else t("ticket_the_line"),
            "when": local(event.at),
            "kind": event.kind,
        }
        for event in ticket.events
    ]
    customer = ticket.customer
    return render_template(
        "ticket.html",
        ticket=ticket,
        customer=customer,
        sla_level=customer.sla if customer is not None else None,
        courtesy_included=_courtesy_included(ticket),
        has_recording=_recording_file(ticket.recording_path, _settings().recordings_dir) is not None,
        entries=entries,
        forms=offered,
    )


def _form(session: Session, ticket: Ticket, action: str, formdata: Any) -> forms.ActionForm:
    """The action's form for this ticket, with the choices it needs from the database."""
    context: dict[str, Any] = {"zone": _settings().business_timezone}
    if action == "match":
        context["customers"] = session.scalars(
            select(Customer).options(selectinload(Customer.contacts)).order_by(Customer.name, Customer.id)
        ).all()
    elif action == "assign":
        context["skilled"], context["others"] = _technicians(session, ticket.skill_needed)
    elif action == "phase":
        context["moves"] = _moves(current_user.user, ticket)
    return ACTIONS[action].form.for_ticket(ticket, formdata, action, **context)


def _technicians(session: Session, skill: str | None) -> tuple[list[User], list[User]]:
    """The active technicians with the ticket's needed `skill`, then the others (all of them when none is needed)."""
    skilled = technicians_with_skill(session, skill) if skill else []
    return skilled, [user for user in active_technicians(session) if user not in skilled]


def _moves(user: User, ticket: Ticket) -> list[str]:
    """The phases `user` may move `ticket` to now: those the phases allow and the roles let them make."""
    return [target for target in allowed_moves(ticket.status) if may_move(user, ticket, target)]


def _ticket_or_404(session: Session, number: str, *, for_update: bool = False) -> Ticket:
    """The ticket numbered `number`; an invalid number is as unknown as a missing ticket."""
    if len(number) > MAX_NUMBER_LENGTH or not is_valid(number):
        abort(404)
    # Locked for an action: two people acting at once take turns.
    ticket = get_ticket_for_update(session, number) if for_update else get_ticket_by_number(session, number)
    if ticket is None:
        abort(404)
    return ticket


def _may_view_or_403(ticket: Ticket) -> None:
    if not may_view(current_user.user, ticket):
        abort(403)


def _recording_file(stored: str | None, recordings_dir: Path) -> Path | None:
    """The recording's file, when it exists inside the recordings folder (never a path elsewhere)."""
    if not stored:
        return None
    root = Path(recordings_dir).resolve()
    path = Path(stored).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _is_open(ticket: Ticket) -> bool:
    return ticket.status in OPEN_PHASES


def _courtesy_included(ticket: Ticket) -> bool:
    """Whether the customer's SLA includes a courtesy device: a confirmed customer's only."""
    if ticket.needs_match or ticket.customer is None:
        return False
    return load_sla(_settings().sla_table).includes(ticket.customer.sla, "courtesy_device")


def _device_out(ticket: Ticket) -> bool:
    return ticket.courtesy_device is not None and ticket.courtesy_returned_at is None


def _error_fields(form: forms.ActionForm) -> set[str]:
    return {name for name, errors in form.errors.items() if errors}


def _settings() -> Settings:
    return current_app.config["SETTINGS"]
