"""The line without a phone: a simulated Twilio call in the terminal, a TwiML conformance check,
and the one command that connects a real Twilio number.

- `twiml_check`: what Twilio would reject in a TwiML document.
- `caller`: what the simulated caller does at each question (keys, a script, or the terminal).
- `media`: the caller's recorded message (a WAV file or espeak-ng), served like Twilio's media.
- `call`: the simulated call itself, signed webhooks and all.
- `number`: the Voice URL, fallback URL and status callback of a Twilio number, set through the REST API.
- `commands`: `flask --app wsgi call` and `flask --app wsgi configure-number`.
"""
