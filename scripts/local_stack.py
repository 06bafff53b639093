#!/usr/bin/env python3
"""`make run`: the whole refund pipeline on loopback, as docs/CONTRACT.md section 7 lays it out.

Starts, in the foreground: moto, with template.yaml deployed into its CloudFormation
(scripts/local_deploy.py: every queue, the table, the bus, the roles and the functions'
environments are the stack's) plus the few local-only resources of LOCAL_ONLY; the gateway
emulator (unless GATEWAY_ADDR is set); each function under its own `cargo lambda watch`, with
the environment of its deployed function and only the LOCAL_OVERRIDES, refund-api's with the
router on API_PORT; and the event source that feeds refund-worker real SQS events with the
deployed mapping's settings. Each function, and the event source, calls AWS with the
credentials of its own deployed role (STS AssumeRole, scripts/local_iam.py); the stack is
deployed by an administrator whose credentials go to one file the ready line names. With
STRICT_IAM=1 (the end-to-end tests) moto enforces IAM from the first call after that set-up;
without, any credentials do, for ad-hoc `aws --endpoint-url` calls. Prints one `ready ...`
line when every part answers, and stops every process it started on Ctrl-C or SIGTERM. The
end-to-end tests drive this same script.
"""

import json
import secrets
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import local_deploy
import local_iam
# The queue that receives a copy of every refund event (docs/CONTRACT.md section 9), by the name
# `make events` reads, and the source the worker publishes under.
from events import EVENT_SOURCE, EVENTS_QUEUE
from running_stack import can_listen, http_ok, listening, wait_until

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
REGION = local_deploy.REGION


def log(message):
    print(f"local-stack: {message}", file=sys.stderr, flush=True)


# The upstream token's secret (local by nature: in AWS the operator creates it). Its ARN is the
# stack's GatewayTokenSecretArn parameter, so the worker reads it as it would in AWS.
GATEWAY_TOKEN_SECRET = "gateway-token"
EVENTS_RULE = "copy-refund-events"

# Resources the local stack creates that template.yaml has not, and why each is local by nature.
LOCAL_ONLY = (
    (GATEWAY_TOKEN_SECRET, "the gateway token: in AWS the operator creates the secret (the stack's "
                           "GatewayTokenSecretArn parameter names it)"),
    (EVENTS_QUEUE, "a queue that keeps every refund event, so a developer (`make events`) and "
                   "the tests can read what was published; in AWS consumers subscribe their own rules"),
    (EVENTS_RULE, f"the rule on the stack's bus that copies every event of source {EVENT_SOURCE} to {EVENTS_QUEUE}"),
)

# The function each binary is, and the one thing `cargo lambda watch` serves it on.
API, WORKER = "refund-api", "refund-worker"

# Of this script's environment, what the stack's processes are given (Stack.base_env).
TOOL_VARIABLES = {"PATH", "HOME", "USER", "LANG", "TMPDIR", "TERM", "SHELL"}
TOOL_PREFIXES = ("CARGO", "RUSTUP", "RUSTC", "RUSTFLAGS", "RUST_BACKTRACE", "LC_", "ZIG")

# The only variables a function gets that its deployed environment does not say (docs/CONTRACT.md
# section 7): (variable, the binaries it is set for, why). Values: Stack.override_values.
LOCAL_OVERRIDES = (
    ("AWS_ENDPOINT_URL", (API, WORKER), "every AWS call goes to moto"),
    ("GATEWAY_ADDR", (WORKER,), "the gateway emulator (or the GATEWAY_ADDR given)"),
    ("RETRY_BASE_S", (WORKER,), "retries seen in seconds, not minutes"),
    ("RETRY_MAX_S", (WORKER,), "retries seen in seconds, not minutes"),
    ("ALLOW_UNAUTHENTICATED", (API,), "curl and the browser carry no token (there is no JWT authorizer "
                                      "locally): served as support, and refused unless the endpoint is loopback"),
)


def chaos_overrides(sam):
    """`make chaos` (scripts/chaos.py, docs/RELIABILITY.md) and one mutation test: changes to
    the local copy of the template, each returned as a deviation; unset, as for `make run` and
    the other e2e tests, the template applies. LOCAL_VISIBILITY_TIMEOUT_S: the chaos run SIGKILLs the worker mid-batch,
    and each killed batch would otherwise wait 210 s to come back. UPSTREAM_TIMEOUT_MS: the
    worker's, shorter so that slow answers time out sooner."""
    deviations = []
    visibility = os.environ.get("LOCAL_VISIBILITY_TIMEOUT_S")
    if visibility:
        sam["Resources"]["RefundQueue"]["Properties"]["VisibilityTimeout"] = int(visibility)
        deviations.append(("RefundQueue", f"VisibilityTimeout {visibility}", "LOCAL_VISIBILITY_TIMEOUT_S (chaos)"))
    timeout = os.environ.get("UPSTREAM_TIMEOUT_MS")
    if timeout:
        variables = sam["Resources"]["RefundWorkerFunction"]["Properties"]["Environment"]["Variables"]
        variables["UPSTREAM_TIMEOUT_MS"] = timeout
        deviations.append(("RefundWorkerFunction", f"UPSTREAM_TIMEOUT_MS {timeout}", "UPSTREAM_TIMEOUT_MS (chaos)"))
    return deviations


def stack_parameters(token_secret_arn):
    """The stack's parameters beyond local_deploy's. LOCAL_MAX_RECEIVE_COUNT (chaos only): a
    MaxReceiveCount the template allows, for both the redrive policy and the worker."""
    parameters = {"GatewayTokenSecretArn": token_secret_arn}
    if os.environ.get("LOCAL_MAX_RECEIVE_COUNT"):
        parameters["MaxReceiveCount"] = os.environ["LOCAL_MAX_RECEIVE_COUNT"]
    return parameters


def configuration_error(line):
    """The error of a function's `configuration error` line (shared/src/config.rs
    ConfigError::exit), in the text or the JSON log format; None for any other line."""
    if "configuration error" not in line:
        return None
    if line.lstrip().startswith("{"):
        try:
            fields = json.loads(line)["fields"]
            return fields["error"] if fields["message"] == "configuration error" else None
        except (ValueError, KeyError, TypeError):
            return None
    _, found, error = line.partition("configuration error error=")
    return error.strip() or None if found else None


def ports_in_use(ports: dict[str, int]) -> str | None:
    """The one-line error naming each of `ports` (variable -> port) that something already
    listens on at 127.0.0.1, and the variable that chooses another; None when all are free."""
    taken = {variable: port for variable, port in ports.items() if not can_listen(port)}
    if not taken:
        return None
    named = ", ".join(f"port {port} ({variable})" for variable, port in taken.items())
    choose = " ".join(f"{variable}=<port>" for variable in taken)
    return (f"local-stack: already in use on 127.0.0.1: {named}; stop what listens there, "
            f"or choose another: {choose} make run")


def batches_at_once(mapping):
    """The mapping's MaximumConcurrency. Without a ScalingConfig Lambda scales its pollers on
    its own (up to 1,000 at once); locally that is one batch at a time."""
    return mapping["maximum_concurrency"] or 1


def binary_of(function):
    """The binary a deployed function runs (its SAM Metadata, as `sam build` reads it)."""
    return function["metadata"].get("BuildProperties", {}).get("Binary")


class Stack:
    def __init__(self):
        self.sqs_port = int(os.environ.get("SQS_PORT", "4566"))
        self.gateway_port = int(os.environ.get("GATEWAY_PORT", "8888"))
        self.api_port = int(os.environ.get("API_PORT", "9000"))
        # The worker's own watch server: the event source calls it (and the README's invoke).
        self.worker_port = int(os.environ.get("WORKER_PORT") or 9001)
        self.external_gateway = os.environ.get("GATEWAY_ADDR")
        self.gateway_args = os.environ.get("GATEWAY_FLAGS", "").split()
        self.logs = Path(os.environ.get("LOCAL_STACK_LOGS", ROOT / "target" / "local-stack"))
        self.endpoint = f"http://127.0.0.1:{self.sqs_port}"
        self.strict_iam = os.environ.get("STRICT_IAM", "") not in ("", "0")
        self.admin = local_deploy.LOCAL_CREDENTIALS
        self.procs = {}

    def ports(self) -> dict[str, int]:
        """The ports the stack listens on, by the variable that chooses each (the gateway's
        only when it starts the emulator)."""
        gateway = {} if self.external_gateway else {"GATEWAY_PORT": self.gateway_port}
        return {"SQS_PORT": self.sqs_port, **gateway, "API_PORT": self.api_port,
                "WORKER_PORT": self.worker_port}

    def spawn(self, name, args, env=None, log_name=None):
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{log_name or name}.log"
        out = open(path, "ab")
        # A process group of its own, so stopping it also stops what it started (cargo run).
        proc = subprocess.Popen(args, cwd=ROOT, env=env if env is not None else os.environ,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        log(f"started {name} (pid {proc.pid}), log {path}")
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

    def runtime_env(self, role):
        """What Lambda's runtime gives every process, not the function's configuration: the
        region, the credentials of its role (`role`: local_iam.role_credentials), and the log
        settings of the developer."""
        env = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, **role,
               "RUST_LOG": os.environ.get("RUST_LOG", "info")}
        if os.environ.get("AWS_LAMBDA_LOG_FORMAT"):
            env["AWS_LAMBDA_LOG_FORMAT"] = os.environ["AWS_LAMBDA_LOG_FORMAT"]
        return env

    @staticmethod
    def base_env():
        """What a process of the stack takes from this script's environment: only what runs
        the tools (cargo, cargo-lambda, zig, the locale), never a variable that could configure
        a function, so a function sees what its deployed environment says and nothing a shell
        happened to export."""
        return {k: v for k, v in os.environ.items() if k in TOOL_VARIABLES or k.startswith(TOOL_PREFIXES)}

    def client(self, service):
        return local_deploy.client(self.endpoint, service, self.admin)

    def set_up_iam(self):
        """The administrator, made first (its credentials in the file the ready line names)."""
        self.admin = local_iam.create_admin(self.client("iam"))
        return local_iam.write_credentials(self.logs / "admin-credentials", self.admin)

    def role_sessions(self, deployment):
        """Each function's role credentials by binary, as Lambda assumes its execution role.
        First, each deployed function must be one the stack runs."""
        for logical, function in deployment.functions.items():
            if binary_of(function) not in (API, WORKER):
                raise SystemExit(f"local-stack: {logical} runs {binary_of(function)!r}, which the local stack does not start")
        sts = self.client("sts")
        return {binary_of(f): local_iam.role_credentials(sts, f["role"], binary_of(f))
                for f in deployment.functions.values()}

    def queue_url(self, deployed_url):
        """A deployed queue's URL as moto answers it on loopback (the stack's is AWS's form)."""
        return self.client("sqs").get_queue_url(QueueName=deployed_url.rsplit("/", 1)[1])["QueueUrl"]

    def create_events_copy(self, bus):
        """Local only: a rule on the stack's bus that copies every refund event to the
        RefundEvents queue. moto delivers a matching PutEvents entry to an SQS target itself;
        the queue policy is the one AWS would need for EventBridge to send."""
        events, sqs = self.client("events"), self.client("sqs")
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
        return url

    def create_gateway_token(self):
        """The upstream token, local by nature: a secret in moto that the worker reads (as in
        AWS) and the emulator requires; a rotation puts a new version and tells the emulator
        (`PUT /admin/token`)."""
        token = secrets.token_urlsafe(32)
        arn = self.client("secretsmanager").create_secret(Name=GATEWAY_TOKEN_SECRET, SecretString=token)["ARN"]
        return arn, token

    def deploy(self, token_secret):
        for name, why in LOCAL_ONLY:
            log(f"local only, not in template.yaml: {name}: {why}")
        # LOCAL_TEMPLATE (the mutation tests): a changed copy of template.yaml deployed instead.
        template = Path(os.environ.get("LOCAL_TEMPLATE") or local_deploy.TEMPLATE)
        deployment = local_deploy.deploy(self.endpoint, stack_parameters(token_secret), customize=chaos_overrides,
                                         credentials=self.admin, strict_iam=self.strict_iam, template_path=template)
        log(f"deployed {template} as stack {deployment.stack} in moto's CloudFormation")
        for what, how, why in deployment.deviations:
            log(f"deviation from template.yaml: {what}: {how} ({why})")
        return deployment

    def start_gateway(self, token):
        if self.external_gateway:
            return self.external_gateway
        gateway = f"http://127.0.0.1:{self.gateway_port}"
        self.spawn("gateway-emulator", [str(TARGET / "debug/gateway-emulator"),
                                        "--addr", f"127.0.0.1:{self.gateway_port}", *self.gateway_args],
                   {**os.environ, "GATEWAY_TOKEN": token})
        wait_until("gateway emulator", lambda: http_ok(f"{gateway}/health", timeout=2), 60, self.procs)
        return gateway

    def override_values(self, gateway):
        return {"AWS_ENDPOINT_URL": self.endpoint, "GATEWAY_ADDR": gateway, "RETRY_BASE_S": "1",
                "RETRY_MAX_S": "5", "ALLOW_UNAUTHENTICATED": "true"}

    def function_env(self, function, role, values):
        """A function's whole environment: the tools', the runtime's (its role's credentials),
        its deployed environment, and the LOCAL_OVERRIDES for its binary (`values`)."""
        binary = binary_of(function)
        overrides = {name: values[name] for name, binaries, _ in LOCAL_OVERRIDES if binary in binaries}
        return {**self.base_env(), **self.runtime_env(role), **function["environment"], **overrides}

    def start_functions(self, deployment, gateway, mapping, roles):
        """Each function under its own `cargo lambda watch` (one watch gives every function it
        runs one environment): its deployed environment, then the LOCAL_OVERRIDES, listed."""
        values = self.override_values(gateway)
        for name, binaries, why in LOCAL_OVERRIDES:
            log(f"local override: {name}={values[name]} for {', '.join(binaries)}: {why}")
        ports = {API: self.api_port, WORKER: self.worker_port}
        for function in deployment.functions.values():
            binary = binary_of(function)
            # The worker's watch runs as many instances as the mapping invokes at once.
            concurrency = str(batches_at_once(mapping)) if binary == WORKER else "1"
            self.spawn(f"{binary} watch", [str(ROOT / ".venv/bin/cargo-lambda"), "lambda", "watch", "--bin", binary,
                                           "--invoke-address", "127.0.0.1", "--invoke-port", str(ports[binary]),
                                           "--concurrency", concurrency],
                       self.function_env(function, roles[binary], values), log_name="functions")
        for port in ports.values():
            wait_until("cargo lambda watch", lambda: listening(port), 120, self.procs)
        api, worker = (f"http://127.0.0.1:{ports[b]}" for b in (API, WORKER))
        # Readiness is both functions answering: the first call compiles each under watch.
        # One at a time, so a configuration error in the log is the function being waited for.
        wait_until(API, self.unless_stopped(API, lambda: self.api_answers(api)), 900, self.procs)
        wait_until(WORKER, self.unless_stopped(WORKER, lambda: http_ok(
            f"{worker}/2015-03-31/functions/{WORKER}/invocations", data=b'{"Records":[]}', method="POST",
            timeout=10)), 900, self.procs)
        return api

    def unless_stopped(self, binary, answers):
        """`answers`, unless the function stopped at start-up: `cargo lambda watch` then holds
        the invocation until a file changes, so the stack would wait in vain. Lambda reports
        such an init failure at once; the stack stops with the function's one line (or, for an
        exit without one, its code)."""
        log_file = self.logs / "functions.log"
        start = log_file.stat().st_size if log_file.exists() else 0

        def check():
            with open(log_file, "rb") as f:
                f.seek(start)
                lines = f.read().decode(errors="replace").splitlines()
            for error in filter(None, map(configuration_error, lines)):
                raise SystemExit(f"local-stack: {binary} stopped at start-up: {error}")
            # Any other exit (an error returned from main, a panic): watch says only its code.
            for line in lines:
                if "command exited code=" in line:
                    code = line.rsplit("code=", 1)[1].strip()
                    raise SystemExit(f"local-stack: {binary} exited at start-up with code {code}; see {log_file}")
            return answers()

        return check

    def start_event_source(self, mapping, queue_url, role):
        """The deployed mapping's part, with the worker's role: its batch size, window,
        concurrency and response types.
        LOCAL_INVOKE_TIMEOUT_S (chaos only): `cargo lambda watch` never answers an invocation
        whose process was killed, so the event source gives it up after this long, as Lambda
        does at the function's timeout. Default: the event source's own (first compiles)."""
        invoke_timeout = os.environ.get("LOCAL_INVOKE_TIMEOUT_S")
        args = ["--queue-url", queue_url, "--invoke-port", str(self.worker_port), "--function", WORKER,
                "--batch-size", str(mapping["batch_size"]),
                "--batching-window-s", str(mapping["maximum_batching_window_s"]),
                "--maximum-concurrency", str(batches_at_once(mapping)),
                "--function-response-types", ",".join(mapping["function_response_types"]),
                *(["--invoke-timeout-s", invoke_timeout] if invoke_timeout else [])]
        log(f"event source: {' '.join(args)}")
        self.spawn("event-source", [str(TARGET / "debug/event-source"), *args],
                   {**self.base_env(), **self.runtime_env(role), "AWS_ENDPOINT_URL": self.endpoint})
        time.sleep(1)
        if self.procs["event-source"].poll() is not None:
            raise SystemExit("local-stack: the event source exited at start-up")

    def run(self):
        self.spawn("moto", [str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(self.sqs_port)])
        wait_until("moto", lambda: listening(self.sqs_port), 60, self.procs)
        admin_file = self.set_up_iam()
        token_secret, token = self.create_gateway_token()
        deployment = self.deploy(token_secret)
        (mapping,) = deployment.mappings.values()
        outputs = deployment.outputs
        queue, dlq = self.queue_url(outputs["RefundQueueUrl"]), self.queue_url(outputs["DeadLetterQueueUrl"])
        events_url = self.create_events_copy(outputs["EventBusName"])
        roles = self.role_sessions(deployment)
        if self.strict_iam:
            local_iam.enforce(self.endpoint)
            log(f"strict IAM: moto checks every call from now on; the administrator's credentials: {admin_file}")

        log("building the functions and the local tools (minutes on a fresh clone)")
        subprocess.run(["cargo", "build", "--quiet", "-p", API, "-p", WORKER, "-p", "refund-local"],
                       cwd=ROOT, check=True)
        gateway = self.start_gateway(token)
        api = self.start_functions(deployment, gateway, mapping, roles)
        self.start_event_source(mapping, queue, roles[WORKER])

        print(f"ready api={api} sqs={self.endpoint} gateway={gateway} queue={queue} dlq={dlq} "
              f"table={outputs['RefundTableName']} gateway_token_secret={token_secret} "
              f"bus={outputs['EventBusName']} events={events_url} stack={deployment.stack} "
              f"worker=http://127.0.0.1:{self.worker_port} admin_credentials={admin_file} "
              f"strict_iam={int(self.strict_iam)} batch_size={mapping['batch_size']} "
              f"maximum_concurrency={batches_at_once(mapping)}", flush=True)
        while all(p.poll() is None for p in self.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        raise SystemExit(f"local-stack: {', '.join(dead)} stopped; see {self.logs}")

    @staticmethod
    def api_answers(api):
        # A method refund-api does not serve: it answers 405 without queueing anything.
        try:
            http_ok(f"{api}/ticket-refund/00000000-0000-0000-0000-000000000000", method="DELETE", timeout=10)
        except urllib.error.HTTPError as e:
            return e.code == 405
        return False


def main():
    stack = Stack()
    # Before anything starts: a taken port would otherwise show only as a part that exits.
    in_use = ports_in_use(stack.ports())
    if in_use:
        raise SystemExit(in_use)

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
