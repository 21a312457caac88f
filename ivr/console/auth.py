"""Signing in and out of the console; who the signed-in user is."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user

from ivr.console import login_manager
from ivr.db import db_session
from storage.models import User

bp = Blueprint("auth", __name__, template_folder="templates", static_folder="static", url_prefix="/console")


class SignedIn(UserMixin):
    """The signed-in user as Flask-Login holds it: the row's id and its session version."""

    def __init__(self, user: User):
        self.user = user
        self.id = f"{user.id}:{user.session_version}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)

    @property
    def is_dispatcher(self) -> bool:
        return self.user.role == "dispatcher"


def register(app: Flask) -> None:
    @login_manager.user_loader
    def load_user(session_id: str) -> SignedIn | None:
        user_id, _, version = session_id.partition(":")
        if not (user_id.isdigit() and version.isdigit()):
            return None
        user = db_session().get(User, int(user_id))
        if user is None or not user.active or user.session_version != int(version):
            return None  # signed out elsewhere, or the account was disabled
        return SignedIn(user)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with email and password (the auth engineer completes this)."""
    if current_user.is_authenticated:
        return redirect(url_for("queue.index"))
    return render_template("login.html", error=None, email=request.form.get("email", ""))


@bp.post("/logout")
@login_required
def logout() -> Any:
    session = db_session()
    user = session.get(User, current_user.user.id)
    if user is not None:
        user.session_version += 1  # every session of this user ends, on every machine
        session.commit()
    logout_user()
    current_app.logger.info("a user signed out")
    return redirect(url_for("auth.login"))


__all__ = ["SignedIn", "bp", "login_user", "register"]
