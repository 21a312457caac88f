"""The help desk's rules, with no Flask and no Twilio: used by the phone, the console and the API alike."""
