#!/usr/bin/env python3
"""`make run`: the whole refund pipeline on loopback, as CONTRACT.md section 7 lays it out.

Starts, in the foreground: moto (SQS, DynamoDB, Secrets Manager and EventBridge) with the
queues, the refund status table and the event bus created from template.yaml's definitions
(plus the few local-only resources of LOCAL_ONLY), the gateway emulator (unless GATEWAY_ADDR is set), both functions under
`cargo lambda watch` with a router, and the event source that feeds refund-worker real SQS
events. Prints one `ready ...` line when every part answers, and stops every process it
started on Ctrl-C or SIGTERM. The end-to-end tests drive this same script.
"""

import functools
import json
import secrets
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
REGION = "us-east-1"


def log(message):
    print(f"local-stack: {message}", file=sys.stderr, flush=True)


@functools.cache
def template():
    """template.yaml, read once: every local definition below is taken from it."""
    return cfn_yaml.load(str(ROOT / "template.yaml"))


def queue_attributes():
    """The queues' attributes as template.yaml gives them, so local and AWS never drift."""
    resources, parameters = template()["Resources"], template()["Parameters"]
    queue = resources["RefundQueue"]["Properties"]
    dlq = resources["DeadLetterQueue"]["Properties"]
    max_receive = queue["RedrivePolicy"]["maxReceiveCount"]
    if isinstance(max_receive, dict):
        max_receive = parameters[max_receive["Ref"]]["Default"]
    # Overrides for `make chaos` only (scripts/chaos.py, docs/RELIABILITY.md); unset, as for
    # `make run` and the e2e tests, the template's values apply. LOCAL_VISIBILITY_TIMEOUT_S:
    # the chaos run SIGKILLs the worker mid-batch, and each killed batch would otherwise wait
    # 210 s to come back. LOCAL_MAX_RECEIVE_COUNT: a value the template's MaxReceiveCount
    # parameter allows, for both the redrive policy and the worker's MAX_RECEIVE_COUNT.
    visibility = os.environ.get("LOCAL_VISIBILITY_TIMEOUT_S") or queue["VisibilityTimeout"]
    max_receive = os.environ.get("LOCAL_MAX_RECEIVE_COUNT") or max_receive
    return {
        "queue": {
            "VisibilityTimeout": str(int(visibility)),
            "MessageRetentionPeriod": str(queue["MessageRetentionPeriod"]),
        },
        "dlq": {"MessageRetentionPeriod": str(dlq["MessageRetentionPeriod"])},
        "max_receive_count": int(max_receive),
    }


# The refund status table on the local stack (CONTRACT section 8: REFUND_TABLE_NAME).
LOCAL_TABLE = "Refunds"
# The upstream token's secret (local by nature: in AWS the operator creates it).
GATEWAY_TOKEN_SECRET = "gateway-token"
# The queue that receives a copy of every refund event (CONTRACT section 9), for `make events`
# and the end-to-end tests.
EVENTS_QUEUE = "RefundEvents"
EVENTS_RULE = "copy-refund-events"
# The event source the worker publishes under (CONTRACT section 9).
EVENT_SOURCE = "ticket-refunds"
# The bus name when template.yaml declares no RefundEventBus (yet).
DEFAULT_BUS = "ticket-refunds"

# Resources the local stack creates that template.yaml has not, and why each is local by nature.
LOCAL_ONLY = (
    (GATEWAY_TOKEN_SECRET, "the gateway token: in AWS the operator creates the secret"),
    (EVENTS_QUEUE, "a queue that keeps every refund event, so a developer (`make events`) and "
                   "the tests can read what was published; in AWS consumers subscribe their own rules"),
    (EVENTS_RULE, f"the rule on the bus that copies every event of source {EVENT_SOURCE} to {EVENTS_QUEUE}"),
)

STACK_PREFIX = "${AWS::StackName}-"


def local_name(name):
    """A resource's local name from its template `Name`: `!Sub "${AWS::StackName}-X"` is X, as
    the local stack's queues are named without the stack's prefix."""
    if isinstance(name, dict):
        name = name.get("Fn::Sub", "")
    if not isinstance(name, str) or not name:
        raise SystemExit(f"local-stack: cannot name a local resource after {name!r}")
    return name.removeprefix(STACK_PREFIX)


def bus_name():
    """The event bus of template.yaml's RefundEventBus, or DEFAULT_BUS while it declares none."""
    bus = template()["Resources"].get("RefundEventBus")
    if bus is None:
        return DEFAULT_BUS
    return local_name(bus["Properties"]["Name"])


def table_definition():
    """The status table's keys and indexes as template.yaml declares them: the local table
    is created from the same definition, so a key the code relies on cannot exist only here."""
    tables = [r["Properties"] for r in template()["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    if len(tables) != 1:
        raise SystemExit(f"local-stack: template.yaml declares {len(tables)} DynamoDB tables, expected 1")
    table = tables[0]
    return {
        "AttributeDefinitions": table["AttributeDefinitions"],
        "KeySchema": table["KeySchema"],
        "GlobalSecondaryIndexes": [
            {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
            for i in table.get("GlobalSecondaryIndexes", [])
        ],
        "BillingMode": table["BillingMode"],
    }


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


class Stack:
    def __init__(self):
        self.sqs_port = int(os.environ.get("SQS_PORT", "4566"))
        self.gateway_port = int(os.environ.get("GATEWAY_PORT", "8888"))
        self.api_port = int(os.environ.get("API_PORT", "9000"))
        self.external_gateway = os.environ.get("GATEWAY_ADDR")
        self.gateway_args = os.environ.get("GATEWAY_FLAGS", "").split()
        self.logs = Path(os.environ.get("LOCAL_STACK_LOGS", ROOT / "target" / "local-stack"))
        self.procs = {}

    def spawn(self, name, args, env=None):
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")
        # A process group of its own, so stopping it also stops what it started (cargo run).
        proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        log(f"started {name} (pid {proc.pid}), log {self.logs / (name + '.log')}")
        return proc

    def stop(self):
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log("stopped every process it started")

    def aws_env(self):
        return {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.sqs_port}",
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        }

    def create_queues(self):
        attributes = queue_attributes()
        sqs = self.client("sqs")
        dlq_url = sqs.create_queue(QueueName="RefundTicket-dlq", Attributes=attributes["dlq"])["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": attributes["max_receive_count"]})
        queue_url = sqs.create_queue(QueueName="RefundTicket",
                                     Attributes={**attributes["queue"], "RedrivePolicy": redrive})["QueueUrl"]
        return queue_url, dlq_url, attributes["max_receive_count"]

    def create_table(self):
        self.client("dynamodb").create_table(TableName=LOCAL_TABLE, **table_definition())
        return LOCAL_TABLE

    def client(self, service):
        return boto3.client(service, endpoint_url=f"http://127.0.0.1:{self.sqs_port}", region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")

    def create_event_bus(self):
        """The worker's bus (CONTRACT section 9) and, local only, a rule that copies every refund
        event to the RefundEvents queue. moto delivers a matching PutEvents entry to an SQS
        target itself; the queue policy is the one AWS would need for EventBridge to send."""
        bus = bus_name()
        events, sqs = self.client("events"), self.client("sqs")
        events.create_event_bus(Name=bus)
        url = sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = events.put_rule(Name=EVENTS_RULE, EventBusName=bus,
                                   EventPattern=json.dumps({"source": [EVENT_SOURCE]}))["RuleArn"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }],
        })})
        events.put_targets(Rule=EVENTS_RULE, EventBusName=bus, Targets=[{"Id": EVENTS_QUEUE, "Arn": queue_arn}])
        return bus, url

    def create_gateway_token(self):
        """The upstream token, local by nature: a secret in moto that the worker reads (as in
        AWS) and the emulator requires; a rotation puts a new version and tells the emulator
        (`PUT /admin/token`)."""
        client = self.client("secretsmanager")
        token = secrets.token_urlsafe(32)
        arn = client.create_secret(Name=GATEWAY_TOKEN_SECRET, SecretString=token)["ARN"]
        return arn, token

    def run(self):
        env = self.aws_env()
        self.spawn("moto", [str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(self.sqs_port)])
        wait_until("moto", lambda: listening(self.sqs_port), 60, self.procs)
        for name, why in LOCAL_ONLY:
            log(f"local only, not in template.yaml: {name}: {why}")
        queue_url, dlq_url, max_receive = self.create_queues()
        table = self.create_table()
        token_secret, token = self.create_gateway_token()
        bus, events_url = self.create_event_bus()

        log("building the functions and the local tools (minutes on a fresh clone)")
        subprocess.run(["cargo", "build", "--quiet", "-p", "refund-api", "-p", "refund-worker", "-p", "refund-local"],
                       cwd=ROOT, check=True)

        if self.external_gateway:
            gateway = self.external_gateway
        else:
            gateway = f"http://127.0.0.1:{self.gateway_port}"
            self.spawn("gateway-emulator", [str(TARGET / "debug/gateway-emulator"),
                                            "--addr", f"127.0.0.1:{self.gateway_port}", *self.gateway_args],
                       {"GATEWAY_TOKEN": token})
            wait_until("gateway emulator", lambda: http_ok(f"{gateway}/health", timeout=2), 60, self.procs)

        function_env = {
            **env,
            "REFUND_QUEUE_URL": queue_url, "DEAD_LETTER_QUEUE_URL": dlq_url, "GATEWAY_ADDR": gateway,
            "MAX_RECEIVE_COUNT": str(max_receive), "RETRY_BASE_S": "1", "RETRY_MAX_S": "5",
            "REFUND_TABLE_NAME": table,
            "GATEWAY_TOKEN_SECRET_ARN": token_secret,
            "EVENT_BUS_NAME": bus,
            # curl and the browser have no token here: such a caller is served as support
            # (CONTRACT section 1a; refused by the function unless the endpoint is loopback).
            "ALLOW_UNAUTHENTICATED": "true",
            # One key for this run: every process of the stack must sign cursors alike.
            "REFUND_CURSOR_KEY": secrets.token_urlsafe(48),
            "UPSTREAM_TIMEOUT_MS": os.environ.get("UPSTREAM_TIMEOUT_MS", "5000"),
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        }
        self.spawn("functions", [str(ROOT / ".venv/bin/cargo-lambda"), "lambda", "watch", "--invoke-address",
                                 "127.0.0.1", "--invoke-port", str(self.api_port)], function_env)
        wait_until("cargo lambda watch", lambda: listening(self.api_port), 120, self.procs)
        api = f"http://127.0.0.1:{self.api_port}"
        # Readiness is both functions answering: the first call compiles each under watch.
        wait_until("refund-api", lambda: self.api_answers(api), 900, self.procs)
        wait_until("refund-worker", lambda: http_ok(
            f"{api}/2015-03-31/functions/refund-worker/invocations", data=b'{"Records":[]}', method="POST"),
            900, self.procs)

        # LOCAL_INVOKE_TIMEOUT_S (chaos only): `cargo lambda watch` never answers an invocation
        # whose process was killed, so the event source gives it up after this long, as Lambda
        # does at the function's timeout. Default: the event source's own (first compiles).
        invoke_timeout = os.environ.get("LOCAL_INVOKE_TIMEOUT_S")
        self.spawn("event-source", [str(TARGET / "debug/event-source"), "--queue-url", queue_url,
                                    "--invoke-port", str(self.api_port),
                                    *(["--invoke-timeout-s", invoke_timeout] if invoke_timeout else [])],
                   function_env)
        time.sleep(1)
        if self.procs["event-source"].poll() is not None:
            raise SystemExit("local-stack: the event source exited at start-up")

        print(f"ready api={api} sqs=http://127.0.0.1:{self.sqs_port} gateway={gateway} "
              f"queue={queue_url} dlq={dlq_url} table={table} gateway_token_secret={token_secret} "
              f"bus={bus} events={events_url}", flush=True)
        while all(p.poll() is None for p in self.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        raise SystemExit(f"local-stack: {', '.join(dead)} stopped; see {self.logs}")

    @staticmethod
    def api_answers(api):
        # A method refund-api does not serve: it answers 405 without queueing anything.
        try:
            http_ok(f"{api}/ticket-refund/00000000-0000-0000-0000-000000000000", method="DELETE", timeout=900)
        except urllib.error.HTTPError as e:
            return e.code == 405
        return False


def main():
    stack = Stack()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background
    try:
        stack.run()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
