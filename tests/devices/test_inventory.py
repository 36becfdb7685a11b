"""Ansible-style YAML inventories and DEST lists as --devices reads them (devices/inventory.py)."""

from __future__ import annotations

import pytest

from uninext_deploy.devices.base import Destination
from uninext_deploy.devices.inventory import destinations
from uninext_deploy.errors import UserError

INVENTORY = """
all:
  vars:
    ansible_user: ops
  hosts:
    gateway:
      ansible_host: 10.0.0.5
  children:
    jetsons:
      vars:
        ansible_user: nvidia
        ansible_ssh_private_key_file: ~/.ssh/jetson
      hosts:
        orin1:
          ansible_host: 10.0.0.11
          ansible_port: 2222
        orin2:
          ansible_host: 10.0.0.12
          ansible_user: root
    pis:
      hosts:
        pi5:
"""


def test_groups_hosts_and_inherited_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "fleet.yml").write_text(INVENTORY)
    key = str(tmp_path / ".ssh" / "jetson")
    assert destinations(str(tmp_path / "fleet.yml")) == [
        Destination("gateway", "10.0.0.5", "ops"),
        Destination("orin1", "10.0.0.11", "nvidia", 2222, key),
        Destination("orin2", "10.0.0.12", "root", None, key),
        Destination("pi5", "pi5", "ops")]
    assert [d.text for d in destinations(f"{tmp_path / 'fleet.yml'}:jetsons")] == ["orin1", "orin2"]
    assert destinations(f"{tmp_path / 'fleet.yml'}:pis") == [Destination("pi5", "pi5", "ops")]  # all's vars too


def test_dest_lists_and_bad_inventories_are_one_line_each(tmp_path):
    assert [d.text for d in destinations("pi@board:2222, orin")] == ["pi@board:2222", "orin"]
    (tmp_path / "fleet.yml").write_text(INVENTORY)
    (tmp_path / "broken.yaml").write_text("all: [unclosed")
    (tmp_path / "port.yml").write_text("all:\n  hosts:\n    pi:\n      ansible_port: ssh\n")
    for spec, message in [("a,b,a", "--devices names a twice"), (",", "names no device"),
                          (f"{tmp_path / 'fleet.yml'}:nanos", "has no group 'nanos'; its groups: all, jetsons, pis"),
                          (str(tmp_path / "missing.yml"), "cannot read the inventory"),
                          (str(tmp_path / "broken.yaml"), "is not YAML"),
                          (str(tmp_path / "port.yml"), "host pi of the inventory .* ansible_port 'ssh' is not a port")]:
        with pytest.raises(UserError, match=message):
            destinations(spec)
