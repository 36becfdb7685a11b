"""Devices named by an Ansible-style YAML inventory, the file teams already keep for their boards: groups with
``hosts`` and ``children`` (``all`` at the top, or any group names), each host's ``ansible_host``,
``ansible_user``, ``ansible_port`` and ``ansible_ssh_private_key_file``, and group ``vars`` that its hosts and
child groups inherit (a host's own win). ``FILE:GROUP`` picks a group and its children."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import UserError
from .base import Destination, parse_destination


def destinations(spec: str) -> list[Destination]:
    """The devices ``spec`` names: ``INVENTORY[:GROUP]`` (a YAML file), else DESTs separated by commas."""
    path, _, group = spec.partition(":")
    if Path(path).suffix not in (".yml", ".yaml"):
        return _unique([parse_destination(text) for text in spec.split(",") if text.strip()], spec)
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise UserError(f"cannot read the inventory {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"the inventory {path} is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UserError(f"the inventory {path} has no groups: write `all: {{hosts: {{board: {{ansible_host: ...}}}}}}`")
    groups = {name: body for name, body in _groups(tree, path)}
    if group and group not in groups:
        raise UserError(f"the inventory {path} has no group {group!r}; its groups: {', '.join(sorted(groups))}")
    found: dict[str, tuple[Destination, set[str]]] = {}
    for name, body in tree.items():
        _collect(name, body, {}, set(), found, path)
    picked = [destination for destination, member_of in found.values() if not group or group in member_of]
    if not picked:
        raise UserError(f"the inventory {spec} names no hosts")
    return picked


def _groups(tree: dict, path: str):
    """Every group of the inventory, nested ones too: (name, body)."""
    for name, body in tree.items():
        if body is not None and not isinstance(body, dict):
            raise UserError(f"group {name!r} of the inventory {path} is not a mapping of hosts, children and vars")
        yield name, body or {}
        yield from _groups((body or {}).get("children") or {}, path)


def _collect(group: str, body: dict | None, inherited: dict, parents: set[str], found: dict, path: str) -> None:
    """Every host under ``group`` with its variables (the groups' above it, then its own) and the groups it is
    in, into ``found``; a host listed twice keeps its first place and joins both groups."""
    body, member_of = body or {}, parents | {group}
    variables = {**inherited, **(body.get("vars") or {})}
    for host, own in (body.get("hosts") or {}).items():
        found.setdefault(host, (_destination(host, {**variables, **(own or {})}, path), set()))[1].update(member_of)
    for child, child_body in (body.get("children") or {}).items():
        _collect(child, child_body, variables, member_of, found, path)


def _destination(name: str, variables: dict, path: str) -> Destination:
    port = variables.get("ansible_port")
    if port is not None and (not str(port).isdigit() or not 1 <= int(port) <= 65535):
        raise UserError(f"host {name} of the inventory {path}: ansible_port {port!r} is not a port from 1 to 65535")
    key = variables.get("ansible_ssh_private_key_file")
    return Destination(name, str(variables.get("ansible_host") or name), variables.get("ansible_user"),
                       int(port) if port is not None else None,
                       str(Path(key).expanduser()) if key else None)


def _unique(found: list[Destination], spec: str) -> list[Destination]:
    names = [d.text for d in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--devices names {', '.join(twice)} twice; name each device once")
    if not found:
        raise UserError(f"--devices {spec!r} names no device: give an inventory file (.yml) or DESTs separated by commas")
    return found
