"""The web process's logs hold no full phone number and no PIN, even when a webhook fails.

Whole calls are played through the app with logging at DEBUG, ending with a database that
refuses new calls (so tracebacks are logged): no record may name a caller's number (E.164
or national), a number typed on the keypad, or a PIN. SQLAlchemy's errors and statement
log would carry their bound parameters; engines are made with hide_parameters, which the
last tests check directly. The access log is checked on gunicorn, run as the Procfile runs it.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from storage.models import Customer, Ticket
from storage.pins import set_customer_pin
from tests.conftest import ANNA, BASE_URL, GIULIA, STRANGER, Caller

pytestmark = pytest.mark.usefixtures("directory")

MARCO = "+393331234567"  # a contact whose call meets a database that refuses it
CALLBACK_TYPED = "0245678901"  # what a caller with a withheld number types as a callback number
CALLBACK_E164 = "+390245678901"
PIN = "73915286"
WRONG_PIN = "86420135"
FAKE_PIN_NAME = "Rossi PIN 55501234"


def forbidden() -> list[str]:
    """Every number and PIN the calls below use, in each form a log could show it."""
    numbers = [GIULIA, ANNA, STRANGER, MARCO, CALLBACK_E164]
    return [n.lstrip("+") for n in numbers] + [n[3:] for n in numbers] + [CALLBACK_TYPED, PIN, WRONG_PIN]


def leaks(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    """(value, formatted record) for each record that shows a forbidden value, traceback included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    found = []
    for record in records:
        formatted = formatter.format(record)
        found += [(value, formatted) for value in forbidden() if value in formatted]
    return found


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def statements_logged(everything_logged: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """SQLAlchemy's statement log on too (as SQL echo would be), with its bound parameters."""
    everything_logged.set_level(logging.INFO, logger="sqlalchemy.engine")
    return everything_logged


def refuse_new_calls(app) -> None:  # type: ignore[no-untyped-def]
    """A database that fails every INSERT of a call, as a broken migration or a full disk would."""
    engine = app.config["ENGINE"]
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text("CREATE TRIGGER refuse_calls BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'refused'); END")
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_calls() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            connection.execute(
                text("CREATE TRIGGER refuse_calls BEFORE INSERT ON calls FOR EACH ROW EXECUTE FUNCTION refuse_calls()")
            )


def open_ticket_on_the_line(call: Caller) -> None:
    call.dial_in(), call.stay_silent(), call.press("1"), call.press("1"), call.speak(), call.press("1")
    assert call.recording_ready().status_code == 204
    assert call.hang_up().status_code == 204


def test_calls_with_a_callback_number_a_pin_and_a_failing_database_log_no_number_and_no_pin(
    app, client, caller, everything_logged
):
    open_ticket_on_the_line(caller(GIULIA))
    open_ticket_on_the_line(caller(ANNA))
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "2002", PIN)
        annas = session.scalars(select(Ticket).where(Ticket.caller == ANNA)).one().number

    withheld = caller("anonymous")
    withheld.dial_in(), withheld.stay_silent()
    withheld.press(CALLBACK_TYPED + "#")
    withheld.stay_silent()  # no customer code: the main menu
    withheld.press("1"), withheld.press("2"), withheld.speak(), withheld.press("1")
    assert withheld.hang_up().status_code == 204

    for pin in (WRONG_PIN, PIN):
        stranger = caller(STRANGER)
        stranger.dial_in(), stranger.stay_silent(), stranger.stay_silent()
        asked = stranger.press("2")
        assert asked.find("Gather") is not None
        stranger.press(annas + "#")
        answered = stranger.press(pin + "#")
        assert ("Stato:" in answered.said()) == (pin == PIN)
        stranger.hang_up()

    refuse_new_calls(app)
    failing = Caller(client, MARCO)
    apology = failing.post(f"{BASE_URL}/twilio/voice", {"CallStatus": "ringing"})
    assert apology.status_code == 200 and b"<Record" in apology.data  # the caller can still leave a message
    assert failing.hang_up().status_code == 204  # kept in the spool

    records = everything_logged.records
    assert any(r.exc_info for r in records), "the failing webhook logged no traceback: the test lost its point"
    assert any("*********122" in r.getMessage() for r in records)  # calls are logged, masked
    assert leaks(records) == []


def test_the_sql_statement_log_shows_no_parameters(caller, statements_logged):
    open_ticket_on_the_line(caller(GIULIA))
    records = statements_logged.records
    assert any(r.name == "sqlalchemy.engine.Engine" for r in records), "no statement was logged"
    assert leaks(records) == []


def test_a_database_error_does_not_carry_the_values_it_was_given(app, statements_logged):
    with app.config["SESSIONMAKER"]() as session:
        session.add(Customer(code="9999", name="First Srl", sla="base"))
        session.commit()
        session.add(Customer(code="9999", name=FAKE_PIN_NAME, sla="base"))
        with pytest.raises(IntegrityError) as refused:
            session.commit()
    assert "55501234" not in str(refused.value)
    assert "hidden" in str(refused.value)  # SQLAlchemy says it left them out
    assert not any("55501234" in r.getMessage() for r in statements_logged.records)


def test_the_access_log_names_paths_without_the_callers_number_in_the_query(settings, tmp_path):
    """gunicorn as the Procfile runs it: an API query by caller leaves no number in its access log."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from tests.conftest import API_TOKEN, free_port

    project = Path(__file__).resolve().parent.parent
    procfile = (project / "Procfile").read_text().splitlines()
    [web] = [line.removeprefix("web: ") for line in procfile if line.startswith("web: ")]
    port = free_port()
    command = web.replace("$PORT", str(port)).replace("${WEB_CONCURRENCY:-2}", "1").split()
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": "not-used-here",
        "API_TOKEN": API_TOKEN,
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": settings.database_url,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        web_process = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/tickets?caller=%2B{GIULIA.lstrip('+')}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    assert answer.status == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        web_process.terminate()
        web_process.wait(20)
    logged = log_path.read_text()
    assert "GET /api/tickets " in logged  # the request is in the access log...
    assert GIULIA.lstrip("+") not in logged and GIULIA[3:] not in logged  # ...without her number
