"""The voice menu of the support line: `support_line.py` reads as the whole call, in order."""
