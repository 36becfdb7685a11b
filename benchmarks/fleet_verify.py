"""Fleet verify of N local devices (N = 1, 4, 16): wall time of `verify --devices INVENTORY` the first time
(each device gets the bundle and makes its venv) and again (both reused), against one device.

    python benchmarks/fleet_verify.py                  # test_convmlp's ORT bundle, N = 1 4 16
    python benchmarks/fleet_verify.py --model convmlp_s --sizes 1 8

Every device is an asyncssh server on 127.0.0.1 started here (tests/devices/ssh_server.py: keys made here, an
empty device home each), whose commands run on this machine: so the devices share this machine's cores, and
what the fleet adds (connections, handshakes at once, threads) is measured with N devices' run.py competing for
them, which real boards would not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "devices"))

from ssh_server import start_board  # noqa: E402


def fleet(root: Path, count: int) -> tuple[list, Path, Path]:
    """``count`` boards, one client home that knows them all, and an inventory naming them."""
    boards = [start_board(root / f"board{i}") for i in range(count)]
    home = boards[0].client_home
    with open(boards[0].known_hosts, "a") as known:
        for board in boards[1:]:
            known.write(board.known_hosts.read_text())
    hosts = "\n".join(f"        b{i}: {{ansible_port: {b.port}, ansible_ssh_private_key_file: "
                      f"{b.client_home / '.ssh' / 'id_ed25519'}}}" for i, b in enumerate(boards))
    inventory = root / "fleet.yml"
    inventory.write_text(f"all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: tester\n  children:\n"
                         f"    shelf:\n      hosts:\n{hosts}\n")
    return boards, home, inventory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="test_convmlp")
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 4, 16])
    args = parser.parse_args()

    from uninext_deploy import api

    rows = []
    with tempfile.TemporaryDirectory(prefix="uninext-fleet-bench-") as root:
        bundle = api.bundle(args.model, "ort", out=Path(root) / "bundle")
        for count in args.sizes:
            boards, home, inventory = fleet(Path(root) / f"fleet{count}", count)
            os.environ["HOME"] = str(home)
            os.environ.pop("SSH_AUTH_SOCK", None)
            try:
                seconds = []
                for _ in ("first", "again"):
                    start = time.perf_counter()
                    report = api.verify(bundle.path, device=api.DeviceOptions(devices=str(inventory)))
                    seconds.append(time.perf_counter() - start)
                    if report.exit_code:
                        sys.exit(f"{count} devices: {[o.error for o in report.outcomes if o.error][:1]}")
                rows.append((count, *seconds))
            finally:
                for board in boards:
                    board.server.stop()
    one = {label: rows[0][i + 1] for i, label in enumerate(("first", "again"))} if rows and rows[0][0] == 1 else None
    print("| devices | first verify s | x one device | again s | x one device |\n|---|---|---|---|---|")
    for count, first, again in rows:
        ratio = (lambda s, k: f"{s / one[k]:.2f}" if one else "")
        print(f"| {count} | {first:.2f} | {ratio(first, 'first')} | {again:.2f} | {ratio(again, 'again')} |")


if __name__ == "__main__":
    main()
