"""A ticket: the caller, the recording, the transcript, the thread, and the actions on it."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ticket", __name__, template_folder="templates", url_prefix="/console/tickets")
