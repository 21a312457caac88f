"""Only Twilio may drive the call: every webhook carries a valid X-Twilio-Signature."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)


def public_url() -> str:
    """The URL Twilio called, as it signed it.

    PUBLIC_BASE_URL is the public URL of the app's root, any path prefix included
    (`https://help.example.com/ivr`), so the public URL is that base plus the path inside
    the app and the query as received. `request.path` leaves out the script root, which
    a trusted proxy's X-Forwarded-Prefix sets to that same prefix: it must not count twice.
    Without PUBLIC_BASE_URL the request URL is used as rebuilt by ProxyFix from the
    X-Forwarded-* headers of TRUSTED_PROXIES proxies (none by default).
    """
    base = current_app.config["SETTINGS"].public_base_url
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 403, having changed nothing, unless the request is signed with our auth token."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        signature = request.headers.get("X-Twilio-Signature", "")
        validator = RequestValidator(current_app.config["SETTINGS"].twilio_auth_token)
        if not signature or not validator.validate(public_url(), request.form, signature):
            log.warning(
                "rejected a webhook with a %s signature on %s", "wrong" if signature else "missing", request.path
            )
            return Response("Forbidden: invalid Twilio signature\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
