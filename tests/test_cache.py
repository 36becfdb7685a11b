"""The per-user cache: a folder being filled is held by one process at a time."""

import subprocess
import sys

from uninext_deploy.cache import filling

PROBE = ("import fcntl, sys\n"
         "with open(sys.argv[1], 'a') as handle:\n"
         "    try:\n        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n        print('free')\n"
         "    except BlockingIOError:\n        print('held')\n")


def test_a_folder_being_filled_is_held_until_it_is_done(tmp_path):
    """Another process (another command, or another test worker on a fresh machine) cannot take the lock while
    this one sets the folder up, and can right after."""
    folder = tmp_path / "arm64"
    with filling(folder):
        held = subprocess.run([sys.executable, "-c", PROBE, str(folder / ".lock")], capture_output=True, text=True)
    free = subprocess.run([sys.executable, "-c", PROBE, str(folder / ".lock")], capture_output=True, text=True)
    assert held.stdout.strip() == "held" and free.stdout.strip() == "free"
