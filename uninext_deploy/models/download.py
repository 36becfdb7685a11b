"""Checkpoints over http(s), fetched once into the user cache (XDG_CACHE_HOME, else ~/.cache:
``uninext-deploy/weights/``) by pooch. pooch streams a download into a temporary file beside the cache and moves
it into place only when it is whole, so a partial download never becomes the cached file; here each download is
also proven (its sha256 when one is given, then that it is a checkpoint) before that move. A failure is one line
naming its cause: offline, refused, an HTTP status, a dropped connection, a time-out, a wrong sha256.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import logging
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from ..cache import cache_dir
from ..errors import UserError

TIMEOUT_S = 30  # seconds the server may stay silent (connecting, or between two reads) before we give up
CHUNK = 1 << 20  # bytes per read: fewer progress updates than pooch's 1 KiB default
_NO_ROUTE = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN)  # how being offline fails, besides lookups


@dataclass(frozen=True)
class Remote:
    """A checkpoint's URL (no fragment) and the sha256 it must have (None: unchecked)."""

    url: str
    sha256: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def parse_url(text: str) -> Remote | None:
    """``text`` as a Remote when it is an http(s) URL, ``URL#sha256=HEX`` pinning the file (pip's hash fragment);
    None when it is no URL. A URL that cannot be taken is one UserError."""
    if "://" not in text:
        return None
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UserError(f"--weights {text}: only http(s) URLs are downloaded; give https://HOST/PATH or a local file")
    sha256 = None
    if parts.fragment:
        name, _, value = parts.fragment.partition("=")
        if name.lower() != "sha256" or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise UserError(f"--weights {text}: the only fragment taken is #sha256= with the file's 64 hex digits "
                            "(sha256sum FILE)")
        sha256 = value.lower()
    if parts.scheme.lower() == "http" and sha256 is None and not _loopback(parts.hostname):
        raise UserError(f"--weights {text}: plain http can be altered on the way; use https, or pin the file "
                        "with #sha256=HEX")
    return Remote(urlunsplit(parts._replace(fragment="")), sha256)


def fetch(remote: Remote, check: Callable[[Path], None]) -> Path:
    """The cached file of ``remote``, downloaded first when it is not cached (or its copy lacks the sha256 asked
    for). ``check(path)`` proves a download is a checkpoint (raising UserError) before it enters the cache."""
    import pooch
    import requests

    pooch.get_logger().setLevel(logging.WARNING)  # its INFO lines would repeat ours
    downloader = pooch.HTTPDownloader(progressbar=(bar := _Progress(remote)), chunk_size=CHUNK, timeout=TIMEOUT_S)
    try:
        path = Path(pooch.retrieve(remote.url, known_hash=remote.sha256, path=cache_dir("weights"),
                                   downloader=_Proven(remote, check, downloader)))
    except requests.RequestException as exc:
        raise UserError(f"cannot download {remote.url}: {_cause(exc, remote)}") from None
    finally:
        bar.stop()  # pooch closes the bar of whole downloads only
    if bar.started is not None and bar.live is None:  # off a terminal: one line for the log
        seconds = time.monotonic() - bar.started
        print(f"downloaded {remote.url}: {path.stat().st_size / 1e6:.1f} MB in {seconds:.1f} s, cached in "
              f"{path.parent}", file=sys.stderr)
    return path


@dataclass(frozen=True)
class _Proven:
    """pooch's downloader, then the proof that the file is the one asked for, before pooch moves it into place."""

    remote: Remote
    check: Callable[[Path], None]
    download: Callable

    def __call__(self, url: str, output_file: str, caller) -> None:
        import pooch

        self.download(url, output_file, caller)
        got = pooch.file_hash(output_file) if self.remote.sha256 else None
        if got != self.remote.sha256:
            raise UserError(f"{self.remote.url} has sha256 {got}, not {self.remote.sha256}; nothing was cached: "
                            "check the #sha256= value, or the URL (its file may have changed)")
        self.check(Path(output_file))


class _Progress:
    """pooch's progress-bar protocol (``total``, ``update``, ``reset``, ``close``): a rich bar on a terminal
    (stderr), nothing elsewhere (fetch prints one line when the file is whole); nothing on a cache hit."""

    def __init__(self, remote: Remote):
        self.name = PurePosixPath(urlsplit(remote.url).path).name or remote.host
        self.total = 0  # set by pooch from Content-Length (0: unknown)
        self.started: float | None = None
        self.live = None
        self._done = 0

    def update(self, n: int) -> None:
        if self.started is None:
            self.started = time.monotonic()
            if sys.stderr.isatty():
                self.live = _rich_bar()
                self._task = self.live.add_task(self.name, total=self.total or None)
        self._done += n
        if self.live is not None:
            self.live.update(self._task, completed=min(self._done, self.total) if self.total else self._done)

    def reset(self) -> None:
        self._done = 0

    def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def _rich_bar():
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(TextColumn("downloading {task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
    bar.start()
    return bar


def _cause(exc: Exception, remote: Remote) -> str:
    """What went wrong, and what to do about it, for one failed request."""
    import requests
    import urllib3

    chain = list(_linked(exc))
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        answer = exc.response
        return (f"the server answered {answer.status_code} {answer.reason}; check the URL, or download the file "
                "another way and pass --weights path/to/file.pth")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) or any(
            isinstance(e, (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionResetError))
            for e in chain):
        return "the connection dropped before the whole file arrived; nothing was cached: run again to retry"
    if any(isinstance(e, socket.gaierror) or getattr(e, "errno", None) in _NO_ROUTE for e in chain):
        return (f"{remote.host} is out of reach: this machine looks offline (or the host name is wrong); connect it, "
                "or download the file elsewhere and pass --weights path/to/file.pth")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"{remote.host} refused the connection; check the URL's host and port"
    # after the refusals and lookups, which urllib3 also raises as connect time-outs
    if isinstance(exc, requests.Timeout) or any(isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError))
                                                for e in chain):
        return f"{remote.host} sent nothing for {TIMEOUT_S} s; check the network, or run again later"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the TLS connection to {remote.host} failed ({str(chain[-1])[:120]}); check the URL's host"
    deepest = chain[-1]
    return f"cannot reach {remote.host} ({type(deepest).__name__}: {str(deepest)[:120]}); check the network"


def _linked(exc: BaseException):
    """``exc`` and every exception it wraps (causes, contexts, urllib3's reasons, exceptions among the args)."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
