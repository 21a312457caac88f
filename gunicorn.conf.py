"""gunicorn's settings for the web process, read from the working directory by `gunicorn wsgi:app`.

The access log names the path without its query string: API queries carry callers' phone
numbers (`?caller=+39...`), and logs never hold a full phone number.

Metrics across workers: prometheus_client's multiprocess mode keeps each worker's counts
in files under PROMETHEUS_MULTIPROC_DIR, and a scrape served by any worker adds them up.
The directory must be fresh at start (old files would add a previous run's counts) and set
before the workers fork and import prometheus_client (it reads the variable on import):
`on_starting` runs in the master first. Not with `--preload`, which would load the app
earlier. prometheus_client is imported here only inside the hooks, after the variable is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_made_here: list[str] = []  # the directory on_starting created, removed on exit


def on_starting(server: Any) -> None:
    """A fresh metrics directory for this run: the one given, emptied of its metric files, or a new temporary one."""
    given = os.environ.get(MULTIPROCESS_VARIABLE)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        made = tempfile.mkdtemp(prefix="ivr-metrics-")
        _made_here.append(made)
        os.environ[MULTIPROCESS_VARIABLE] = made  # inherited by the workers, which fork after this


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges go (its counters and histograms stay counted, as Prometheus expects)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    for made in _made_here:
        shutil.rmtree(made, ignore_errors=True)
