"""SSRF-safe download of Twilio call recordings.

Only URLs whose host is explicitly allowlisted are ever contacted, credentials
are only sent to the original host, redirects are followed by hand and checked
hop by hop, and the body is streamed to disk with a hard size cap. Every read has
a timeout, and the whole download (retries, redirects, body) has a deadline that a
watchdog enforces by shutting down the download's sockets: a server that trickles
bytes cannot hold a worker beyond it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection

__all__ = [
    "RECORDING_SID",
    "RecordingRefused",
    "RecordingTooSlow",
    "RecordingUnavailable",
    "download_recording",
]

log = logging.getLogger(__name__)

RECORDING_SID = re.compile(r"^RE[0-9a-f]{32}$")

_MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK_SIZE = 64 * 1024
# Conservative DNS name syntax; anything else (percent-escapes, "_", unicode...) is refused.
_HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.ip_address("::1")

_Origin = tuple[str, str, int]  # (scheme, host, effective port)
_Allowed = frozenset[tuple[str, int | None]]


class RecordingRefused(Exception):
    """Permanent: the URL or SID is not acceptable; nothing was fetched."""


class RecordingUnavailable(Exception):
    """The recording could not be fetched (still 404 after retries, too large, wrong type, network)."""


class RecordingTooSlow(RecordingUnavailable):
    """The download's time limit (`max_seconds`) ran out, however the server was answering."""


class _Transient(Exception):
    """Internal: a failure worth retrying (404 not ready yet, 5xx, network)."""


class _NoAuth(AuthBase):
    """Strip any Authorization header (session defaults, .netrc) for foreign hosts."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.pop("Authorization", None)
        return r


def download_recording(
    recording_url: str,
    recording_sid: str,
    dest_dir: Path,
    *,
    account_sid: str,
    auth_token: str,
    allowed_hosts: Collection[str],
    max_bytes: int = 40_000_000,
    timeout: float = 10.0,
    max_seconds: float = 120.0,
    not_ready_delays: Sequence[float] = (1, 2, 3, 5, 8),
    session: requests.Session | None = None,
) -> Path:
    """Fetch ``recording_url + ".wav"`` into ``dest_dir/<sid>.wav`` and return that path.

    Raises RecordingRefused (nothing fetched) for unacceptable input or a redirect
    to a non-allowlisted host, RecordingUnavailable for everything else. `timeout`
    bounds each connect and read; `max_seconds` bounds the whole download: every
    attempt, redirect and body, and the waits between "not ready" retries. A given
    `session` is used with its http(s) adapters swapped for watched ones meanwhile.
    """
    deadline = time.monotonic() + max_seconds
    allowed = _parse_allowed_hosts(allowed_hosts)
    if not isinstance(recording_sid, str) or not RECORDING_SID.fullmatch(recording_sid):
        raise _refuse(_host_for_log(recording_url), "malformed recording sid")
    fetch_url, origin = _initial_fetch_url(recording_url, recording_sid, allowed)
    host = _origin_for_log(origin)

    dest_dir = Path(dest_dir)
    dest = dest_dir / f"{recording_sid}.wav"
    try:
        if dest.is_file() and dest.stat().st_size > 0:
            log.info("recording already downloaded host=%s sid=%s", host, recording_sid)
            return dest
    except OSError:
        pass
    dest_dir.mkdir(parents=True, exist_ok=True)

    auth = HTTPBasicAuth(account_sid, auth_token)
    own_session = session is None
    sess = requests.Session() if session is None else session
    delays = list(not_ready_delays)
    try:
        with _watched(sess, deadline, max_seconds) as limit:
            attempt = 0
            while True:
                try:
                    _attempt(sess, fetch_url, origin, auth, allowed, dest, recording_sid, max_bytes, timeout, limit)
                    log.info("recording downloaded host=%s sid=%s bytes=%d", host, recording_sid, dest.stat().st_size)
                    return dest
                except _Transient as exc:
                    if attempt >= len(delays):
                        log.warning(
                            "recording unavailable host=%s sid=%s reason=%s attempts=%d",
                            host,
                            recording_sid,
                            exc,
                            attempt + 1,
                        )
                        raise RecordingUnavailable(
                            f"recording {recording_sid} unavailable after {attempt + 1} attempts: {exc}"
                        ) from None
                    delay = delays[attempt]
                    attempt += 1
                    if time.monotonic() + delay >= deadline:  # waiting would only end past the deadline
                        raise limit.exceeded(f"still {exc} after {attempt} attempts") from None
                    log.info(
                        "recording not ready host=%s sid=%s reason=%s retry=%d in=%ss",
                        host,
                        recording_sid,
                        exc,
                        attempt,
                        delay,
                    )
                    time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
    except RecordingTooSlow as exc:
        log.warning("recording unavailable host=%s sid=%s reason=%s", host, recording_sid, exc)
        raise
    finally:
        if own_session:
            sess.close()


class _Deadline:
    """The whole download's time limit, and a watchdog that enforces it on blocked reads.

    At the deadline the watchdog shuts down every socket the download opened: a read
    blocked on a server that trickles bytes (each recv within the read timeout, so the
    timeout never trips) then returns at once.
    """

    def __init__(self, deadline: float, max_seconds: float):
        self.deadline = deadline
        self.max_seconds = max_seconds
        self.fired = False
        self._lock = threading.Lock()
        # Descriptor -> (device, inode) of the socket: a descriptor closed and reused since is left alone.
        self._sockets: dict[int, tuple[int, int]] = {}
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        """Seconds left; raises the deadline's error once none are."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.fired:
            raise self.exceeded()
        return left

    def exceeded(self, detail: str = "") -> RecordingTooSlow:
        limit = f"{self.max_seconds:g}"
        return RecordingTooSlow(f"download took longer than {limit} s" + (f" ({detail})" if detail else ""))

    def watch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        stat = os.fstat(fd)
        with self._lock:
            self._sockets[fd] = (stat.st_dev, stat.st_ino)
            if self.fired:
                _shut_down(fd, self._sockets[fd])

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for fd, identity in self._sockets.items():
                _shut_down(fd, identity)


def _shut_down(fd: int, identity: tuple[int, int]) -> None:
    """Shut down the socket behind `fd` if it still is the one identified; never closes it.

    Works on a duplicate of the descriptor, checked after duplicating: the socket is
    shared, so its shutdown reaches the download's blocked read, and a descriptor that
    meanwhile names something else is left alone.
    """
    try:
        duplicate = os.dup(fd)
    except OSError:
        return
    owner: socket.socket | None = None
    try:
        stat = os.fstat(duplicate)
        if (stat.st_dev, stat.st_ino) == identity:
            owner = socket.socket(fileno=duplicate)
            owner.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        if owner is not None:
            owner.close()
        else:
            os.close(duplicate)


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("recording_download_deadline", default=None)


class _WatchedConnection(HTTPConnection):
    """A connection whose socket the download's watchdog can shut down, from before any TLS handshake."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline = _DEADLINE.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS: dict[str, Any] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter, opening only watched connections (directly or through an http proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # SOCKS managers keep their own pools (and go unwatched)
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


@contextmanager
def _watched(sess: requests.Session, deadline: float, max_seconds: float) -> Iterator[_Deadline]:
    """Run the download on watched connections under `deadline`; the session's adapters are restored after."""
    limit = _Deadline(deadline, max_seconds)
    adapter = _WatchedAdapter()
    previous = {prefix: sess.adapters.get(prefix) for prefix in ("https://", "http://")}
    for prefix in previous:
        sess.mount(prefix, adapter)
    token = _DEADLINE.set(limit)
    limit.start()
    try:
        yield limit
    finally:
        limit.cancel()
        adapter.close()
        _DEADLINE.reset(token)
        for prefix, old in previous.items():
            if old is None:
                sess.adapters.pop(prefix, None)
            else:
                sess.mount(prefix, old)


def _attempt(
    sess: requests.Session,
    url: str,
    origin: _Origin,
    auth: HTTPBasicAuth,
    allowed: _Allowed,
    dest: Path,
    sid: str,
    max_bytes: int,
    timeout: float,
    limit: _Deadline,
) -> None:
    """One pass over the redirect chain starting at ``url``; writes ``dest`` on success."""
    current, current_origin = url, origin
    for hop in range(_MAX_REDIRECTS + 1):
        host = _origin_for_log(current_origin)
        wait = min(timeout, limit.remaining())
        try:
            resp = sess.get(
                current,
                auth=auth if current_origin == origin else _NoAuth(),
                allow_redirects=False,
                stream=True,
                timeout=(wait, wait),
                headers={"Accept-Encoding": "identity"},
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            if limit.fired:
                raise limit.exceeded() from None
            raise _Transient(type(exc).__name__) from None
        except requests.RequestException as exc:
            if limit.fired:
                raise limit.exceeded() from None
            raise RecordingUnavailable(f"request to {host} failed: {type(exc).__name__}") from None
        with resp:
            status = resp.status_code
            log.info("recording fetch host=%s sid=%s status=%d", host, sid, status)
            if status in _REDIRECT_STATUSES:
                location = resp.headers.get("Location")
                if not location:
                    raise RecordingUnavailable(f"HTTP {status} without Location from {host}")
                if hop == _MAX_REDIRECTS:
                    raise RecordingUnavailable(f"more than {_MAX_REDIRECTS} redirects")
                parts, current_origin = _check_target(urljoin(current, location), allowed)
                current = urlunsplit(parts._replace(fragment=""))
                continue
            if status == 404 or status == 429 or 500 <= status <= 599:
                raise _Transient(f"HTTP {status}")
            if status != 200:
                raise RecordingUnavailable(f"HTTP {status} from {host}")
            _check_headers(resp, max_bytes)
            _save_body(resp, dest, max_bytes, limit)
            return
    raise AssertionError("unreachable")  # pragma: no cover


def _check_headers(resp: requests.Response, max_bytes: int) -> None:
    """Reject non-audio responses and declared sizes above ``max_bytes``."""
    ctype = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if not ctype.startswith("audio/") or ctype == "audio/":
        raise RecordingUnavailable(f"unexpected content type {ctype or 'none'!r}")
    length = resp.headers.get("Content-Length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            declared = -1
        if declared > max_bytes:
            raise RecordingUnavailable(f"recording too large ({declared} > {max_bytes} bytes)")


def _save_body(resp: requests.Response, dest: Path, max_bytes: int, limit: _Deadline) -> None:
    """Stream the body into a temp file next to ``dest`` and atomically rename it."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        total = 0
        with os.fdopen(fd, "wb") as fh:
            try:
                for chunk in resp.iter_content(chunk_size=_CHUNK_SIZE):
                    total += len(chunk)
                    if total > max_bytes:
                        raise RecordingUnavailable(f"recording too large (> {max_bytes} bytes)")
                    limit.remaining()
                    fh.write(chunk)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if limit.fired:
                    raise limit.exceeded() from None
                raise _Transient(f"body interrupted: {type(exc).__name__}") from None
            except requests.RequestException as exc:
                if limit.fired:
                    raise limit.exceeded() from None
                raise RecordingUnavailable(f"body unreadable: {type(exc).__name__}") from None
            if limit.fired:  # without a Content-Length, the watchdog's shutdown looks like the end of the body
                raise limit.exceeded()
            fh.flush()
            os.fsync(fh.fileno())
        if total == 0:
            raise RecordingUnavailable("empty recording body")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _initial_fetch_url(url: str, sid: str, allowed: _Allowed) -> tuple[str, _Origin]:
    """Validate Twilio's RecordingUrl and return the ``.wav`` URL to fetch plus its origin."""
    host = _host_for_log(url)
    if isinstance(url, str) and ("?" in url or "#" in url):
        raise _refuse(host, "query or fragment in recording url")
    parts, origin = _check_target(url, allowed)
    path = parts.path
    if path.lower().endswith((".wav", ".mp3")):
        path = path[:-4]
    if not path.endswith(f"/Recordings/{sid}"):
        raise _refuse(host, "url path does not end with /Recordings/<sid>")
    return urlunsplit((parts.scheme, parts.netloc, path + ".wav", "", "")), origin


def _check_target(url: str, allowed: _Allowed) -> tuple[SplitResult, _Origin]:
    """Apply the scheme/host/port allowlist to ``url`` (initial URL or redirect target)."""
    host_for_log = _host_for_log(url)
    if not isinstance(url, str) or not url.isascii() or any(c <= " " or c in "\\\x7f" for c in url):
        raise _refuse(host_for_log, "unparsable url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse(host_for_log, "unparsable url") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _refuse(host_for_log, f"scheme {scheme or 'none'!r} not allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refuse(host_for_log, "userinfo in url")
    host = _normalize_host(parts.hostname or "")
    if not host or not _valid_host(host):
        raise _refuse(host_for_log, "missing or invalid host")
    default_port = _DEFAULT_PORTS[scheme]
    effective_port = default_port if port is None else port
    if (host, effective_port) not in allowed and not ((host, None) in allowed and effective_port == default_port):
        raise _refuse(host_for_log, "host not in allowlist")
    if scheme != "https" and not _is_loopback_literal(host):
        raise _refuse(host_for_log, "plain http only allowed for loopback ip literals")
    return parts, (scheme, host, effective_port)


def _parse_allowed_hosts(allowed_hosts: Collection[str]) -> _Allowed:
    """Parse ``host`` / ``host:port`` / ``[v6]:port`` entries into (host, port|None) pairs."""
    if isinstance(allowed_hosts, str):
        raise TypeError("allowed_hosts must be a collection of host strings, not a single string")
    parsed: set[tuple[str, int | None]] = set()
    for raw in allowed_hosts:
        entry = raw.strip().lower()
        port: int | None = None
        if entry.startswith("["):
            host, sep, rest = entry[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"invalid allowed_hosts entry {raw!r}")
            port_text = rest[1:] if rest else None
        elif entry.count(":") == 1:
            host, port_text = entry.split(":")
        else:  # plain name, IPv4, or bare IPv6 literal such as "::1"
            host, port_text = entry, None
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"invalid port in allowed_hosts entry {raw!r}")
            port = int(port_text)
        host = _normalize_host(host)
        if not host or not _valid_host(host):
            raise ValueError(f"invalid host in allowed_hosts entry {raw!r}")
        parsed.add((host, port))
    return frozenset(parsed)


def _normalize_host(host: str) -> str:
    """Lowercase names; canonicalise IP literals (so ``0:0::1`` equals ``::1``)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _valid_host(host: str) -> bool:
    """True for a plain IP literal (no IPv6 zone id) or a conservative DNS name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.scope_id)


def _is_loopback_literal(host: str) -> bool:
    """True only for IP literals in 127.0.0.0/8 or ``::1`` (never for names like localhost)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LOOPBACK_V4
    return ip == _LOOPBACK_V6


def _host_for_log(url: object) -> str:
    """Best-effort host of ``url`` for log lines; never includes userinfo, path or query."""
    if not isinstance(url, str):
        return "?"
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return host if parts.port is None else f"{host}:{parts.port}"
    except ValueError:
        return "?"


def _origin_for_log(origin: _Origin) -> str:
    """``host:port`` of an origin tuple."""
    _, host, port = origin
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _refuse(host: str, reason: str) -> RecordingRefused:
    """Log a refusal (host and reason only) and return the exception to raise."""
    log.warning("recording url refused host=%r reason=%s", host, reason)
    return RecordingRefused(f"{reason} (host {host!r})")
