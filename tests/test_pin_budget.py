"""PIN guessing has a budget per customer, per ticket and per calling number, reserved before each check.

Real Redis, real threads: a burst of parallel calls gets no more PIN checks than the
budget, the dispatchers hear of a locked PIN once, and a wrong PIN costs the same
whether or not the ticket exists.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis import Redis
from sqlalchemy import func, select

from helpdesk.access import Reservation
from ivr.status_guard import RedisStatusGuard
from storage.models import Email
from storage.pins import set_customer_pin
from storage.ticket_numbers import check_digit
from tests.conftest import ANNA, API_TOKEN, GIULIA, STRANGER, Caller, Twiml, ticket_of, with_settings

pytestmark = pytest.mark.usefixtures("directory", "clean_status_counters")

DISPATCH = "dispatch@helpdesk.example.it"
BRAMBILLA_PIN, VERDI_PIN = "2468", "1357"
SCRYPT_COST = (2**14, 8, 1)
BUDGET = 5
LOCKED_WORDS = "per un'ora"
REFUSED_WORDS = "Non possiamo dare informazioni su questa richiesta"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def pins(app) -> None:
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", BRAMBILLA_PIN)
        set_customer_pin(session, "2002", VERDI_PIN)


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[tuple[int, int, int]]:
    """Every scrypt run from now on (storage.pins calls hashlib.scrypt), as its (n, r, p)."""
    calls: list[tuple[int, int, int]] = []
    lock = threading.Lock()
    real = hashlib.scrypt

    def counted(password, *, salt, n, r, p, **rest):  # type: ignore[no-untyped-def]
        with lock:
            calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, **rest)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    return calls


def ask_about(call: Caller, number: str) -> Twiml:
    """From the first ring to the answer to `number` typed at the ticket-number step."""
    call.dial_in()
    answer = call.stay_silent()
    if "numero è nascosto" in answer.said():
        answer = call.press("3479876543#")
    if "codice cliente" in answer.said():
        answer = call.stay_silent()
    answer = call.press("2")
    if "aperta" in answer.said():  # a contact's own tickets first: 3 for another one
        answer = call.press("3")
    assert "Digiti il numero della richiesta" in answer.said(), answer.said()
    return call.press(number + "#")


def pin_emails(app) -> list[Email]:
    with app.config["SESSIONMAKER"]() as session:
        return list(session.scalars(select(Email).where(Email.kind == "pin_locked")))


def test_a_burst_of_withheld_calls_gets_no_more_than_five_pin_checks_and_the_lock_is_reported_once(
    app, caller, pins, scrypt_calls
):
    with_settings(app, dispatch_email=DISPATCH)
    giulias = ticket_of(app, GIULIA)
    verdis = ticket_of(app, ANNA)
    callers = 12
    barrier = threading.Barrier(callers)

    def guess(index: int) -> str:
        call = Caller(app.test_client(), "anonymous")
        assert "digiti il PIN telefonico" in ask_about(call, giulias).said()
        barrier.wait()  # every call at the PIN step: now all guess at once
        return call.press(f"{9000 + index}#").said()

    scrypt_calls.clear()
    with ThreadPoolExecutor(callers) as pool:
        answers = list(pool.map(guess, range(callers)))

    assert len(scrypt_calls) == BUDGET  # the other seven were refused before any check
    assert all("Stato:" not in said for said in answers)
    assert sum(LOCKED_WORDS in said for said in answers) >= callers - BUDGET + 1
    # Every later attempt is refused as locked: withheld callers at once, and this ticket for anyone.
    later = Caller(app.test_client(), "anonymous")
    later.dial_in(), later.stay_silent(), later.press("3479876543#"), later.stay_silent()
    assert LOCKED_WORDS in later.press("2").said()
    assert LOCKED_WORDS in ask_about(caller(STRANGER), giulias).said()
    assert len(scrypt_calls) == BUDGET

    [email] = pin_emails(app)
    assert email.to_address == DISPATCH
    assert "Officine Brambilla" in email.subject and "1001" in email.subject
    assert BRAMBILLA_PIN not in email.body and "set-pin 1001" in email.body

    # Giulia, calling from her registered number, still hears her ticket: from her list and by its number.
    giulia = caller(GIULIA)
    giulia.dial_in(), giulia.stay_silent()
    assert "Lei ha una richiesta aperta" in giulia.press("2").said()
    assert "Stato: ricevuta" in giulia.press("2").said()
    assert "Stato: ricevuta" in ask_about(caller(GIULIA), giulias).said()

    # Another caller ID asking about another customer's ticket is not locked by any of it.
    stranger = caller("+393471112200")
    assert "digiti il PIN telefonico" in ask_about(stranger, verdis).said()
    assert stranger.press("0000#").said().startswith(REFUSED_WORDS)
    assert "Stato: ricevuta" in stranger.press(VERDI_PIN + "#").said()
    assert len(pin_emails(app)) == 1


def test_the_customers_budget_spans_its_tickets_and_callers_and_hides_which_tickets_are_its(
    app, caller, pins, scrypt_calls
):
    with_settings(app, dispatch_email=DISPATCH)
    brambilla = [ticket_of(app, GIULIA) for _ in range(BUDGET + 1)]
    for n, number in enumerate(brambilla[:BUDGET]):  # one wrong PIN each: a new number, a new ticket
        call = caller(f"+39347111230{n}")
        ask_about(call, number)
        assert REFUSED_WORDS in call.press("0000#").said()
    assert len(pin_emails(app)) == 1

    scrypt_calls.clear()
    call = caller(STRANGER)  # a caller and a ticket with their whole budget: the customer has none
    ask_about(call, brambilla[-1])
    refused = call.press(BRAMBILLA_PIN + "#")  # even the right PIN
    assert refused.said().startswith(REFUSED_WORDS) and LOCKED_WORDS not in refused.said()
    assert scrypt_calls == [SCRYPT_COST]  # the time of a wrong PIN, against no real PIN
    # An unknown number answers the same way, in the same time: a locked customer does not tell
    # which tickets are its own.
    scrypt_calls.clear()
    unknown = caller(STRANGER)
    ask_about(unknown, "7654321" + check_digit("7654321"))
    assert unknown.press(BRAMBILLA_PIN + "#").said() == refused.said()
    assert scrypt_calls == [SCRYPT_COST]
    assert len(pin_emails(app)) == 1


def test_the_right_pin_gives_its_attempt_back(app, client, pins):
    number = ticket_of(app, GIULIA)

    def ask(pin: str) -> int:
        body = {"caller": STRANGER, "pin": pin}
        return client.post(f"/api/tickets/{number}/status", json=body, headers=AUTH).status_code

    assert [ask("0000") for _ in range(BUDGET - 1)] == [404] * (BUDGET - 1)
    assert [ask(BRAMBILLA_PIN) for _ in range(3)] == [200] * 3  # the right PIN never locks anyone
    assert ask("0000") == 423  # the fifth wrong one
    assert ask(BRAMBILLA_PIN) == 423


def test_without_a_dispatch_address_a_lock_is_not_reported(app, caller, pins):
    number = ticket_of(app, GIULIA)
    for n in range(BUDGET):
        call = caller(f"+39347111240{n}")
        ask_about(call, number)
        call.press("0000#")
    assert pin_emails(app) == []


def test_a_wrong_pin_costs_one_full_scrypt_and_the_same_words_whether_or_not_the_ticket_exists(
    app, caller, scrypt_calls
):
    with app.config["SESSIONMAKER"]() as session, session.begin():
        set_customer_pin(session, "1001", BRAMBILLA_PIN)  # Studio Verdi has no PIN
    cases = {
        "unknown ticket": "1234567" + check_digit("1234567"),
        "customer without a PIN": ticket_of(app, ANNA),
        "wrong PIN": ticket_of(app, GIULIA),
    }
    runs, answers = {}, {}
    for case, number in cases.items():
        call = caller(STRANGER)
        ask_about(call, number)
        scrypt_calls.clear()
        answers[case] = call.press("1111#").said()
        runs[case] = list(scrypt_calls)
    assert runs == dict.fromkeys(cases, [SCRYPT_COST])
    assert len(set(answers.values())) == 1
    assert answers["wrong PIN"].startswith(REFUSED_WORDS)


def test_with_redis_unreachable_at_the_pin_step_nothing_is_checked_or_told(app, caller, pins, scrypt_calls):
    number = ticket_of(app, GIULIA)
    call = caller(STRANGER)
    ask_about(call, number)
    app.config["STATUS_GUARD"] = RedisStatusGuard(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), "x")
    answer = call.press(BRAMBILLA_PIN + "#")
    assert "non è disponibile in questo momento" in answer.said() and "Stato:" not in answer.said()
    assert scrypt_calls == []


def test_a_reservation_counts_all_three_at_once_and_a_refund_never_revives_an_expired_counter(settings):
    redis = Redis.from_url(settings.redis_url)
    guard = RedisStatusGuard(redis, f"ivr:{settings.queue_name}:status", max_failures=2, window=1)
    first = guard.reserve("withheld", "10000015", "customer:1")
    second = guard.reserve("withheld", "10000023", "customer:1")
    assert (first.caller_count, first.ticket_count, first.customer_count) == (1, 1, 1)
    assert (second.caller_count, second.ticket_count, second.customer_count) == (2, 1, 2)
    assert second.caller_or_ticket_spent and second.customer_spent and not second.over_budget
    assert guard.locked("withheld") and not guard.locked("+393471112233", "10000023")
    assert guard.claim_lock_report("customer:1") is not None
    assert guard.claim_lock_report("customer:1") is None  # reported once a window
    time.sleep(1.2)
    guard.refund(second)
    assert not guard.locked("withheld")
    assert redis.get(f"ivr:{settings.queue_name}:status:count:customer:1") is None
    assert isinstance(guard.reserve("withheld", "10000015", "customer:1"), Reservation)
    assert redis.ttl(f"ivr:{settings.queue_name}:status:count:caller:withheld") > 0


def test_the_lock_notice_is_queued_with_the_call_not_sent_from_the_webhook(app, caller, pins):
    with_settings(app, dispatch_email=DISPATCH)
    number = ticket_of(app, GIULIA)
    for n in range(BUDGET):
        call = caller(f"+39347111250{n}")
        ask_about(call, number)
        call.press("0000#")
    with app.config["SESSIONMAKER"]() as session:
        [email] = session.scalars(select(Email).where(Email.kind == "pin_locked")).all()
        assert email.sent_at is None and email.message_id.endswith("@example.com>")
        assert session.scalar(select(func.count()).select_from(Email)) == 1


def test_a_caller_locked_out_of_guessing_still_hears_their_own_tickets_but_no_typed_number(app, caller, pins):
    """Own tickets are the caller's by caller ID, not by a guess: the lock keeps only what is typed."""
    own = ticket_of(app, GIULIA)
    guard = app.config["STATUS_GUARD"]
    for _ in range(guard.max_failures):  # five wrong PINs from her number, for a ticket not hers
        guard.reserve(GIULIA, "10000015", "customer:2002")
    call = caller(GIULIA)
    call.dial_in()
    call.stay_silent()
    mine = call.press("2")
    assert "una richiesta aperta" in mine.said() and "Stato:" in mine.said()
    assert own in "".join(char for char in mine.said() if char.isdigit()) and LOCKED_WORDS not in mine.said()
    assert "Digiti il numero della richiesta" in call.press("3").said()
    typed = call.press(ticket_of(app, ANNA) + "#")
    assert LOCKED_WORDS in typed.said() and "Stato:" not in typed.said()
