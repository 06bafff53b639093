"""The local stack (`scripts/local_stack.py`, what `make run` starts) as a context manager,
on free ports, stopped at the end also when the caller fails: for the end-to-end tests and
`make bench`."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_listen(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now. Bound with SO_REUSEADDR, as the
    stack's servers bind, so only a socket that listens there takes it (not one in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(what, check, timeout_s, procs):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"local-stack: {name} exited with {proc.returncode} while waiting for {what}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"local-stack: {what} not ready within {timeout_s} s")


def listening(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def http_ok(url, data=None, method="GET", timeout=900):
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return 200 <= response.status < 300


class StackDidNotStart(RuntimeError):
    pass


SCRIPT = [sys.executable, str(ROOT / "scripts/local_stack.py")]


def stack_env(logs, **env_overrides):
    """The environment of a local stack on free ports, logging to `logs`, with its own gateway
    emulator."""
    env = {
        **os.environ,
        "SQS_PORT": str(free_port()), "GATEWAY_PORT": str(free_port()), "API_PORT": str(free_port()),
        "WORKER_PORT": str(free_port()),
        "LOCAL_STACK_LOGS": str(logs), **env_overrides,
    }
    env.pop("GATEWAY_ADDR", None)
    return env


def start(env, timeout_s=1500):
    """Starts scripts/local_stack.py with `env` (stack_env) in a process group of its own and
    waits for its ready line: (the process, the line's fields). A stack that stops or stays
    silent for `timeout_s` (the first start on a fresh clone compiles everything) is stopped,
    and StackDidNotStart says where its logs are."""
    proc = subprocess.Popen(SCRIPT, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    ready = []

    def read_ready():
        for line in proc.stdout:
            if line.startswith("ready "):
                ready.append(line.strip())
                return

    reader = threading.Thread(target=read_ready, daemon=True)
    reader.start()
    reader.join(timeout=timeout_s)
    if not ready:
        stop(proc)
        raise StackDidNotStart(f"the local stack did not print its ready line; logs in {env['LOCAL_STACK_LOGS']}")
    return proc, dict(part.split("=", 1) for part in ready[0].split()[1:])


def stop(proc):
    """Stops the stack and every process it started (its process group): SIGTERM, then
    SIGKILL after a minute."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def local_stack(logs, **env_overrides):
    """Yields the fields of the stack's `ready ...` line (api, sqs, gateway, queue, dlq, table,
    gateway_token_secret, bus, events, stack, worker, admin_credentials, strict_iam,
    batch_size, maximum_concurrency: every `key=value` it prints)."""
    proc, fields = start(stack_env(logs, **env_overrides))
    try:
        yield fields
    finally:
        stop(proc)
