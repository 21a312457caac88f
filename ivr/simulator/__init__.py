"""The line without a phone: a simulated Twilio call in the terminal, and a TwiML conformance check.

- `twilio_requests`: what Twilio sends about a call at each step, signed; the tests and the benchmark use it too.
- `twiml_check`: what Twilio would reject in a TwiML document.
- `caller`: what the simulated caller does at each question (keys, a script, or the terminal).
- `media`: the caller's recorded message (a WAV file or espeak-ng), and the server that serves recordings like
  Twilio's media (the tests' too).
- `call`: the simulated call itself, signed webhooks and all.
- `commands`: `flask --app wsgi call`.
"""
