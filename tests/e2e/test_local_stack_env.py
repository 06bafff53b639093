"""What the local stack gives a function, how it reads a function's start-up failure and
which ports it refuses (scripts/local_stack.py), without starting anything: table tests."""

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import local_stack
import pytest
import running_stack

WORKER_FUNCTION = {"metadata": {"BuildProperties": {"Binary": "refund-worker"}},
                   "environment": {"REFUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
                                   "RETRY_BASE_S": "5"}}
API_FUNCTION = {"metadata": {"BuildProperties": {"Binary": "refund-api"}},
                "environment": {"REFUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q"}}
ROLE = {"AWS_ACCESS_KEY_ID": "ASIA-role", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token"}
SHELL = {
    "PATH": "/usr/bin", "HOME": "/home/dev", "CARGO_TARGET_DIR": "/tmp/target", "LC_ALL": "C.UTF-8",
    # What a developer's shell may hold that must not configure a function.
    "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:1/x", "ALLOW_INSECURE_GATEWAY": "true",
    "AWS_PROFILE": "prod", "AWS_ENDPOINT_URL": "https://example.com", "RUST_LOG": "debug",
    "AWS_LAMBDA_LOG_FORMAT": "JSON",
}


@pytest.fixture
def stack(monkeypatch):
    for name in list(local_stack.os.environ):
        monkeypatch.delenv(name)
    for name, value in SHELL.items():
        monkeypatch.setenv(name, value)
    return local_stack.Stack()


def test_a_function_gets_its_deployed_environment_its_role_and_only_the_listed_overrides(stack):
    values = stack.override_values("http://127.0.0.1:8888")
    env = stack.function_env(WORKER_FUNCTION, ROLE, values)
    assert env == {
        "PATH": "/usr/bin", "HOME": "/home/dev", "CARGO_TARGET_DIR": "/tmp/target", "LC_ALL": "C.UTF-8",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", **ROLE,
        "RUST_LOG": "debug", "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "REFUND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        # The overrides win over the deployed value (RETRY_BASE_S) and name moto, not the shell's endpoint.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "GATEWAY_ADDR": "http://127.0.0.1:8888",
        "RETRY_BASE_S": "1", "RETRY_MAX_S": "5",
    }


def test_the_overrides_of_one_binary_do_not_reach_the_other(stack):
    env = stack.function_env(API_FUNCTION, ROLE, stack.override_values("http://127.0.0.1:8888"))
    assert env["ALLOW_UNAUTHENTICATED"] == "true"
    assert not {"GATEWAY_ADDR", "RETRY_BASE_S", "RETRY_MAX_S"} & env.keys()


@pytest.mark.parametrize("line, error", [
    ("ERROR configuration error error=DEAD_LETTER_QUEUE_URL is not set; it must be an SQS queue URL",
     "DEAD_LETTER_QUEUE_URL is not set; it must be an SQS queue URL"),
    ('{"level":"ERROR","fields":{"message":"configuration error","error":"GATEWAY_ADDR is not set"}}',
     "GATEWAY_ADDR is not set"),
    ('{"level":"INFO","fields":{"message":"refund accepted"}}', None),
    ('{"fields":{"message":"configuration error"}}', None),
    ('{"fields":"configuration error"}', None),
    ("{not json, configuration error", None),
    ("INFO the configuration error page", None),
    ("ERROR configuration error error=", None),
    ("", None),
])
def test_a_configuration_error_line_is_read_in_either_log_format(line, error):
    assert local_stack.configuration_error(line) == error


@pytest.mark.parametrize("maximum_concurrency, batches", [(5, 5), (2, 2), (None, 1)])
def test_the_event_source_runs_the_mappings_maximum_concurrency_or_one(maximum_concurrency, batches):
    assert local_stack.batches_at_once({"maximum_concurrency": maximum_concurrency}) == batches


PORT_VARIABLES = ("SQS_PORT", "GATEWAY_PORT", "API_PORT", "WORKER_PORT")


@pytest.fixture
def held() -> Iterator[int]:
    """A port something listens on at 127.0.0.1 for the test's duration."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def stack_on(monkeypatch: pytest.MonkeyPatch, gateway_addr: str = "",
             **ports: int) -> local_stack.Stack:
    """A Stack whose every port is free but those given, with its own gateway emulator unless
    `gateway_addr`."""
    monkeypatch.setenv("GATEWAY_ADDR", gateway_addr)
    for variable in PORT_VARIABLES:
        monkeypatch.setenv(variable, str(ports.get(variable) or running_stack.free_port()))
    return local_stack.Stack()


@pytest.mark.parametrize("variable", PORT_VARIABLES)
def test_a_port_in_use_is_named_with_its_variable(monkeypatch: pytest.MonkeyPatch, held: int,
                                                  variable: str) -> None:
    stack = stack_on(monkeypatch, **{variable: held})
    assert local_stack.ports_in_use(stack.ports()) == (
        f"local-stack: already in use on 127.0.0.1: port {held} ({variable}); "
        f"stop what listens there, or choose another: {variable}=<port> make run")


def test_free_ports_pass_and_an_outside_gateway_needs_no_port(monkeypatch: pytest.MonkeyPatch,
                                                              held: int) -> None:
    assert local_stack.ports_in_use(stack_on(monkeypatch).ports()) is None
    outside = stack_on(monkeypatch, gateway_addr="http://127.0.0.1:1", GATEWAY_PORT=held)
    assert local_stack.ports_in_use(outside.ports()) is None


def test_make_run_with_a_port_in_use_stops_before_starting_anything(tmp_path: Path,
                                                                    held: int) -> None:
    """The script itself: one line on stderr and a non-zero exit, at once: no process started,
    so none logged (the logs go to `tmp_path`)."""
    env = running_stack.stack_env(tmp_path, API_PORT=str(held))
    proc = subprocess.Popen(running_stack.SCRIPT, cwd=running_stack.ROOT, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        running_stack.stop(proc)
    assert proc.returncode == 1
    (line,) = stderr.splitlines()
    assert f"port {held} (API_PORT)" in line and "API_PORT=<port> make run" in line
    assert list(tmp_path.iterdir()) == []
