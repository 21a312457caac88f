"""Signing in to the console: every page behind it, the session cookie, CSRF, the budget of wrong passwords,
signing out everywhere, the add-user command and who may do what.

Other console tests sign in with `sign_in(client, email, password)`, post forms with
`csrf_token(client, path)`, and make accounts with `make_user(app, ...)`; the `accounts`
fixture gives a dispatcher and a technician (passwords in DISPATCHER_PASSWORD and
TECHNICIAN_PASSWORD).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import func, select
from werkzeug.routing import Rule

from helpdesk import roles
from ivr import create_app
from ivr.console.auth import ACCOUNT_BUDGET, ADDRESS_BUDGET, dispatcher_required
from storage import users
from storage.models import User
from storage.users import add_or_update_user, get_user_by_email, technicians_with_skill

DISPATCHER = "anna.dispatcher@helpdesk.example.com"
DISPATCHER_PASSWORD = "correct horse battery staple"
TECHNICIAN = "luca.ferrari@helpdesk.example.com"
TECHNICIAN_PASSWORD = "printers and networks 42"
LOGIN = "/console/login"
PUBLIC_ENDPOINTS = {"auth.login", "auth.static"}  # reachable without signing in
_CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
_VALUE = re.compile(r'value="([^"]+)"')


# -- helpers other console tests import ------------------------------------------------------------


def csrf_token(client: Any, path: str = LOGIN) -> str:
    """The CSRF token of the client's session, as the page at `path` gives it to its forms."""
    page = client.get(path)
    assert page.status_code == 200, f"{path}: {page.status_code}"
    field = _CSRF_INPUT.search(page.get_data(as_text=True))
    assert field is not None, f"no csrf_token field in {path}"
    value = _VALUE.search(field.group(0))
    assert value is not None
    return value.group(1)


def sign_in(client: Any, email: str, password: str, *, next: str | None = None, address: str | None = None) -> Any:
    """Sign in as a browser does (the form, then its post with the token); the response, not followed."""
    token = csrf_token(client)
    return client.post(
        LOGIN,
        query_string={"next": next} if next else None,
        data={"csrf_token": token, "email": email, "password": password},
        environ_base={"REMOTE_ADDR": address} if address else {},
    )


def make_user(app: Any, email: str, password: str, role: str = "technician", **details: Any) -> int:
    """An account, as `flask add-user` makes it; its id."""
    with app.config["SESSIONMAKER"]() as session, session.begin():
        user, _ = add_or_update_user(
            session, email, name=details.pop("name", email.split("@")[0]), role=role, password=password, **details
        )
        return user.id


@pytest.fixture
def accounts(app: Any, login_counters: None) -> dict[str, int]:
    """A dispatcher and a technician (network, printers): their ids by role."""
    return {
        "dispatcher": make_user(app, DISPATCHER, DISPATCHER_PASSWORD, "dispatcher", name="Anna Conti"),
        "technician": make_user(
            app, TECHNICIAN, TECHNICIAN_PASSWORD, "technician", name="Luca Ferrari", skills="network,printers"
        ),
    }


@pytest.fixture
def login_counters(settings: Any) -> Iterator[Redis]:
    """The real Redis of the sign-in budget; this test's counters removed afterwards."""
    redis = Redis.from_url(settings.redis_url)
    yield redis
    for key in redis.scan_iter(f"ivr:{settings.queue_name}:login:*"):
        redis.delete(key)


# -- local helpers -------------------------------------------------------------------------------


class CountingHasher:
    """argon2's PasswordHasher, counting its verifications (the costly part of a sign-in)."""

    def __init__(self, hasher: Any):
        self.hasher, self.verified, self.lock = hasher, 0, threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self.lock:
            self.verified += 1
        return self.hasher.verify(stored, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hasher, name)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    users.warm_up()  # the dummy hash made before counting starts
    counting = CountingHasher(users._hasher)
    monkeypatch.setattr(users, "_hasher", counting)
    return counting


def example_url(app: Any, rule: Rule) -> str:
    """A URL that `rule` matches, with a plausible value for each of its arguments."""
    values: dict[str, Any] = {}
    for name in rule.arguments:
        converter = type(rule._converters[name]).__name__
        values[name] = {"IntegerConverter": 1000015, "FloatConverter": 1.0, "UUIDConverter": "0" * 32}.get(
            converter, "1000015"
        )
        if converter == "AnyConverter":
            values[name] = rule._converters[name].items[0]  # type: ignore[attr-defined]
    with app.test_request_context():
        return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def console_rules(app: Any) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/console")]


def user_row(app: Any, email: str) -> User:
    with app.config["SESSIONMAKER"]() as session:
        user = get_user_by_email(session, email)
        assert user is not None
        return user


def signed_in_as(client: Any) -> bool:
    """True when the client's session still opens the queue."""
    return client.get("/console/").status_code == 200


# -- nothing under /console without signing in -------------------------------------------------------


def test_every_console_rule_sends_a_stranger_to_sign_in(app, client, accounts):
    rules = console_rules(app)
    assert {rule.endpoint for rule in rules} >= {"auth.login", "auth.logout", "queue.index"}
    for rule in rules:
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = example_url(app, rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code == 302, f"{method} {url} ({rule.endpoint}): {response.status_code}"
            assert response.location.startswith(LOGIN + "?next="), f"{method} {url}: {response.location}"


def test_recordings_and_unknown_console_paths_give_nothing_to_a_stranger(app, client, accounts):
    recording_rules = [rule for rule in console_rules(app) if "record" in rule.rule or "audio" in rule.rule]
    for rule in recording_rules:
        response = client.get(example_url(app, rule), headers={"Range": "bytes=0-"})
        assert response.status_code == 302 and response.location.startswith(LOGIN)
    for path in ("/console/tickets/1000015/recording.wav", "/console/no-such-page", "/console/tickets/1000015/x/y"):
        response = client.get(path, headers={"Range": "bytes=0-"})
        assert response.status_code == 302 and response.location.startswith(LOGIN), path


def test_the_sign_in_page_and_the_stylesheet_are_public(client):
    assert client.get(LOGIN).status_code == 200
    assert client.get("/console/static/console.css").status_code == 200


# -- signing in ----------------------------------------------------------------------------------


def test_signing_in_opens_the_console_with_a_safe_session_cookie(client, accounts):
    response = sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    assert response.status_code == 302 and response.location == "/console/"
    cookie = next(header for header in response.headers.getlist("Set-Cookie") if header.startswith("session="))
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=lax"
    assert "secure" in flags  # PUBLIC_BASE_URL is https in the tests' settings
    assert signed_in_as(client)


def test_the_cookie_is_not_secure_on_a_plain_http_local_run(settings, login_counters):
    app = create_app(replace(settings, public_base_url=None))
    app.config["TESTING"] = True
    make_user(app, DISPATCHER, DISPATCHER_PASSWORD, "dispatcher")
    response = sign_in(app.test_client(), DISPATCHER, DISPATCHER_PASSWORD)
    cookie = next(header for header in response.headers.getlist("Set-Cookie") if header.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    app.config["ENGINE"].dispose()


def test_the_email_is_found_whatever_its_case(client, accounts):
    assert sign_in(client, "  Anna.Dispatcher@HelpDesk.Example.com ", DISPATCHER_PASSWORD).status_code == 302


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer_and_the_same_work(client, accounts, hasher):
    answers = []
    for email, password in ((DISPATCHER, "not the password"), ("nobody@helpdesk.example.com", "not the password")):
        before = hasher.verified
        response = sign_in(client, email, password)
        assert hasher.verified - before == 1  # one argon2 check each: the same time
        page = response.get_data(as_text=True)
        answers.append((response.status_code, re.findall(r'class="field-error"[^>]*>([^<]*)<', page)))
    assert answers[0] == answers[1] == (401, ["Email o password non corretti."])
    assert not signed_in_as(client)


def test_a_disabled_account_and_one_without_password_cannot_sign_in(app, client, accounts, hasher):
    with app.config["SESSIONMAKER"]() as session, session.begin():
        session.add(User(name="Old Technician", email="old@helpdesk.example.com", role="technician"))
        user = get_user_by_email(session, TECHNICIAN)
        assert user is not None
        user.active = False
    for email, password in (("old@helpdesk.example.com", ""), (TECHNICIAN, TECHNICIAN_PASSWORD)):
        before = hasher.verified
        response = sign_in(client, email, password or "whatever it is")
        assert response.status_code == 401 and hasher.verified - before == 1
    assert not signed_in_as(client)


def test_bad_form_input_gets_a_message_beside_the_field(client, accounts, hasher):
    token = csrf_token(client)
    response = client.post(LOGIN, data={"csrf_token": token, "email": "not-an-address", "password": ""})
    assert response.status_code == 400 and hasher.verified == 0
    page = response.get_data(as_text=True)
    assert re.search(r'id="email-error">Non è un indirizzo email valido\.<', page)
    assert re.search(r'id="password-error">[^<]+<', page)
    assert 'value="not-an-address"' in page


def test_next_leads_only_to_a_local_path(client, accounts):
    assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD, next="/console/?mine=1").location == "/console/?mine=1"
    for elsewhere in ("https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com", "javascript:alert(1)"):
        other = client.application.test_client()
        assert sign_in(other, DISPATCHER, DISPATCHER_PASSWORD, next=elsewhere).location == "/console/", elsewhere


def test_the_stranger_is_sent_back_where_they_were_going(client, accounts):
    first = client.get("/console/?urgency=high")
    assert first.status_code == 302
    next_path = first.location.split("next=", 1)[1]
    token = csrf_token(client, first.location)
    response = client.post(
        first.location, data={"csrf_token": token, "email": DISPATCHER, "password": DISPATCHER_PASSWORD}
    )
    assert response.location == "/console/?urgency=high", next_path


def test_signing_in_starts_a_new_session(client, accounts):
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"].startswith(f"{accounts['dispatcher']}:")


def test_a_session_ends_an_office_day_after_signing_in(client, accounts):
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    with client.session_transaction() as session:
        session["signed_in_at"] = int(time.time()) - 9 * 3600
    assert not signed_in_as(client)


def test_a_signed_in_user_going_to_the_sign_in_page_is_sent_on(client, accounts):
    sign_in(client, TECHNICIAN, TECHNICIAN_PASSWORD)
    assert client.get(LOGIN).location == "/console/"


def test_a_failed_sign_in_is_logged_masked_and_the_password_never(client, accounts, caplog):
    caplog.set_level(logging.INFO)
    sign_in(client, DISPATCHER, "a-wrong-password-123", address="203.0.113.7")
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "sign-in failed for a***@helpdesk.example.com from 203.0.113.7" in text
    assert DISPATCHER not in text
    assert "a-wrong-password-123" not in text and DISPATCHER_PASSWORD not in text


def test_a_hash_made_at_an_older_cost_is_replaced_at_sign_in(app, client, accounts, monkeypatch):
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(DISPATCHER_PASSWORD)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        user = get_user_by_email(session, DISPATCHER)
        assert user is not None
        user.password_hash = cheap
    assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD).status_code == 302
    stored = user_row(app, DISPATCHER).password_hash
    assert stored != cheap and not users._hasher.check_needs_rehash(stored or "")
    assert users.check_password(user_row(app, DISPATCHER), DISPATCHER_PASSWORD)


# -- CSRF ----------------------------------------------------------------------------------------


def test_a_sign_in_without_or_with_a_wrong_token_is_refused_and_counts_nothing(client, accounts, login_counters):
    csrf_token(client)  # the session has a token; the posts below do not carry it
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(LOGIN, data={**data, "email": DISPATCHER, "password": DISPATCHER_PASSWORD})
        assert response.status_code == 400
    assert not signed_in_as(client)
    assert list(login_counters.scan_iter(f"ivr:{client.application.config['SETTINGS'].queue_name}:login:*")) == []


def test_a_sign_out_without_or_with_a_wrong_token_is_refused_and_changes_nothing(app, client, accounts):
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    version = user_row(app, DISPATCHER).session_version
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf_token(client.application.test_client())}):
        assert client.post("/console/logout", data=data).status_code == 400
    assert user_row(app, DISPATCHER).session_version == version
    assert signed_in_as(client)


def test_every_console_post_needs_the_token(app, client, accounts):
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    posts = [rule for rule in console_rules(app) if "POST" in (rule.methods or set())]
    assert posts
    for rule in posts:
        response = client.post(example_url(app, rule), data={"csrf_token": "forged"})
        assert response.status_code == 400, f"POST {rule.rule}: {response.status_code}"
    assert signed_in_as(client)


# -- the budget of wrong passwords ----------------------------------------------------------------------


def test_an_account_gets_five_wrong_passwords_in_fifteen_minutes(client, accounts, hasher, login_counters):
    for attempt in range(ACCOUNT_BUDGET):
        response = sign_in(client, DISPATCHER, f"wrong {attempt}", address=f"198.51.100.{attempt}")
        assert response.status_code == 401
    before = hasher.verified
    refused = sign_in(client, DISPATCHER, DISPATCHER_PASSWORD, address="198.51.100.99")
    assert refused.status_code == 429 and hasher.verified == before  # told without checking the password
    assert "Troppi tentativi non riusciti: riprovi tra 15 minuti." in refused.get_data(as_text=True)
    assert not signed_in_as(client)
    # Another account, from the same addresses, is untouched.
    assert sign_in(client, TECHNICIAN, TECHNICIAN_PASSWORD, address="198.51.100.1").status_code == 302


def test_an_address_gets_twenty_wrong_passwords_whatever_the_accounts(client, accounts, hasher):
    for attempt in range(ADDRESS_BUDGET):
        response = sign_in(client, f"guess{attempt}@helpdesk.example.com", "wrong", address="192.0.2.10")
        assert response.status_code == 401
    before = hasher.verified
    assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD, address="192.0.2.10").status_code == 429
    assert hasher.verified == before
    assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD, address="192.0.2.11").status_code == 302


def test_an_ipv6_address_is_counted_by_its_64(client, accounts):
    for attempt in range(ADDRESS_BUDGET):
        sign_in(client, f"guess{attempt}@helpdesk.example.com", "wrong", address=f"2001:db8:1:2::{attempt + 1:x}")
    assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD, address="2001:db8:1:2::ffff").status_code == 429
    assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD, address="2001:db8:1:3::1").status_code == 302


def test_right_passwords_spend_no_budget(client, accounts):
    for _ in range(ACCOUNT_BUDGET + 1):
        assert sign_in(client.application.test_client(), DISPATCHER, DISPATCHER_PASSWORD).status_code == 302


def test_parallel_wrong_passwords_get_no_more_checks_than_the_budget(app, accounts, hasher):
    clients = [app.test_client() for _ in range(ACCOUNT_BUDGET * 3)]
    tokens = [csrf_token(client) for client in clients]
    start, statuses = threading.Barrier(len(clients)), []

    def guess(client: Any, token: str, n: int) -> None:
        start.wait()
        data = {"csrf_token": token, "email": DISPATCHER, "password": f"guess {n}"}
        statuses.append(client.post(LOGIN, data=data, environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}).status_code)

    threads = [
        threading.Thread(target=guess, args=(c, token, n))
        for n, (c, token) in enumerate(zip(clients, tokens, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [401] * ACCOUNT_BUDGET + [429] * (len(clients) - ACCOUNT_BUDGET)
    assert hasher.verified == ACCOUNT_BUDGET


def test_unreachable_counters_let_no_password_be_checked(app, client, accounts, hasher):
    throttle = app.config["LOGIN_THROTTLE"]
    throttle.redis = Redis(host="127.0.0.1", port=1, socket_timeout=0.5, socket_connect_timeout=0.5)
    response = sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    assert response.status_code == 503 and hasher.verified == 0
    assert not signed_in_as(client)


# -- signing out -------------------------------------------------------------------------------------


def test_signing_out_ends_every_session_of_the_user(app, accounts):
    here, there, colleague = app.test_client(), app.test_client(), app.test_client()
    for client in (here, there):
        assert sign_in(client, DISPATCHER, DISPATCHER_PASSWORD).status_code == 302
    assert sign_in(colleague, TECHNICIAN, TECHNICIAN_PASSWORD).status_code == 302
    response = here.post("/console/logout", data={"csrf_token": csrf_token(here, "/console/")})
    assert response.status_code == 302 and response.location == LOGIN
    assert not signed_in_as(here)
    assert not signed_in_as(there)  # the other machine too
    assert signed_in_as(colleague)  # not other people
    assert here.get("/console/logout").status_code in (302, 405)  # never by GET


def test_a_new_password_ends_the_sessions_made_with_the_old(app, client, accounts):
    sign_in(client, TECHNICIAN, TECHNICIAN_PASSWORD)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        add_or_update_user(session, TECHNICIAN, password=TECHNICIAN_PASSWORD)  # the same: nothing ends
    assert signed_in_as(client)
    with app.config["SESSIONMAKER"]() as session, session.begin():
        add_or_update_user(session, TECHNICIAN, password="a brand new password")
    assert not signed_in_as(client)


# -- who may do what ---------------------------------------------------------------------------------


@pytest.fixture
def dispatcher_page(app: Any) -> str:
    """A dispatcher-only page, added for this test before the app serves anything."""

    @dispatcher_required
    def only_dispatchers() -> str:
        return "for dispatchers"

    app.add_url_rule("/console/test-dispatchers-only", "test_dispatchers_only", only_dispatchers)
    return "/console/test-dispatchers-only"


def test_a_technician_gets_403_on_a_dispatcher_only_page(app, accounts, dispatcher_page):
    technician, dispatcher, stranger = app.test_client(), app.test_client(), app.test_client()
    sign_in(technician, TECHNICIAN, TECHNICIAN_PASSWORD)
    sign_in(dispatcher, DISPATCHER, DISPATCHER_PASSWORD)
    refused = technician.get(dispatcher_page)
    assert refused.status_code == 403
    assert "Non consentito" in refused.get_data(as_text=True)  # the console's own page, in its words
    assert dispatcher.get(dispatcher_page).get_data(as_text=True) == "for dispatchers"
    assert stranger.get(dispatcher_page).status_code == 302


def person(id: int, role: str, active: bool = True) -> Any:
    return SimpleNamespace(id=id, role=role, active=active)


def ticket(status: str = "triage", technician_id: int | None = None) -> Any:
    return SimpleNamespace(status=status, technician_id=technician_id)


def test_a_dispatcher_may_do_everything_on_every_ticket():
    dispatcher = person(1, "dispatcher")
    for status in ("received", "triage", "resolved", "closed"):
        assert roles.may_view(dispatcher, ticket(status, technician_id=7))
        assert all(roles.may_act(dispatcher, ticket(status), action) for action in roles.ACTIONS)


def test_a_technician_sees_the_queue_and_their_own_and_acts_only_on_their_own():
    luca, other = person(7, "technician"), person(8, "technician")
    own, someone_elses, unassigned = ticket(technician_id=7), ticket(technician_id=8), ticket()
    assert roles.may_view_queue(luca)
    assert roles.may_view(luca, own) and roles.may_view(luca, unassigned) and roles.may_view(luca, someone_elses)
    assert roles.may_view(luca, ticket("closed", technician_id=7))
    assert not roles.may_view(luca, ticket("closed", technician_id=8))  # out of the queue, and not theirs
    for action in roles.ACTIONS - roles.DISPATCHER_ONLY:
        assert roles.may_act(luca, own, action), action
        assert not roles.may_act(luca, someone_elses, action) and not roles.may_act(luca, unassigned, action)
    for action in roles.DISPATCHER_ONLY:
        assert not roles.may_act(luca, own, action), action
    assert roles.may_move(luca, own, "resolved") and not roles.may_move(luca, own, "closed")
    assert not roles.may_act(other, own, "add_note")


def test_the_dispatcher_only_actions_are_declared():
    assert roles.DISPATCHER_ONLY == {"assign", "match_caller", "escalate", "change_urgency", "close"}
    assert roles.DISPATCHER_ONLY <= roles.ACTIONS
    with pytest.raises(ValueError, match="unknown action"):
        roles.may_act(person(1, "dispatcher"), ticket(), "delete_everything")


def test_a_disabled_account_may_do_nothing():
    for role in ("dispatcher", "technician"):
        gone = person(7, role, active=False)
        assert not roles.may_view_queue(gone) and not roles.may_view(gone, ticket(technician_id=7))
        assert not roles.may_act(gone, ticket(technician_id=7), "add_note")


def test_the_signed_in_user_is_judged_like_the_row(app, accounts):
    from ivr.console.auth import SignedIn

    with app.config["SESSIONMAKER"]() as session:
        luca = session.get(User, accounts["technician"])
        assert luca is not None
        signed_in = SignedIn(luca)
        assert signed_in.id == luca.id and signed_in.get_id() == f"{luca.id}:{luca.session_version}"
        assert roles.may_act(signed_in, ticket(technician_id=luca.id), "add_note")
        assert not signed_in.is_dispatcher


# -- accounts: storage and the add-user command -----------------------------------------------------------


def test_technicians_with_a_skill_are_the_active_ones_by_name(app, accounts):
    make_user(app, "zeno@helpdesk.example.com", "password for zeno", name="Zeno Bassi", skills="Network, voip")
    make_user(app, "bice@helpdesk.example.com", "password for bice", name="Bice Alba", skills="network")
    make_user(app, "boss@helpdesk.example.com", "password for boss", "dispatcher", name="Aldo Boss", skills="network")
    gone = make_user(app, "gone@helpdesk.example.com", "password for gone", name="Abe Gone", skills="network")
    with app.config["SESSIONMAKER"]() as session, session.begin():
        user = session.get(User, gone)
        assert user is not None
        user.active = False
    with app.config["SESSIONMAKER"]() as session:
        assert [u.name for u in technicians_with_skill(session, "network")] == [
            "Bice Alba",
            "Luca Ferrari",
            "Zeno Bassi",
        ]
        assert [u.name for u in technicians_with_skill(session, "printers")] == ["Luca Ferrari"]
        assert technicians_with_skill(session, "netw") == []


def add_user(app: Any, *args: str, input: str | None = "a good long password\n") -> Any:
    return app.test_cli_runner().invoke(args=["add-user", *args], input=input)


def user_count(app: Any) -> int:
    with app.config["SESSIONMAKER"]() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_add_user_creates_an_account_with_a_password_from_stdin(app, client, login_counters):
    result = add_user(
        app, "Luca.Ferrari@helpdesk.example.com", "--role", "technician", "--skills", "network, Printers",
        "--name", "Luca Ferrari", "--language", "en",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created luca.ferrari@helpdesk.example.com: technician, Luca Ferrari, skills network,printers, en" in (
        result.output
    )
    user = user_row(app, TECHNICIAN)
    assert (user.role, user.skills, user.language, user.active) == ("technician", "network,printers", "en", True)
    assert (user.password_hash or "").startswith("$argon2id$")
    assert "a good long password" not in result.output
    assert sign_in(client, TECHNICIAN, "a good long password").status_code == 302


def test_add_user_asks_twice_without_echo_at_a_terminal(app, monkeypatch):
    from ivr import cli

    monkeypatch.setattr(cli, "_at_terminal", lambda: True)
    runner = app.test_cli_runner()
    args = ["add-user", DISPATCHER, "--role", "dispatcher", "--name", "Anna Conti"]
    mismatch = runner.invoke(args=args, input="first password 1\nsecond password 2\n")
    assert mismatch.exit_code != 0 and user_count(app) == 0
    assert "do not match" in mismatch.output
    result = runner.invoke(args=args, input="the same password\nthe same password\n")
    assert result.exit_code == 0, result.output
    assert "the same password" not in result.output  # not echoed
    assert users.check_password(user_row(app, DISPATCHER), "the same password")


def test_add_user_updates_only_what_is_given(app, accounts):
    before = user_row(app, TECHNICIAN)
    result = add_user(app, TECHNICIAN, "--skills", "network,voip", "--keep-password", input=None)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("updated ")
    after = user_row(app, TECHNICIAN)
    assert (after.name, after.role, after.skills) == ("Luca Ferrari", "technician", "network,voip")
    assert (after.password_hash, after.session_version) == (before.password_hash, before.session_version)
    assert add_user(app, TECHNICIAN, "--role", "dispatcher").exit_code == 0  # with a new password
    after = user_row(app, TECHNICIAN)
    assert after.role == "dispatcher" and after.session_version == before.session_version + 1
    assert users.check_password(after, "a good long password")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["new@helpdesk.example.com", "--role", "boss", "--name", "N"], "role 'boss' is not one of dispatcher"),
        (["not-an-email", "--role", "technician", "--name", "N"], "email 'not-an-email' is not a valid address"),
        (["new@helpdesk.example.com", "--role", "technician", "--name", "  "], "the name is empty"),
        (["new@helpdesk.example.com", "--role", "technician", "--name", "N\x1b[31m"], "the name contains U+001B"),
        (["new@helpdesk.example.com", "--role", "technician"], "a new account needs a name"),
        (["new@helpdesk.example.com", "--name", "N"], "a new account needs a role"),
        (
            ["new@helpdesk.example.com", "--role", "technician", "--name", "N", "--skills", "net work"],
            "skill 'net work'",
        ),
        (["new@helpdesk.example.com", "--role", "technician", "--name", "N", "--skills", "a,,b"], "skill ''"),
        (["new@helpdesk.example.com", "--role", "technician", "--name", "N", "--language", "de"], "language 'de'"),
        (["new@helpdesk.example.com", "--role", "technician", "--name", "N", "--keep-password"], "needs a password"),
    ],
)
def test_add_user_refuses_bad_input_and_changes_nothing(app, accounts, args, says):
    count, technician = user_count(app), user_row(app, TECHNICIAN)
    result = add_user(app, *args)
    assert result.exit_code == 1
    assert "not changed" in result.output and says in result.output, result.output
    assert user_count(app) == count
    assert user_row(app, TECHNICIAN).password_hash == technician.password_hash


def test_add_user_refuses_a_short_password_and_a_bad_update(app, accounts):
    technician = user_row(app, TECHNICIAN)
    short = add_user(app, "new@helpdesk.example.com", "--role", "technician", "--name", "N", input="short\n")
    assert short.exit_code == 1 and "shorter than 12" in short.output
    bad = add_user(app, TECHNICIAN, "--role", "technician", "--skills", "network;printers")
    assert bad.exit_code == 1 and "skill 'network;printers'" in bad.output
    after = user_row(app, TECHNICIAN)
    assert (after.skills, after.password_hash) == (technician.skills, technician.password_hash)
    assert user_count(app) == 2


def test_a_user_switches_the_console_to_english_and_it_stays_so(app, client, accounts):
    """Each user chooses the console's language; the choice is kept on the account."""
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    assert "Coda" in client.get("/console/").get_data(as_text=True)
    token = csrf_token(client, "/console/")
    switched = client.post("/console/language", data={"language": "en", "next": "/console/", "csrf_token": token})
    assert switched.status_code == 302 and switched.headers["Location"].endswith("/console/")
    assert "Queue" in client.get("/console/").get_data(as_text=True)
    client.post("/console/language", data={"language": "de", "csrf_token": token})  # not a language we have
    with app.config["SESSIONMAKER"]() as session:
        assert session.get(User, accounts["dispatcher"]).language == "en"


def test_switching_the_language_without_the_csrf_token_changes_nothing(app, client, accounts):
    sign_in(client, DISPATCHER, DISPATCHER_PASSWORD)
    assert client.post("/console/language", data={"language": "en"}).status_code == 400
    with app.config["SESSIONMAKER"]() as session:
        assert session.get(User, accounts["dispatcher"]).language == "it"
