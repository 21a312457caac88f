"""Persistence for the support line: models, sessions and the operations on them.

Plain SQLAlchemy 2; nothing here knows about Flask, Twilio or RQ.
"""
