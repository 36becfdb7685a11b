"""An SSH connection to a device, opened by asyncssh, which reads ~/.ssh/config (Host aliases, User, Port,
IdentityFile, ProxyJump), known_hosts, the agent and the default keys itself, from $HOME; every way opening it
fails is one line naming the fix."""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
from pathlib import Path

import asyncssh

from ..errors import UserError
from .base import Destination

CONNECT_SECONDS = 20  # TCP, key exchange and login together; a board on a LAN answers within a second
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class HostKeyPolicy(asyncssh.SSHClient):
    """Decides on a host key that known_hosts does not trust (asyncssh has checked it against the files first):
    a host listed there with another key is refused, never re-keyed; an unlisted one is refused unless
    ``accept_new``, then its key is added to the user's known_hosts, as OpenSSH's StrictHostKeyChecking=accept-new."""

    def __init__(self, files: list[str], accept_new: bool):
        self.files, self.accept_new = files, accept_new
        self.refused: str | None = None  # "changed" or "unknown"
        self.fingerprint: str | None = None
        self.entry: str | None = None  # the host as known_hosts names it: "board", "[10.0.0.2]:2222"

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.fingerprint, self.entry = key.get_fingerprint(), entry(host, port)
        if listed(self.files, host, addr, port):
            self.refused = "changed"
            return False
        if not self.accept_new:
            self.refused = "unknown"
            return False
        remember(self.files[0], host, port, key)
        return True


def listed(files: list[str], host: str, addr: str, port: int) -> bool:
    """Whether any of ``files`` trusts some key (or CA) for this host."""
    existing = [name for name in files if os.path.isfile(name)]
    if not existing:
        return False
    keys, authorities, *_ = asyncssh.match_known_hosts(existing, host, addr, None if port == 22 else port)
    return bool(keys or authorities)


def entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def remember(file: str, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """One known_hosts line for ``host``, appended in one write as ssh does (a concurrent ssh appends too, so
    the file is never rewritten)."""
    path = Path(file)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    algorithm, data = key.export_public_key().decode().split()[:2]
    with open(path, "a") as known:
        known.write(f"{entry(host, port)} {algorithm} {data}\n")


def known_hosts_files(options: asyncssh.SSHClientConnectionOptions) -> list[str]:
    """The files asyncssh checks host keys against: UserKnownHostsFile (and GlobalKnownHostsFile) of the
    config, else ~/.ssh/known_hosts."""
    return [os.path.expanduser(str(name)) for name in options.known_hosts or [DEFAULT_KNOWN_HOSTS]]


async def connect(destination: Destination, accept_new_host_key: bool) -> asyncssh.SSHClientConnection:
    name = destination.text
    try:
        # config=() reads ~/.ssh/config here (the constructor's own default reads none)
        options = asyncssh.SSHClientConnectionOptions(config=(), host=destination.host, port=destination.port or (),
                                                      username=destination.user or (),
                                                      client_keys=[destination.identity_file]
                                                      if destination.identity_file else (),
                                                      connect_timeout=CONNECT_SECONDS)
    except (ValueError, OSError, asyncssh.Error) as exc:
        raise UserError(f"cannot use the SSH settings for {name}: {getattr(exc, 'strerror', None) or exc}"
                        f"{': ' + exc.filename if getattr(exc, 'filename', None) else ''}; check ~/.ssh/config and "
                        "the key file it (or the inventory) names") from None
    policy = HostKeyPolicy(known_hosts_files(options) if options.known_hosts is not None else [],
                           accept_new_host_key)
    try:
        return await asyncssh.connect(destination.host, options=options, client_factory=lambda: policy)
    except asyncssh.HostKeyNotVerifiable as exc:
        if policy.refused == "changed":
            raise UserError(f"{name} offered host key {policy.fingerprint}, not the one known_hosts has for it: "
                            "the device was reinstalled or someone is in between; if you trust the new key, "
                            f"remove the old one (ssh-keygen -R {shlex.quote(policy.entry)}) and pass "
                            "--accept-new-host-key") from None
        if policy.refused == "unknown":
            raise UserError(f"{name} is not in known_hosts (host key {policy.fingerprint}); check that fingerprint "
                            "on the device (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pass "
                            "--accept-new-host-key to trust it on this first contact") from None
        raise UserError(f"{name}'s host key was refused: {exc.reason}") from None
    except asyncssh.PermissionDenied:
        raise UserError(f"{name} refused authentication as {options.username}: add your public key to its "
                        f"~/.ssh/authorized_keys (ssh-copy-id {name}), or name your key with IdentityFile in "
                        "~/.ssh/config") from None
    except ConnectionRefusedError:
        raise UserError(f"cannot reach {name}: connection refused at {options.host} port {options.port}; check "
                        "the address and port, and that its SSH server runs") from None
    except socket.gaierror:
        raise UserError(f"cannot resolve {options.host}; check the name, or add a Host {destination.host} entry "
                        "to ~/.ssh/config") from None
    except asyncio.TimeoutError:
        raise UserError(f"{name} did not answer within {CONNECT_SECONDS} s; check that it is on and "
                        "reachable") from None
    except asyncssh.Error as exc:
        raise UserError(f"{name} closed the connection while logging in: {exc.reason}") from None
    except OSError as exc:
        raise UserError(f"cannot reach {name}: {exc.strerror or exc}") from None
