"""The forms of a ticket's actions: Flask-WTF, each with its CSRF token, checked before anything changes.

A form checks only its input (present, well-formed, one of its choices); whether the action
may be done on this ticket is helpdesk/'s to say. Each form is built for one ticket by
`for_ticket`, with the ticket's values as defaults and its prefix (the action's name) on
every field, so that many forms live on one page. WTForms' own messages come in the
user's language from WTForms' catalogues; ours from the console's words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, SelectField, StringField, TextAreaField
from wtforms.i18n import get_translations
from wtforms.validators import DataRequired, InputRequired, Length

from helpdesk.actions import DEVICE_LIMIT, REASON_LIMIT, REFERENCE_LIMIT, TEXT_LIMIT, VENDOR_LIMIT
from ivr.console.i18n import language, t
from storage.models import Customer, Ticket, User
from storage.tickets import URGENCIES

LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]  # what <input type="datetime-local"> sends


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


@cache
def _wtforms_words(tongue: str) -> Any:
    return get_translations([tongue])


class ActionForm(FlaskForm):
    """A form of one action on one ticket."""

    class Meta:
        def get_translations(self, form: Any) -> Any:
            return _wtforms_words(language())

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        """The form for `ticket`: the posted `formdata`, or None for a fresh one with the ticket's values."""
        return cls(formdata=formdata, prefix=prefix)

    def refuse(self, field: str | None, message: str) -> None:
        """Show a refusal beside `field`, or above the form when it names none of its fields."""
        target = getattr(self, field, None) if field else None
        if target is not None and hasattr(target, "errors") and field != "meta":
            target.errors = [*target.errors, message]
        else:
            self.form_errors.append(message)


class UrgencyForm(ActionForm):
    """Confirm the urgency, or change it with a reason."""

    urgency = SelectField()
    # A reason is needed to change the urgency, not to confirm it: helpdesk.actions says so.
    reason = StringField(filters=[_stripped], validators=[Length(max=REASON_LIMIT)])

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        form = cls(formdata=formdata, prefix=prefix, urgency=ticket.urgency)
        form.urgency.choices = [(code, t(f"ticket_urgency_{code}")) for code in URGENCIES]
        return form


class MatchForm(ActionForm):
    """Match the caller to a contact of a customer, and maybe save the number on the contact."""

    contact = SelectField(coerce=int, validators=[InputRequired()])
    save_number = BooleanField()

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        """`customers`: the directory, whose contacts are the choices, grouped by customer."""
        customers: Iterable[Customer] = context["customers"]
        form = cls(formdata=formdata, prefix=prefix, contact=ticket.suggested_contact_id or ticket.contact_id)
        form.contact.choices = {
            f"{customer.name} ({customer.code})": [(contact.id, contact.name) for contact in customer.contacts]
            for customer in customers
            if customer.contacts
        }
        return form


class PhaseForm(ActionForm):
    """Move the ticket to another phase."""

    # Only the moves this user may make now are offered; whether another is allowed is helpdesk.actions' to say.
    phase = SelectField(validate_choice=False, validators=[InputRequired()])

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        """`moves`: the phases this user may move the ticket to now."""
        form = cls(formdata=formdata, prefix=prefix)
        form.phase.choices = [(code, t(f"ticket_phase_{code}")) for code in context["moves"]]
        return form


class EstimateForm(ActionForm):
    """The estimated restore time, typed on the help desk's clock."""

    when = DateTimeLocalField(format=LOCAL_FORMATS, validators=[InputRequired()])

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        return cls(formdata=formdata, prefix=prefix, when=as_local(ticket.estimated_restore_at, context["zone"]))


class AssignForm(ActionForm):
    """Give the ticket to a technician, with the skill it needs."""

    technician = SelectField(coerce=int, validators=[InputRequired()])
    skill = SelectField()

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        """`skilled`, `others`: the technicians with the ticket's needed skill first, then the rest."""
        skilled: Sequence[User] = context["skilled"]
        others: Sequence[User] = context["others"]
        form = cls(formdata=formdata, prefix=prefix, technician=ticket.technician_id, skill=ticket.skill_needed or "")
        if ticket.skill_needed:
            form.technician.choices = {
                t("ticket_with_skill", skill=ticket.skill_needed): [(user.id, user.name) for user in skilled],
                t("ticket_without_skill", skill=ticket.skill_needed): [
                    (user.id, t("ticket_other_skills", name=user.name, skills=_skills(user))) for user in others
                ],
            }
        else:
            form.technician.choices = [(user.id, f"{user.name} ({_skills(user)})") for user in [*skilled, *others]]
        known = {skill for user in [*skilled, *others] for skill in user.skill_set} | {ticket.skill_needed or ""}
        form.skill.choices = [("", t("ticket_no_skill"))] + [(skill, skill) for skill in sorted(known) if skill]
        return form


class VendorForm(ActionForm):
    """Escalate to an external vendor: its name, its reference, its promised restore time."""

    vendor = StringField(filters=[_stripped], validators=[DataRequired(), Length(max=VENDOR_LIMIT)])
    reference = StringField(filters=[_stripped], validators=[DataRequired(), Length(max=REFERENCE_LIMIT)])
    restore_at = DateTimeLocalField(format=LOCAL_FORMATS, validators=[InputRequired()])

    @classmethod
    def for_ticket(cls, ticket: Ticket, formdata: Any, prefix: str, **context: Any) -> ActionForm:
        return cls(
            formdata=formdata,
            prefix=prefix,
            vendor=ticket.vendor_name,
            reference=ticket.vendor_reference,
            restore_at=as_local(ticket.vendor_restore_at, context["zone"]),
        )


class DeviceForm(ActionForm):
    """A courtesy device lent to the customer."""

    device = StringField(filters=[_stripped], validators=[DataRequired(), Length(max=DEVICE_LIMIT)])


class DeviceReturnForm(ActionForm):
    """Only the CSRF token: the device lent is the one on the ticket."""


class NoteForm(ActionForm):
    """An internal note, never emailed."""

    text = TextAreaField(filters=[_stripped], validators=[DataRequired(), Length(max=TEXT_LIMIT)])


class ReplyForm(ActionForm):
    """A reply emailed to the contact and the referents."""

    text = TextAreaField(filters=[_stripped], validators=[DataRequired(), Length(max=TEXT_LIMIT)])


def as_local(moment: datetime | None, zone: str) -> datetime | None:
    """A stored UTC time as the help desk's wall-clock time, for a datetime-local input."""
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None) if moment is not None else None


def as_utc(wall_clock: datetime, zone: str) -> datetime:
    """A wall-clock time typed in the help desk's time zone, in UTC."""
    return wall_clock.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _skills(user: User) -> str:
    return ", ".join(sorted(user.skill_set)) or "—"
