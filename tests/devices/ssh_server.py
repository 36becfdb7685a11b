"""A real SSH server for device tests (test_ssh.py's fixtures start and stop it): asyncssh's, in this process
(its own thread and event loop) on 127.0.0.1 at an ephemeral port, with a host key and an authorized client
key made here. Its sessions run each command with bash on this machine, in a new session as sshd does, with
HOME set to the device's own temporary home; the client's HOME is another temporary folder holding
.ssh/config, known_hosts and the key, which asyncssh reads from $HOME (devices.md). Only 127.0.0.1 is ever
contacted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncssh

STARTUP_SECONDS = 10


class DeviceServer:
    """The server, started and stopped by the tests; ``drop()`` aborts every open connection."""

    def __init__(self, host_key: asyncssh.SSHKey, authorized: Path, env: dict[str, str]):
        self.host_key, self.authorized, self.env = host_key, authorized, env
        self.connections: list[asyncssh.SSHServerConnection] = []
        self.file_limit_kb: int | None = None  # a disk that fills: every command under `ulimit -f` of this size
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> int:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        self.server = future.result(STARTUP_SECONDS)
        return self.server.sockets[0].getsockname()[1]

    async def _listen(self):
        server = self

        class Tracked(asyncssh.SSHServer):
            def connection_made(self, connection):
                server.connections.append(connection)

        return await asyncssh.create_server(Tracked, "127.0.0.1", 0, server_host_keys=[self.host_key],
                                            authorized_client_keys=str(self.authorized),
                                            process_factory=self._session, encoding=None)

    async def _session(self, process: asyncssh.SSHServerProcess) -> None:
        local = await asyncio.create_subprocess_exec(
            "bash", "-c", (f"ulimit -f {self.file_limit_kb}; " if self.file_limit_kb else "") + (process.command or "exit 0"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.env, cwd=self.env["HOME"], start_new_session=True)
        # pumped by hand: with process.redirect() the exit status could overtake the last output
        feeding = asyncio.ensure_future(pump(process.stdin, local.stdin))
        await asyncio.gather(pump(local.stdout, process.stdout), pump(local.stderr, process.stderr))
        status = await local.wait()
        feeding.cancel()
        process.exit(status)

    def drop(self) -> None:
        for connection in self.connections:
            self.loop.call_soon_threadsafe(connection.abort)

    def stop(self) -> None:
        async def close():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(STARTUP_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STARTUP_SECONDS)


async def pump(reader, writer) -> None:
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
    except (OSError, asyncssh.Error):  # the other side went away: what sshd does too, it stops copying
        pass


@dataclass
class Board:
    server: DeviceServer
    port: int
    client_home: Path
    device_home: Path
    host_key: asyncssh.SSHKey

    @property
    def known_hosts(self) -> Path:
        return self.client_home / ".ssh" / "known_hosts"

    def trust(self, key: asyncssh.SSHKey | None = None) -> None:
        """known_hosts holding ``key`` (default: the server's own) for the server."""
        line = (key or self.host_key).export_public_key().decode().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(line)}\n")


def start_board(root: Path, device_env: dict[str, str | None] | None = None) -> Board:
    """The server with a trusted host key, reached as DEST 'board' (a Host alias of the client's ~/.ssh/config,
    user tester) or tester@127.0.0.1:PORT; the client and device homes under ``root``; ``device_env``: variables
    set (None: removed) in the device's commands."""
    client_home, device_home = root / "client", root / "device"
    (client_home / ".ssh").mkdir(parents=True)
    device_home.mkdir()
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(client_home / ".ssh" / "id_ed25519"))
    (client_home / ".ssh" / "id_ed25519").chmod(0o600)
    client_key.write_public_key(str(root / "authorized_keys"))
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    pip_cache = subprocess.run(["pip", "cache", "dir"], capture_output=True, text=True).stdout.strip()
    env = {key: value for key, value in os.environ.items() if key not in ("XDG_CACHE_HOME", "SSH_AUTH_SOCK")}
    # the device is this machine: pip's cache is shared, so that its venv installs without the network's time
    env.update(HOME=str(device_home), PIP_CACHE_DIR=pip_cache or str(Path.home() / ".cache" / "pip"))
    for key, value in (device_env or {}).items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    server = DeviceServer(host_key, root / "authorized_keys", env)
    port = server.start()
    (client_home / ".ssh" / "config").write_text(f"Host board\n  HostName 127.0.0.1\n  Port {port}\n  User tester\n")
    board = Board(server, port, client_home, device_home, host_key)
    board.trust()
    return board


def emulated_aarch64(folder: Path, cpu: str = "cortex-a76") -> dict[str, str]:
    """The device variables that make a board's python3 the emulated aarch64 CPU's (the ARM environment's, set
    up here once): a ``python3`` in ``folder`` first on PATH that runs under qemu, named as itself (qemu's -0),
    so the venvs it makes run emulated too. The shell and its tools stay this machine's; Python, and all that
    runs in it, sees an aarch64 board."""
    from uninext_deploy.arm.environment import ArmEnvironment
    from uninext_deploy.device.runtimes import GRAPH_RUNTIME

    env = ArmEnvironment()
    env.ensure(GRAPH_RUNTIME, cpu)
    root = env.cpu_root(cpu)
    folder.mkdir(parents=True)
    (folder / "python3").write_text(f'#!/bin/sh\nexec "{env.qemu}" -cpu {cpu} -0 "$0" -L "{root}" '
                                    f'"{root}/usr/bin/python3.11" "$@"\n')
    (folder / "python3").chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}
