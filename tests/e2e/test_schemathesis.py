"""The HTTP API against openapi.yaml: schemathesis on the local stack finds no 5xx and no
answer that breaks the document (status, content type, headers, body schema, and that bad
input is refused and good input accepted).

The stack (`scripts/local_stack.py`, on free ports) has no JWT authorizer, so requests go
straight to refund-api; `schemathesis_hooks.py` says which two differences from AWS are
taken out of the run, and why. The run is bounded: SCHEMATHESIS_MAX_EXAMPLES per phase
(default 200) and a fixed SCHEMATHESIS_SEED (default 20261123), so a failure replays.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = ROOT / ".venv/bin/schemathesis"
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "200")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261123")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The local stack's API URL; the stack is stopped at the end, also on failure."""
    logs = tmp_path_factory.mktemp("schemathesis-stack")
    env = {
        **os.environ,
        "SQS_PORT": str(free_port()), "GATEWAY_PORT": str(free_port()), "API_PORT": str(free_port()),
        "LOCAL_STACK_LOGS": str(logs),
    }
    env.pop("GATEWAY_ADDR", None)
    env.pop("GATEWAY_FLAGS", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts/local_stack.py")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    ready = []

    def read_ready():
        for line in proc.stdout:
            if line.startswith("ready "):
                ready.append(line.strip())
                return

    reader = threading.Thread(target=read_ready, daemon=True)
    reader.start()
    reader.join(timeout=1500)
    try:
        if not ready:
            pytest.fail(f"the local stack did not print its ready line; logs in {logs}")
        fields = dict(part.split("=", 1) for part in ready[0].split()[1:])
        yield fields["api"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_the_api_answers_as_openapi_yaml_says(api, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
    }
    command = [
        str(SCHEMATHESIS), "run", str(ROOT / "openapi.yaml"),
        "--url", api,
        "--checks", "all",
        "--max-examples", MAX_EXAMPLES,
        "--seed", SEED,
        "--request-timeout", "10",
        "--generation-database", "none",
        "--no-color",
        # No authorizer locally; a bearer header keeps the requests well-formed.
        "--header", "Authorization: Bearer local-stack-has-no-authorizer",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    try:
        run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"schemathesis did not finish within 150 s:\n{e.stdout}")
    output = run.stdout + run.stderr
    print(output)
    assert run.returncode == 0, f"schemathesis found problems (exit {run.returncode}); see the output above"
    # Not vacuous: the run really sent requests and every one passed.
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, "no test-case summary in schemathesis' output"
    assert int(generated[1]) >= 50 and generated[1] == generated[2], generated[0]
