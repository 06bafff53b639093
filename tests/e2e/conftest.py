"""Shared by the end-to-end tests: the local stack on free ports (scripts/running_stack.py),
stopped at the end also when a test fails, and a bare moto server for the tests of the
deployment alone."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import running_stack  # noqa: E402
from running_stack import listening, wait_until  # noqa: E402


@contextlib.contextmanager
def local_stack(logs, **env_overrides):
    """Yields the fields of the stack's `ready ...` line (running_stack.local_stack), under
    strict IAM unless told otherwise: a permission the template lacks fails here too."""
    try:
        with running_stack.local_stack(logs, **{"STRICT_IAM": "1", **env_overrides}) as fields:
            yield fields
    except running_stack.StackDidNotStart as e:
        pytest.fail(str(e))


@pytest.fixture
def moto(tmp_path):
    """A fresh moto server on a free port (MOTO_SERVER, else the project's .venv): its URL."""
    port = running_stack.free_port()
    exe = os.environ.get("MOTO_SERVER") or str(ROOT / ".venv/bin/moto_server")
    with open(tmp_path / "moto.log", "wb") as log:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until("moto", lambda: listening(port), 60, {"moto": proc})
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
