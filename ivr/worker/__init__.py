"""The worker process: `python -m ivr.worker` runs RQ (with its scheduler) and the outbox relay."""
