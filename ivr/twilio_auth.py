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
    """The URL Twilio called: PUBLIC_BASE_URL plus the path and query as received, else the request's URL.

    Without PUBLIC_BASE_URL the request URL is used as rebuilt by ProxyFix from the
    X-Forwarded-* headers of TRUSTED_PROXIES proxies (none by default).
    """
    base = current_app.config["SETTINGS"].public_base_url
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


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
