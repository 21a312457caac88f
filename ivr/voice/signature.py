"""Only Twilio may drive the call: every webhook carries a valid X-Twilio-Signature.

The signature is computed here with `hmac` directly, following Twilio's algorithm (the one
twilio's `RequestValidator` implements): the URL Twilio called, then every form field's
name and value sorted by name, HMAC'd with the auth token and base64-encoded. Twilio signs
some URLs with the port and some without, so both are accepted. A JSON body is not in the
form: its SHA-256 travels in the signed URL as `bodySHA256`. tests/test_signatures.py
checks this against `RequestValidator` on the same vectors.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Response, current_app, request
from werkzeug.datastructures import MultiDict

log = logging.getLogger(__name__)

SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"  # `key=...,algorithm=HMAC_SHA256` for shared-key signing
_ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}
_DEFAULT_PORTS = {"https": 443, "http": 80}


def signature_of(token: bytes, url: str, params: Mapping[str, str] | None, algorithm: str = "HMAC_SHA1") -> str:
    """What Twilio puts in X-Twilio-Signature for a request to `url` with these form fields."""
    parts = [url]
    if params:
        getlist = params.getlist if isinstance(params, MultiDict) else None
        for name in sorted(set(params)):
            values = getlist(name) if getlist else [params[name]]
            parts.extend(name + value for value in sorted(set(values)))
    digest = hmac.new(token, "".join(parts).encode("utf-8"), _ALGORITHMS[algorithm]).digest()
    return base64.b64encode(digest).decode("ascii")


def with_and_without_port(url: str) -> tuple[str, str]:
    """The URL as Twilio may have signed it: with the scheme's port spelled out, and without the port."""
    parts = urlsplit(url)
    if parts.port:
        return parts.geturl(), parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]).geturl()
    port = _DEFAULT_PORTS.get(parts.scheme, 80)
    return parts._replace(netloc=f"{parts.netloc}:{port}").geturl(), parts.geturl()


def is_signed(
    token: bytes, url: str, params: Mapping[str, str] | str, signature: str, algorithm: str = "HMAC_SHA1"
) -> bool:
    """Whether `signature` is Twilio's for this URL and these form fields (or, with `bodySHA256`, this JSON body)."""
    if algorithm.upper() not in _ALGORITHMS or not signature:
        return False
    body_ok = True
    if isinstance(params, str):  # a raw body: signed through the hash in the URL
        claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0]
        body_ok = hmac.compare_digest(hashlib.sha256(params.encode("utf-8")).hexdigest(), claimed)
        params = {}
    try:
        candidates = with_and_without_port(url)
    except ValueError:  # a port that is not a number
        return False
    given = signature.encode("utf-8", "replace")
    # The URL as received first: the other form is computed only when that one does not match
    # (which form Twilio signed is no secret).
    for candidate in sorted(candidates, key=lambda candidate: candidate != url):
        if hmac.compare_digest(signature_of(token, candidate, params, algorithm.upper()).encode("ascii"), given):
            return body_ok
    return False


def algorithm_named(settings_header: str | None) -> str:
    """The algorithm in X-Twilio-Webhooks-Signature-Settings; HMAC_SHA1 (the auth token's) without one."""
    for part in (settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return "HMAC_SHA1"


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
        token = current_app.config["SETTINGS"].twilio_auth_token.encode("utf-8")
        algorithm = algorithm_named(request.headers.get(SETTINGS_HEADER))
        params: Mapping[str, str] | str = request.form
        if request.mimetype == "application/json":
            params = request.get_data(as_text=True)
        if not is_signed(token, public_url(), params, signature, algorithm):
            log.warning(
                "rejected a webhook with a %s signature on %s", "wrong" if signature else "missing", request.path
            )
            return Response("Forbidden: invalid Twilio signature\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
