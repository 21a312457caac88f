"""The dispatchers' console: sign-in, the queue, a ticket and its actions, statistics; server-rendered (Flask, Jinja).

One blueprint per area (auth, queue, ticket, stats); every page and file needs a signed-in user,
every form a CSRF token. The help desk's rules are helpdesk/'s; views read the form, call
them and render.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from ivr.settings import Settings, SettingsError

csrf = CSRFProtect()
login_manager = LoginManager()


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, which build no signer for a request without a session cookie.

    Twilio's webhooks and the API's clients send none; building the signer on each of their
    requests cost more than some webhooks' own work; without a Cookie header, not even the
    cookies are parsed (werkzeug would look through every header for one).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.environ.get("HTTP_COOKIE") or not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def register_console(app: Flask) -> None:
    """Sessions, CSRF and the console's blueprints; the webhooks and the bearer-token API are exempt from CSRF."""
    from ivr.console import auth, i18n, queue, stats, ticket

    settings: Settings = app.config["SETTINGS"]
    if not settings.secret_key:
        raise SettingsError("missing required setting(s): SECRET_KEY")
    app.config.update(
        SECRET_KEY=str(settings.secret_key),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure where the console is served over https; a plain-http local run keeps the cookie usable.
        SESSION_COOKIE_SECURE=(settings.public_base_url or "").startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),  # an office day
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    app.session_interface = CookieSessions()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    auth.register(app)  # first: a request without a user goes to sign in before its CSRF token is checked
    csrf.init_app(app)
    for name in ("twilio", "api"):
        csrf.exempt(app.blueprints[name])
    i18n.register(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(queue.bp)
    app.register_blueprint(ticket.bp)
    app.register_blueprint(stats.bp)
