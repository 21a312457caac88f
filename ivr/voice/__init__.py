"""The web process's voice line: Twilio's webhooks, the signature check, the per-call lock, the fallback spool."""
