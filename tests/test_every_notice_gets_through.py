"""Every notice gets through: each email is its own step with its own retries, a permanent
refusal of one recipient is kept on the thread and blocks no other, and when the caller's
confirmation is refused the dispatchers are told. Against a real SMTP server that refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk import thread
from ivr.worker.relay import REQUEUE_AFTER
from storage import outbox
from storage.models import Email, Ticket
from tests.conftest import DISPATCH, GIULIA

pytestmark = pytest.mark.usefixtures("directory")

GIULIA_EMAIL = "giulia.rossi@brambilla.example.it"
MARCO_EMAIL = "marco.bianchi@brambilla.example.it"  # Officine Brambilla's referent


def open_ticket(caller) -> None:  # type: ignore[no-untyped-def]
    call = caller(GIULIA)
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1")
    # Twice silent at the beep: a ticket without audio, which goes straight to its emails.
    call.stay_silent(), call.stay_silent()


def the_ticket(app) -> Ticket:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        ticket = session.scalars(select(Ticket)).one()
        _ = ticket.events
        return ticket


def emails(app) -> dict[str, Email]:  # type: ignore[no-untyped-def]
    with app.config["SESSIONMAKER"]() as session:
        return {email.kind + ":" + email.to_address: email for email in session.scalars(select(Email))}


def test_each_email_of_a_ticket_is_its_own_step_one_recipient_each(app, caller, jobs, smtp_sink):
    open_ticket(caller)
    jobs.run_all("follow_up")

    queued = emails(app)
    assert set(queued) == {
        f"confirmation:{GIULIA_EMAIL}",
        f"referent_copy:{MARCO_EMAIL}",
        f"dispatch:{DISPATCH}",
    }
    assert len(jobs.work("email")) == 3  # three outbox rows, three jobs
    jobs.run_all("email")
    assert sorted(rcpts[0] for rcpts, _ in smtp_sink.messages) == sorted([GIULIA_EMAIL, MARCO_EMAIL, DISPATCH])
    [confirmation] = smtp_sink.to(GIULIA_EMAIL)
    assert confirmation["Cc"] is None and the_ticket(app).number in confirmation["Subject"]


def test_a_refused_confirmation_is_on_the_thread_blocks_nothing_and_the_dispatchers_are_told(
    app, settings, caller, jobs, smtp_sink
):
    smtp_sink.refuse.add(GIULIA_EMAIL)
    open_ticket(caller)
    jobs.run_all()  # the follow-up, its three emails, then the notice of the refusal

    ticket = the_ticket(app)
    [refused] = [thread.render(e, "en") for e in ticket.events if e.kind == "email_refused"]
    assert GIULIA_EMAIL in refused and "550" in refused and "mailbox unavailable" in refused  # the server's answer
    assert smtp_sink.to(GIULIA_EMAIL) == []
    assert len(smtp_sink.to(MARCO_EMAIL)) == 1  # the referent's copy went all the same
    notice, told = smtp_sink.to(DISPATCH)  # the new ticket, then the bounce
    assert ticket.number in notice["Subject"]
    assert "Conferma non recapitata" in told["Subject"] and "550" in told.get_content()

    email = emails(app)[f"confirmation:{GIULIA_EMAIL}"]
    assert email.refused_at is not None and email.sent_at is None and "550" in (email.refusal or "")
    # Not retried for ever: its work is done, and the relay finds nothing due.
    assert jobs.work("email") == []
    with app.config["SESSIONMAKER"]() as session, session.begin():
        assert outbox.claim_due(session, REQUEUE_AFTER) == []


def test_the_dispatchers_notice_goes_out_while_the_confirmation_is_deferred_then_it_goes_once(
    app, caller, jobs, smtp_sink
):
    smtp_sink.defer.add(GIULIA_EMAIL)  # 451: the caller's mailbox says "later"
    open_ticket(caller)
    jobs.run_all()
    assert len(smtp_sink.to(DISPATCH)) == 1 and len(smtp_sink.to(MARCO_EMAIL)) == 1
    assert smtp_sink.to(GIULIA_EMAIL) == []
    [failed] = [thread.render(e, "en") for e in the_ticket(app).events if e.kind == "email_failed"]
    assert GIULIA_EMAIL in failed and "retry-failed" in failed  # a temporary failure is retried, not refused

    smtp_sink.defer.clear()
    assert "1 failed follow-up(s) will run again" in app.test_cli_runner().invoke(args=["retry-failed"]).output
    jobs.run_all()
    assert len(smtp_sink.to(GIULIA_EMAIL)) == 1 and len(smtp_sink.messages) == 3


def test_an_unconfirmed_caller_gets_no_email_and_nor_does_the_contact_they_claim(app, caller, jobs, smtp_sink):
    call = caller("anonymous")
    call.dial_in(), call.stay_silent()
    call.press(GIULIA.removeprefix("+39"))  # a withheld caller types Giulia's number to be called back
    call.stay_silent()  # no customer code
    call.press("1"), call.press("1"), call.stay_silent(), call.stay_silent()
    jobs.run_all()

    assert [rcpts for rcpts, _ in smtp_sink.messages] == [[DISPATCH]]
    ticket = the_ticket(app)
    assert ticket.needs_match and ticket.contact_id is None
    assert any(e.kind == "no_confirmation" for e in ticket.events)
