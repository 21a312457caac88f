"""Signing in and out of the console; who the signed-in user is, and what every console page requires.

Every rule under /console needs a signed-in user (but the sign-in page and the stylesheet),
whoever wrote the view: one check before each request, not a decorator each view must
remember. Wrong passwords have a budget per account and per address, kept in Redis and
reserved before the password is checked, so parallel guesses get no more checks than the
budget; a spent budget is told without checking anything. An unknown address and a wrong
password get the same answer after the same one argon2 check.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from wtforms import EmailField, PasswordField
from wtforms.i18n import get_translations
from wtforms.validators import DataRequired, Length, ValidationError

from helpdesk import roles
from ivr.attempts import count_attempt, give_back
from ivr.console import login_manager
from ivr.console.i18n import LANGUAGES, language, t
from ivr.db import db_session
from storage.models import User
from storage.users import MAX_PASSWORD_LENGTH, check_password, get_user_by_email, normal_email, warm_up

bp = Blueprint("auth", __name__, template_folder="templates", static_folder="static", url_prefix="/console")

CONSOLE_PREFIX = "/console"
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.static"})  # all else under /console needs a signed-in user
ACCOUNT_BUDGET = 5  # wrong passwords per account ...
ADDRESS_BUDGET = 20  # ... and per address (an IPv6 /64) ...
BUDGET_WINDOW = 15 * 60  # ... within this many seconds from the first

View = TypeVar("View", bound=Callable[..., Any])


class SignedIn(UserMixin):
    """The signed-in user as Flask-Login holds it: the row, known in the session by its id and session version."""

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.session_version}"

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def active(self) -> bool:
        return self.user.active

    @property
    def is_active(self) -> bool:
        return self.user.active

    @property
    def is_dispatcher(self) -> bool:
        return roles.is_dispatcher(self.user)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


# -- the budget of wrong passwords ----------------------------------------------------------------


class ThrottleUnavailable(Exception):
    """The counters cannot be read: check no password."""


@dataclass(frozen=True)
class Attempt:
    """One sign-in, counted before its password is checked; `wait` seconds until the spent budget renews."""

    keys: tuple[str, ...]
    over_budget: bool
    wait: int

    @property
    def wait_minutes(self) -> int:
        return max(1, math.ceil(self.wait / 60))


class LoginThrottle:
    """Wrong passwords counted in Redis per account and per address, shared by every web process."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        account_budget: int = ACCOUNT_BUDGET,
        address_budget: int = ADDRESS_BUDGET,
        window: int = BUDGET_WINDOW,
    ):
        self.redis, self.prefix, self.window = redis, prefix, window
        self.account_budget, self.address_budget = account_budget, address_budget

    def account_key(self, email: str) -> str:
        # Hashed: the keys name no one to whoever reads Redis.
        return f"{self.prefix}:account:{hashlib.sha256(email.encode()).hexdigest()[:32]}"

    def address_key(self, address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
            # One IPv6 host usually holds a whole /64: count the /64.
            subject = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
        except ValueError:
            subject = address
        return f"{self.prefix}:address:{subject}"

    def reserve(self, email: str, address: str) -> Attempt:
        """Count one attempt against the account and the address, in one transaction, before any check."""
        keys = (self.account_key(email), self.address_key(address))
        try:
            (account_count, account_ttl), (address_count, address_ttl) = count_attempt(
                self.redis, list(keys), self.window
            )
        except RedisError as error:
            raise ThrottleUnavailable(type(error).__name__) from None
        spent = [
            ttl
            for count, budget, ttl in (
                (account_count, self.account_budget, account_ttl),
                (address_count, self.address_budget, address_ttl),
            )
            if count > budget
        ]
        return Attempt(keys, bool(spent), max((ttl if ttl > 0 else self.window for ttl in spent), default=0))

    def refund(self, attempt: Attempt) -> None:
        """Give back the attempt of a right password: only wrong ones spend the budget."""
        try:
            give_back(self.redis, list(attempt.keys))
        except RedisError as error:
            raise ThrottleUnavailable(type(error).__name__) from None


# -- the form -------------------------------------------------------------------------------------


@cache
def _wtforms_words(tongue: str) -> Any:
    return get_translations([tongue])


class LoginForm(FlaskForm):
    """Email and password; WTForms' own messages in the reader's language, ours from the console's words."""

    class Meta:
        def get_translations(self, form: Any) -> Any:
            return _wtforms_words(language())

    email = EmailField(
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[DataRequired(), Length(max=320)],
    )
    password = PasswordField(validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)])

    def validate_email(self, field: EmailField) -> None:
        if normal_email(field.data or "") is None:
            raise ValidationError(t("auth_email_invalid"))


# -- the views ------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with email and password, within the budget of wrong passwords; then go where `next` says."""
    target = local_path(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("queue.index"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form, next=target), 400 if form.errors else 200

    email = normal_email(form.email.data or "") or ""
    address = request.remote_addr or "unknown"
    throttle: LoginThrottle = current_app.config["LOGIN_THROTTLE"]
    try:
        attempt = throttle.reserve(email, address)
    except ThrottleUnavailable as error:
        current_app.logger.error(
            "sign-in refused for %s from %s: the counters are unreachable (%s)", masked(email), address, error
        )
        form.form_errors.append(t("auth_unavailable"))
        return render_template("login.html", form=form, next=target), 503
    if attempt.over_budget:
        current_app.logger.warning("sign-in refused for %s from %s: too many wrong passwords", masked(email), address)
        minutes = attempt.wait_minutes
        form.form_errors.append(t("auth_too_many_one") if minutes == 1 else t("auth_too_many", minutes=minutes))
        return render_template("login.html", form=form, next=target), 429

    db = db_session()
    user = get_user_by_email(db, email)
    if not check_password(user, form.password.data or "") or user is None:
        # One argon2 check was made either way (against a dummy for an unknown address): the same time, the same words.
        current_app.logger.warning("sign-in failed for %s from %s", masked(email), address)
        form.password.errors = [*form.password.errors, t("auth_wrong_credentials")]
        return render_template("login.html", form=form, next=target), 401
    db.commit()  # a hash made at an older cost was replaced
    try:
        throttle.refund(attempt)
    except ThrottleUnavailable:
        pass  # the attempt stays counted: the budget is only the smaller for a while
    # A new session: nothing of the one before signing in (a planted one, say) carries over.
    session.clear()
    login_user(SignedIn(user), fresh=True)
    session.permanent = True
    session["signed_in_at"] = int(time.time())
    current_app.logger.info("signed in: %s (%s)", masked(email), user.role)
    return redirect(target or url_for("queue.index"))


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Sign out, here and on every other machine: the session version moves on."""
    db = db_session()
    user = db.get(User, current_user.id)
    if user is not None:
        user.session_version += 1
        db.commit()
    logout_user()
    session.clear()
    flash(t("auth_signed_out"), "info")
    current_app.logger.info("signed out: %s", masked(user.email if user is not None else ""))
    return redirect(url_for("auth.login"))


@bp.post("/language")
@login_required
def choose_language() -> Any:
    """The console's language for this user, kept on the account: Italian or English."""
    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        db = db_session()
        user = db.get(User, current_user.id)
        if user is not None:
            user.language = chosen
            db.commit()
    return redirect(local_path(request.form.get("next")) or url_for("queue.index"))


def dispatcher_required(view: View) -> View:
    """For a dispatcher's view: sign-in required, and a 403 page for anyone else."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_dispatcher:
            abort(403)
        return view(*args, **kwargs)

    return cast(View, wrapped)


# -- helpers ----------------------------------------------------------------------------------------


def local_path(target: str | None) -> str | None:
    """`target` when it is a path on this site (`/console/?mine=1`), else None: `next` never leads elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    return target if not (parts.scheme or parts.netloc) else None


def masked(email: str) -> str:
    """An address fit for the log: `l***@helpdesk.example.com`."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


def is_console(path: str) -> bool:
    """True for a path of the console (inside the app, after any prefix it is mounted under)."""
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def require_sign_in() -> Any:
    """Before every request under /console but the public ones: no user signed in, the sign-in page."""
    # By path, not by rule: a console URL that matches no rule (or not this method) tells a stranger nothing either.
    if not is_console(request.path) or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


def forbidden(error: HTTPException) -> Any:
    """A console page refused to this user: say so in the console's words; elsewhere the plain 403."""
    if is_console(request.path):
        return render_template("forbidden.html"), 403
    return error


def register(app: Flask) -> None:
    """The user loader, the sign-in check of every console request, the 403 page and the budget's counters.

    Call before CSRFProtect's init_app: a request without a user is sent to sign in before
    its CSRF token is looked at.
    """
    settings = app.config["SETTINGS"]
    # Short timeouts, as for the PIN counters: a sign-in must answer quickly even when Redis does not.
    redis = Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    app.config["LOGIN_THROTTLE"] = LoginThrottle(redis, f"ivr:{settings.queue_name}:login")
    login_manager.login_message = "auth_login_needed"
    login_manager.localize_callback = t
    login_manager.login_message_category = "info"
    app.before_request(require_sign_in)
    app.register_error_handler(403, forbidden)
    warm_up()

    @login_manager.user_loader
    def load_user(session_id: str) -> SignedIn | None:
        user_id, _, version = session_id.partition(":")
        if not (user_id.isdigit() and version.isdigit()):
            return None
        signed_in_at = session.get("signed_in_at")
        lifetime = app.permanent_session_lifetime.total_seconds()
        if not isinstance(signed_in_at, int) or time.time() - signed_in_at > lifetime:
            return None  # an office day at most since signing in, however busy the session
        user = db_session().get(User, int(user_id))
        if user is None or not user.active or user.session_version != int(version):
            return None  # signed out elsewhere, or the account was disabled
        return SignedIn(user)


__all__ = ["SignedIn", "bp", "dispatcher_required", "login_user", "register"]
