"""The queue: open tickets, the most urgent first, then by the time left before the SLA's response deadline."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("queue", __name__, template_folder="templates", url_prefix="/console")


@bp.get("/")
@login_required
def index() -> Any:
    """The queue (the queue engineer completes this)."""
    return render_template("queue.html", rows=[])
