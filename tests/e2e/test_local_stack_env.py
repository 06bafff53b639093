"""What the local stack gives a function and how it reads a function's start-up failure
(scripts/local_stack.py), without starting anything: table tests."""

import local_stack
import pytest

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
