import os
import subprocess
import sys

import pytest

from uninext_deploy import api


def run_cli(*args: str, cwd=None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``uninext-deploy ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "uninext_deploy", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="session")
def convmlp_s_artifact(tmp_path_factory):
    """ConvMLP-S exported once to an ORT artifact (batch 1, 224)."""
    return api.export("convmlp_s", "ort", out=tmp_path_factory.mktemp("artifacts") / "convmlp_s")
