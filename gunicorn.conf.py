"""gunicorn's settings for the web process, read from the working directory by `gunicorn wsgi:app`.

The access log names the path without its query string: API queries carry callers' phone
numbers (`?caller=+39...`), and logs never hold a full phone number.
"""

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'
