"""A device reached over SSH: the verbs as shell steps on one asyncssh connection. Nothing of ours runs there
but the bundle (and the probe, sent on stdin); nothing listens there. Bundles and venvs live under the device's
``${XDG_CACHE_HOME:-$HOME/.cache}/uninext-deploy/device``, each made under a temporary name and renamed into
place, so a half-copied bundle or half-installed venv is never used and a finished one is reused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import NoReturn

import asyncssh

from ..console import progress
from ..errors import UserError
from .base import (REQUIREMENTS, Destination, Placed, Ran, Runtime, probe_arguments, requirements_digest,
                   tree_digest)
from .local import PROBE
from .wheels import download as download_wheels
from .ssh_connection import connect

GRACE_SECONDS = 15  # the host's own timer fires this long after the device's `timeout` should have
KILL_SECONDS = 10  # how long ending a remote step may take before the host gives up on it
CHUNK = 1 << 20

# Each step runs in its own session and process group (setsid), under the device's `timeout`, which ends it
# even when the connection is gone (processes started over SSH outlive it); it names its group on stderr
# first, so the host can end the group on its own time-out or Ctrl-C. Stdin goes through fd 3 since sh gives
# a background job /dev/null.
WRAPPER = ('seconds=$1; step=$2; shift 2; exec 3<&0; '
           'setsid timeout -k 5 "$seconds" sh -c "$step" sh "$@" <&3 3<&- & pid=$!; '
           'echo "pgid $pid" >&2; wait "$pid"')
TIMED_OUT = 124  # timeout(1)'s exit status
FILE_TOO_LARGE = 128 + 25  # a process killed by SIGXFSZ (past RLIMIT_FSIZE)
ROOT = 'root="${XDG_CACHE_HOME:-$HOME/.cache}/uninext-deploy/device"; '
FOUND = ROOT + 'if [ -d "$root/$1" ]; then echo "$root/$1"; fi'
# A step that fails (tar cut short by a dropped connection or a full disk, pip without its index) exits before the
# rename: only a complete folder ever gets its final name, and the trap removes the rest.
UNPACK = ROOT + ('final="$root/$1"; mkdir -p "$(dirname "$final")"; '
                 'tmp=$(mktemp -d "$final.incoming.XXXXXX"); trap \'rm -rf "$tmp"\' EXIT; tar -xf - -C "$tmp" || exit; '
                 'mv -T "$tmp" "$final" 2>/dev/null || [ -d "$final" ]; echo "$final"')
NEEDS_PYTHON = ('command -v python3 >/dev/null || { echo "python3 is not installed on the device; install it '
                '(apt install python3 python3-venv)" >&2; exit 2; }; ')
# $1 the venv's key, $2 requirements.txt, then pip's own arguments (the host's wheels: --no-index --find-links DIR)
PIP_FAILED = 3
VENV = ROOT + NEEDS_PYTHON + (
    'key=$1; requirements=$2; shift 2; '
    'version=$(python3 -c \'import sys; print("%d.%d.%d" % sys.version_info[:3])\'); '
    'venv="$root/venvs/$key-py$version"; '
    'if [ -x "$venv/bin/python" ]; then echo "reused $venv/bin/python"; exit 0; fi; mkdir -p "$root/venvs"; '
    'tmp=$(mktemp -d "$venv.incoming.XXXXXX"); trap \'rm -rf "$tmp"\' EXIT; python3 -m venv "$tmp" >&2 || exit; '
    '"$tmp/bin/python" -m pip install --disable-pip-version-check --retries 2 -q -r "$requirements" "$@" >&2 '
    '|| exit 3; mv -T "$tmp" "$venv" 2>/dev/null || [ -x "$venv/bin/python" ]; echo "created $venv/bin/python"')
# The bundle's C++ runner built there by its own CMakeLists.txt, as its README says (against the venv's runtime:
# -DPYTHON), once per bundle and venv, into a folder beside the bundles (the bundle stays as it was put there).
CPP_TOOLS = "apt install cmake g++ libjpeg-dev libssl-dev libwebp-dev"
CPP_BUILD = ROOT + (
    'python=$1; bundle=$2; build="$root/builds/$3"; '
    'if [ -x "$build/runner" ]; then echo "$build/runner"; exit 0; fi; '
    'for tool in cmake c++; do command -v $tool >/dev/null || { echo "$tool is not installed on the device; install '
    f'the C++ runner\'s tools there ({CPP_TOOLS})" >&2; exit 2; }}; done; '
    'mkdir -p "$root/builds"; tmp=$(mktemp -d "$build.incoming.XXXXXX"); trap \'rm -rf "$tmp"\' EXIT; '
    '{ cmake -S "$bundle/cpp" -B "$tmp" -DCMAKE_BUILD_TYPE=Release -DPYTHON="$python" && '
    'cmake --build "$tmp" -j; } >&2 || exit; mv -T "$tmp" "$build" 2>/dev/null || [ -x "$build/runner" ]; '
    'echo "$build/runner"')
# A file of a bundle there, as raw bytes (an engine the device built); MISSING: it has none
MISSING = 3
FETCH = 'if [ -f "$1" ]; then exec cat -- "$1"; fi; exit 3'
PROBE_STEP = NEEDS_PYTHON + 'exec python3 - "$@"'
# A lease: one run at a time on a device (two timing at once would slow both), held with flock(1) on a file in
# the cache root for the run's length; the second waits up to $2 seconds, then exits LEASED. flock is
# util-linux's (and busybox's); a device without it runs unleased.
LEASED = 75
RUN = ROOT + ('python=$1; wait=$2; shift 2; mkdir -p "$root"; '
              'if command -v flock >/dev/null; then exec flock -E 75 -w "$wait" "$root/lease" "$python" "$@"; fi; '
              'exec "$python" "$@"')
END_GROUP = ('kill -s TERM -- -"$1" 2>/dev/null; i=0; while kill -s 0 -- -"$1" 2>/dev/null && [ $i -lt 20 ]; '
             'do sleep 0.25; i=$((i+1)); done; kill -s KILL -- -"$1" 2>/dev/null; true')


class SshDevice:
    """DEST over SSH; ``timeout``: the seconds any one remote step (upload, venv, run) may take; ``handshakes``:
    held while connecting (a fleet's bound on handshakes at once)."""

    def __init__(self, destination: Destination, *, timeout: float, accept_new_host_key: bool = False,
                 handshakes: threading.BoundedSemaphore | None = None):
        self.destination, self.accept_new_host_key, self.timeout = destination, accept_new_host_key, timeout
        self.handshakes = handshakes or contextlib.nullcontext()
        self.name = destination.text
        self.where = f" on {self.name}"

    def __enter__(self) -> SshDevice:
        self._loop = asyncio.Runner()
        try:
            with progress.step(f"connecting to {self.name}"), self.handshakes:
                self._connection = self._loop.run(connect(self.destination, self.accept_new_host_key))
        except BaseException:
            self._loop.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._connection.close()
            self._loop.run(self._connection.wait_closed())
        finally:
            self._loop.close()

    def describe(self) -> dict:
        status, out, err = self.step("the device probe", PROBE_STEP, *probe_arguments(), stdin=PROBE)
        try:
            return json.loads(out) if status == 0 else self.failed("the device probe", status, err)
        except ValueError:
            raise UserError(f"the device probe on {self.name} printed no JSON; is python3 there a Python 3?") from None

    def put(self, folder: Path) -> Placed:
        where, requirements = f"bundles/{tree_digest(folder)}", requirements_digest(folder)
        status, out, err = self.step("looking for the bundle", FOUND, where)
        if status == 0 and out.strip():
            return Placed(out.strip(), uploaded=False, requirements=requirements, local=folder)
        with tempfile.TemporaryDirectory(prefix="uninext-upload-") as staging:
            archive = Path(staging, "bundle.tar")
            with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(folder.rglob("*")):
                    tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
            megabytes = archive.stat().st_size / 1e6
            with progress.step(f"uploading {megabytes:.1f} MB to {self.name}"):
                status, out, err = self.step("the upload", UNPACK, where, stdin=archive)
        if status != 0:
            if status == FILE_TOO_LARGE or any(s in err for s in ("No space left", "File too large", "Disk quota")):
                raise UserError(f"the upload to {self.name} failed: its disk is full or a file-size limit stopped it "
                                f"({megabytes:.1f} MB to write); free space there (old bundles and venvs are under "
                                "~/.cache/uninext-deploy/device) and run again: nothing half-copied was kept")
            self.failed("the upload", status, err)
        return Placed(out.strip(), uploaded=True, requirements=requirements, local=folder)

    def prepare(self, bundle: Placed) -> Runtime:
        """The bundle's venv there, made once: pip installs requirements.txt from the device's own index, and
        where it cannot (no index, no network), from wheels this machine downloads for the device."""
        if bundle.requirements is None:
            raise UserError(f"the bundle has no {REQUIREMENTS} to set its runtime up from; rebuild it with "
                            "`uninext-deploy bundle`")
        requirements, source = f"{bundle.path}/{REQUIREMENTS}", "the device's index"
        with progress.step(f"the runtime on {self.name} (its venv, made once from {REQUIREMENTS})"):
            status, out, err = self.step("setting up the runtime", VENV, bundle.requirements[:16], requirements)
        if status == PIP_FAILED:
            pip_said = (err.strip().splitlines() or ["no message"])[-1][:160]
            try:
                with progress.step(f"pip on {self.name} could not install: its wheels downloaded here"):
                    wheels = self._host_wheels(bundle)
            except UserError as exc:
                raise UserError(f"pip on {self.name} could not install {REQUIREMENTS} ({pip_said}), and {exc}; give "
                                "the device its package index or a platform the runtimes publish wheels for") from None
            source = "wheels from this machine"
            status, out, err = self.step("setting up the runtime", VENV, bundle.requirements[:16], requirements,
                                         "--no-index", "--find-links", wheels)
        if status != 0:
            self.failed("setting up the runtime (python3 -m venv, pip install -r requirements.txt)", status, err)
        state, python = out.strip().splitlines()[-1].split(" ", 1)
        return Runtime(python, created=state == "created", wheels=source if state == "created" else None)

    def _host_wheels(self, bundle: Placed) -> str:
        """The wheels of the bundle's requirements for this device, downloaded here and put there: their path."""
        with tempfile.TemporaryDirectory(prefix="uninext-wheels-") as staging:
            download_wheels(bundle.local / REQUIREMENTS, self.describe(), Path(staging, "wheels"), self.timeout)
            return self.put(Path(staging, "wheels")).path

    def run(self, runtime: Runtime, bundle: Placed, args: list[str], cpp: bool = False) -> Ran:
        program = [self._build_cpp(runtime, bundle), "--bundle", bundle.path] if cpp else [runtime.python,
                                                                                          f"{bundle.path}/run.py"]
        name = "the C++ runner" if cpp else "run.py"
        with progress.step(f"running {name} {' '.join(args[:1])} on {self.name}"):
            wait = self.timeout / 2  # the other half is the run's own
            status, out, err = self.step(name, RUN, program[0], f"{wait:g}", *program[1:], *args)
        if status == LEASED:
            raise UserError(f"another run held {self.name} for {wait:g} s (its lease: one run at a time, so that "
                            "timings are not shared); run again when it ends, or raise --device-timeout to wait longer")
        return Ran(status, out, err)

    def _build_cpp(self, runtime: Runtime, bundle: Placed) -> str:
        """The bundle's C++ runner built there (once for this bundle and venv): its path there."""
        key = f"{Path(bundle.path).name[:16]}-{Path(runtime.python).parent.parent.name}"
        with progress.step(f"the C++ runner on {self.name} (built once with the bundle's CMake)"):
            status, out, err = self.step("building the C++ runner", CPP_BUILD, runtime.python, bundle.path, key)
        if status != 0:
            self.failed("building the C++ runner (cmake -S cpp -B build)", status, cmake_error(err))
        return out.strip().splitlines()[-1]

    def fetch(self, path: str, into: Path) -> bool:
        status, out, err = self.step(f"fetching {Path(path).name}", FETCH, path, raw=True)
        if status == MISSING:
            return False
        if status != 0:
            self.failed(f"fetching {path}", status, err)
        into.write_bytes(out)
        return True

    def cannot_run(self, backend) -> str | None:
        return None  # the device runs the bundle's own runtime; where it cannot, its run.py says why

    def failed(self, what: str, status: int, err: str) -> NoReturn:
        last = (err.strip().splitlines() or [f"exit code {status}"])[-1][:200].removeprefix("error: ")
        raise UserError(f"{what} failed on {self.name}: {last}")

    def step(self, what: str, script: str, *args: str, stdin: Path | None = None, raw: bool = False):
        """``sh -c SCRIPT sh ARGS`` on the device (the arguments quoted): exit status, stdout (bytes if ``raw``),
        stderr."""
        return self._loop.run(self._step(what, script, [str(a) for a in args], stdin, raw))

    async def _step(self, what: str, script: str, args: list[str], stdin: Path | None, raw: bool = False):
        command = " ".join(shlex.quote(part) for part in ("sh", "-c", WRAPPER, "sh", f"{self.timeout:g}", script,
                                                          *args))
        group = None
        try:
            process = await self._connection.create_process(command, encoding=None)
            async with asyncio.timeout(self.timeout + GRACE_SECONDS):
                group = (await process.stderr.readline()).decode().removeprefix("pgid ").strip() or None
                out, err, _ = await asyncio.gather(process.stdout.read(), process.stderr.read(),
                                                   send(process, stdin))
                await process.wait()
        except TimeoutError:
            await self._end(group)
            raise UserError(self._timed_out(what)) from None
        except asyncio.CancelledError:  # Ctrl-C: the remote group ends with us
            await self._end(group)
            raise
        except (asyncssh.Error, OSError) as exc:
            raise UserError(self._dropped(what, getattr(exc, "reason", None) or exc)) from None
        if process.exit_status is None and process.exit_signal is None:
            raise UserError(self._dropped(what, "no exit status came back"))
        if process.exit_status == TIMED_OUT:
            raise UserError(self._timed_out(what))
        return process.exit_status if process.exit_status is not None else 128, \
            out if raw else out.decode(errors="replace"), err.decode(errors="replace")

    async def _end(self, group: str | None) -> None:
        """End the remote process group ``group`` (best effort: the connection may be gone, and the device's
        own `timeout` ends it then)."""
        if group is None or not group.isdigit():
            return
        try:
            async with asyncio.timeout(KILL_SECONDS):
                await self._connection.run(" ".join(shlex.quote(p) for p in ("sh", "-c", END_GROUP, "sh", group)))
        except (TimeoutError, asyncssh.Error, OSError):
            pass

    def _timed_out(self, what: str) -> str:
        return (f"{what} on {self.name} ran past its time-out of {self.timeout:g} s and was ended there; raise "
                "--device-timeout if the device is that slow")

    def _dropped(self, what: str, reason) -> str:
        return (f"the connection to {self.name} dropped during {what} ({reason}); run again: a finished upload "
                "or runtime is reused, a half-made one is never used")


def cmake_error(err: str) -> str:
    """What CMake said went wrong: the message under its first "CMake Error" (its last line says only that
    configuring was incomplete), else the whole output as it came."""
    lines = err.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("CMake Error"):
            following = [rest.strip() for rest in lines[i + 1:i + 4] if rest.strip()]
            return following[0] if following else line
    return err


async def send(process, path: Path | None) -> None:
    """``path`` streamed to the remote step's stdin (nothing: an empty stdin), then end of file. A step that
    stops reading (tar killed by a full disk) ends the sending: its exit status says what happened, and a
    connection that is gone brings none (the caller says it dropped)."""
    try:
        if path is not None:
            with open(path, "rb") as source:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    process.stdin.write(chunk)
                    await process.stdin.drain()
        process.stdin.write_eof()
    except (asyncssh.Error, OSError):
        pass
