"""The local stack runs what template.yaml says, so a mistake in the template fails here as it
would on the first deploy to AWS. Each test deploys a copy of the template with one mistake
(LOCAL_TEMPLATE) under strict IAM and shows what a user would see. A stack that ignored the
template's policies, environment or mapping (the hand-written stack before issue 16) passes
none of them: there the PUT answers 202, the retry comes after the backoff, the failed record
is retried and the function starts.

The controls (the same behaviours on the template as it is) are in test_local_stack.py.
"""

import contextlib
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import running_stack
from conftest import local_stack
from test_local_stack import Stack, wait_for

ROOT = Path(__file__).resolve().parents[2]


def mutated(tmp_path, old, new):
    """A copy of template.yaml with `old` (found exactly once) replaced by `new`."""
    text = (ROOT / "template.yaml").read_text()
    assert text.count(old) == 1, f"template.yaml no longer has exactly one {old!r}"
    path = tmp_path / "template.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture
def mutated_stack(tmp_path):
    """Starts the stack on a changed template: `mutated_stack(old, new, **env)`; stopped at
    the end of the test."""
    with contextlib.ExitStack() as stacks:
        def start(old, new, **env):
            logs = tmp_path / "local-stack"
            fields = stacks.enter_context(local_stack(logs, LOCAL_TEMPLATE=str(mutated(tmp_path, old, new)), **env))
            return Stack({**fields, "logs": logs})

        yield start


def test_without_send_message_in_the_api_role_the_put_is_not_accepted(mutated_stack):
    stack = mutated_stack("""              Action: sqs:SendMessage
              Resource: !GetAtt RefundQueue.Arn""", """              Action: sqs:GetQueueAttributes
              Resource: !GetAtt RefundQueue.Arn""")
    ticket = str(uuid.uuid4())
    status, body, _ = stack.put_refund(ticket)
    # A refusal, not an outage: retrying cannot help, so 500 (not 503). Nothing is left
    # half-done: the record is withdrawn with its public reason and nothing is queued.
    assert status == 500, body
    assert body["error"]["code"] == "internal_error", body
    record = stack.refund_status(ticket)
    assert record["status"] == "failed", record
    assert record["failure_reason"] == "not queued; ask for the refund again", record
    assert stack.queue_depth() == 0


def test_without_change_message_visibility_in_the_worker_role_a_retry_waits_for_the_visibility_timeout(
        mutated_stack):
    # The queue's visibility timeout shortened to 30 s (the chaos runs' knob), so the test
    # sees the message come back at all; the backoff would bring it back within RETRY_MAX_S (5).
    stack = mutated_stack("                - sqs:ChangeMessageVisibility\n", "", LOCAL_VISIBILITY_TIMEOUT_S="30")
    ticket = str(uuid.uuid4())
    failed_at = stack.fail_first_attempt(ticket)
    record = stack.status_reaches(ticket, "succeeded", timeout_s=90)
    waited = time.monotonic() - failed_at
    assert waited > 15, f"retried {waited:.1f} s after the failure: the backoff was set after all"
    assert record["attempts"] == 2


def test_without_report_batch_item_failures_a_failed_record_is_deleted_with_its_batch(mutated_stack):
    stack = mutated_stack("            FunctionResponseTypes: [ReportBatchItemFailures]\n", "")
    ticket = str(uuid.uuid4())
    stack.fail_first_attempt(ticket)
    # The worker reported the record failed; the event source ignored that, as Lambda does
    # without ReportBatchItemFailures, and deleted it: nothing is left to retry.
    wait_for("the failed record deleted", lambda: stack.queue_depth() == 0, 30)
    time.sleep(10)  # twice RETRY_MAX_S: a retry would have come by now
    assert stack.queue_depth() == 0  # neither visible nor in flight: gone
    record = stack.refund_status(ticket)
    assert record["status"] != "succeeded" and record["attempts"] == 1, record
    assert ticket not in stack.effects()["refund"]
    assert not [m for m in stack.dead_letters() if ticket in m["body"]]


def test_a_renamed_environment_variable_stops_the_function_at_start_up_with_one_line(tmp_path):
    template = mutated(tmp_path, "DEAD_LETTER_QUEUE_URL: !Ref DeadLetterQueue", "DLQ_URL: !Ref DeadLetterQueue")
    env = running_stack.stack_env(tmp_path / "local-stack", LOCAL_TEMPLATE=str(template), STRICT_IAM="1")
    # A developer's own value must not hide the mistake (the functions get only what the
    # deployed environment and the local overrides say).
    env["DEAD_LETTER_QUEUE_URL"] = "http://127.0.0.1:1/123456789012/from-the-shell"
    proc = subprocess.Popen(running_stack.SCRIPT, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=1500)
    finally:
        running_stack.stop(proc)
    assert proc.returncode != 0
    assert "ready " not in stdout
    said = stderr.strip().splitlines()[-1]
    assert said == ("local-stack: refund-worker stopped at start-up: DEAD_LETTER_QUEUE_URL is not set; "
                    "it must be an SQS queue URL (http:// or https://)"), stderr[-2000:]
