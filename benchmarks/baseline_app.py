"""The benchmark's baseline: the least a signed Twilio webhook can cost in Flask.

    gunicorn --workers 2 'benchmarks.baseline_app:create_app()'   (with TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL set)

It parses the form, checks the signature with twilio's `RequestValidator` for the URL
Twilio signed (`PUBLIC_BASE_URL` plus the path and query), and answers fixed TwiML of about
the size of a menu step's. No database, no call flow: `benchmarks.webhooks_wrk` compares our
webhooks with it.
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator

# About the size of a menu step's answer: a Gather with two Says, then a Redirect on silence.
FIXED_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Gather action="http://127.0.0.1/twilio/step/main_menu" method="POST" num_digits="1" timeout="6">'
    '<Say language="it-IT" voice="Polly.Bianca">Buongiorno Giulia, grazie per aver chiamato l\'assistenza.</Say>'
    '<Say language="it-IT" voice="Polly.Bianca">Per aprire una nuova richiesta di assistenza prema 1. '
    "Per conoscere lo stato di una richiesta prema 2. Per parlare con un tecnico prema 0. "
    "For English, press 9.</Say></Gather>"
    '<Redirect method="POST">http://127.0.0.1/twilio/step/main_menu?event=silence</Redirect></Response>'
)


def create_app() -> Flask:
    """The baseline app, its settings read from the environment once."""
    app = Flask(__name__)
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    base_url = os.environ["PUBLIC_BASE_URL"].rstrip("/")

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    def webhook(path: str) -> Response:
        """Any signed POST: check the signature, answer the fixed TwiML."""
        query = request.query_string.decode()
        url = f"{base_url}{request.path}" + (f"?{query}" if query else "")
        if not validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", "")):
            abort(403)
        return Response(FIXED_TWIML, mimetype="text/xml")

    return app
