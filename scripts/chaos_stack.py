"""The local stack as the chaos run drives it (scripts/local_stack.py through
running_stack.py, with the run's overrides), what its logs say, and the killer that SIGKILLs
refund-worker mid-batch and starts it again, as Lambda replaces a crashed sandbox."""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import local_deploy
import local_iam
import running_stack
from chaos_report import TicketCalls, say

WORKER_EXE = "debug/refund-worker"
REPLACEMENTS = []  # workers this script started in place of killed ones; stopped at the end


def http(method, url, body=None, headers=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null"), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        return e.code, body, {k.lower(): v for k, v in e.headers.items()}


def refund_statuses(stack, tickets):
    """Each ticket's record from the API (docs/CONTRACT.md section 8), or None when it has none."""
    def one(ticket):
        status, body, _ = http("GET", f"{stack.api}/ticket-refund/{ticket}")
        return ticket, body if status == 200 else None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, tickets))


# --- the stack -------------------------------------------------------------------------------

class Stack:
    """scripts/local_stack.py as a subprocess on free ports, stopped by stop() in any case."""

    def __init__(self, logs, visibility_s, invoke_timeout_s, max_receive, upstream_timeout_ms):
        self.logs = logs
        self.env = running_stack.stack_env(
            logs,
            # Under strict IAM, as the end-to-end tests' stack: the functions may do only what
            # their roles say (STRICT_IAM=0 turns it off).
            STRICT_IAM=os.environ.get("STRICT_IAM", "1"),
            LOCAL_VISIBILITY_TIMEOUT_S=str(visibility_s),
            LOCAL_INVOKE_TIMEOUT_S=str(invoke_timeout_s),
            LOCAL_MAX_RECEIVE_COUNT=str(max_receive),
            UPSTREAM_TIMEOUT_MS=str(upstream_timeout_ms),
            # One JSON object per worker log line: the retries per ticket are read from them.
            AWS_LAMBDA_LOG_FORMAT="JSON",
        )
        self.proc = None

    def start(self, timeout_s=1500):
        try:
            self.proc, fields = running_stack.start(self.env, timeout_s)
        except running_stack.StackDidNotStart as e:
            raise SystemExit(f"chaos: {e}") from None
        self.api, self.gateway, self.queue, self.dlq = fields["api"], fields["gateway"], fields["queue"], fields["dlq"]
        self.sqs_url = fields["sqs"]
        self.token_secret = fields["gateway_token_secret"]
        # The administrator's credentials: the only ones valid when the stack enforces IAM.
        self.admin = local_iam.read_credentials(Path(fields["admin_credentials"]))
        # The queue the local rule copies every event of the bus to (docs/CONTRACT.md section 9): the
        # event invariants need it, so a stack without it fails the run rather than skip them.
        self.events = fields.get("events")
        if not self.events:
            raise SystemExit("chaos: the local stack's ready line has no events=<RefundEvents queue url> field, "
                             f"so the refund events cannot be checked (docs/CONTRACT.md section 9; its fields: "
                             f"{sorted(fields)}); logs in {self.logs}")
        return self

    def rotate_token(self):
        """A rotation: a new version of the secret, and the services take only it from now on."""
        token = f"rotated-{uuid.uuid4()}"
        local_deploy.client(self.sqs_url, "secretsmanager", self.admin).put_secret_value(
            SecretId=self.token_secret, SecretString=token)
        status, body, _ = http("PUT", f"{self.gateway}/admin/token", body={"token": token})
        if status != 200:
            raise SystemExit(f"chaos: the emulator refused the new token: {status} {body}")

    def sqs(self):
        return local_deploy.client(self.sqs_url, "sqs", self.admin)

    def stop(self):
        if self.proc is not None:
            running_stack.stop(self.proc)

    def descendants(self):
        """PIDs of every process below this script (the stack and the workers it started in
        place of killed ones), from /proc: only what this run started."""
        children = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            for child in children.get(pid, []):
                out.append(child)
                todo.append(child)
        return out

    def worker_pids(self):
        pids = []
        for pid in self.descendants():
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if argv0.endswith(WORKER_EXE):
                pids.append(pid)
        return pids

    def stats(self):
        return http("GET", f"{self.gateway}/admin/stats", timeout=10)[1]

    def listings(self):
        out = {}
        for service, path in (("void", "/receipts-api/voided"), ("refund", "/payments-api/refunds")):
            status, body, _ = http("GET", self.gateway + path, timeout=30)
            if status != 200:
                raise RuntimeError(f"listing {path}: {status}")
            out[service] = body["items"]
        return out

    def ticket_calls(self) -> TicketCalls:
        """Every call the emulator got per service and ticket, whatever came of it."""
        status, body, _ = http("GET", f"{self.gateway}/admin/calls", timeout=30)
        if status != 200:
            raise RuntimeError(f"GET /admin/calls: {status}")
        return TicketCalls(void=body["receipts"], refund=body["payments"])

    def depth(self, sqs, url):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return {k.replace("ApproximateNumberOfMessages", "") or "Visible": int(v) for k, v in attrs.items()}


def event_source_batches(logs):
    """The event source's `batch` lines: (messages, failures, deleted, invoke_error)."""
    path = logs / "event-source.log"
    out = []
    if not path.exists():
        return out
    pattern = re.compile(r'batch messages=(\d+) failures=(\d+) deleted=(\d+) invoke_error="(.*)"\s*$')
    for line in path.read_text(errors="replace").splitlines():
        m = pattern.search(line)
        if m:
            out.append((int(m[1]), int(m[2]), int(m[3]), m[4]))
    return out


def worker_records(logs):
    """The worker's one log line per record outcome, from the functions log (JSON lines)."""
    path = logs / "functions.log"
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0 or '"outcome"' not in line:
            continue
        try:
            entry = json.loads(line[start:])
        except ValueError:
            continue
        fields = entry.get("fields", entry)
        if "outcome" in fields and "receive_count" in fields:
            out.append(fields)
    return out


# --- the killer ------------------------------------------------------------------------------

class Killer(threading.Thread):
    """SIGKILLs refund-worker while it is handling a batch, `kills` times.

    "Handling a batch" is seen from outside: the emulator's call counter moved in the last
    100 ms while a worker process is alive. A kill counts as landed when a batch line after
    it is a failed invocation within the invoke timeout (it deletes nothing; the batch comes
    back after the visibility timeout); a kill between batches is retried, up to 4 x kills
    attempts, and the killer stops once no batch has run for a minute. The next kill waits
    until every batch in flight at this one has failed (the invoke timeout), so a late failure
    of this kill is never counted for the next.
    Every refund-worker process alive is killed (the watch runs up to MaximumConcurrency, and
    a restart may leave more), and each is started again in its place (see start_replacement).
    """

    def __init__(self, stack, kills, interval_s, invoke_timeout_s, stop):
        super().__init__(daemon=True)
        self.stack, self.kills, self.interval_s = stack, kills, interval_s
        self.invoke_timeout_s, self.stop_event = invoke_timeout_s, stop
        self.sent, self.landed, self.attempts, self.log = 0, 0, 0, []

    def run(self):
        while self.landed < self.kills and self.attempts < 4 * self.kills and not self.stop_event.is_set():
            if self.stop_event.wait(self.interval_s):
                return
            self.attempts += 1
            pids = self.wait_busy_worker(timeout_s=60)
            if not pids:
                return  # a minute without a batch: the pipeline has drained, nothing to kill
            before = len(event_source_batches(self.stack.logs))
            # Every instance the worker's watch runs (up to the mapping's MaximumConcurrency).
            sandboxes = [self.sandbox_of(pid) for pid in pids]
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.sent += 1
            at = time.monotonic()
            for sandbox in filter(None, sandboxes):
                self.start_replacement(*sandbox)
            landed = self.wait_landed(before)
            self.landed += landed
            self.log.append((pids, landed))
            say(f"chaos: SIGKILL refund-worker pid {', '.join(map(str, pids))}: "
                f"{'mid-batch (the invocation failed)' if landed else 'between batches (not counted)'}"
                f" [{time.monotonic() - at:.1f} s to settle]")
            # Every batch in flight at the kill has failed by the invoke timeout: only then may
            # the next kill's "a failed invocation after it" be its own.
            self.stop_event.wait(max(0.0, at + self.invoke_timeout_s + 2 - time.monotonic()))

    @staticmethod
    def sandbox_of(pid):
        """What it takes to start the same worker again: its executable, environment (the
        runtime API of `cargo lambda watch` included) and working directory."""
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None
        env = dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)
        return exe, env, cwd

    def start_replacement(self, exe, env, cwd):
        """Lambda replaces a crashed sandbox on the next invocation; `cargo lambda watch` does
        not (it only restarts a function on a file change), so the run starts the same binary
        with the same environment: it polls the same runtime API for the next invocation."""
        log = open(self.stack.logs / "functions.log", "ab")
        proc = subprocess.Popen([exe], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        REPLACEMENTS.append(proc)


    def wait_busy_worker(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline and not self.stop_event.is_set():
            try:
                calls = self.stack.stats()["calls"]
            except (OSError, ValueError, KeyError):
                calls = None
            pids = self.stack.worker_pids()
            if last is not None and calls is not None and calls > last and pids:
                return pids
            last = calls
            time.sleep(0.1)
        return None

    def wait_landed(self, before):
        """Whether a batch line after the kill is a failed invocation. With batches in flight
        at once, the first line after the kill may be another batch that had just answered,
        and the killed one fails only at the invoke timeout: so wait for that long."""
        deadline = time.monotonic() + self.invoke_timeout_s + 30
        while time.monotonic() < deadline:
            if any(b[3] for b in event_source_batches(self.stack.logs)[before:]):
                return True
            time.sleep(0.2)
        return False


def stop_replacements():
    for proc in REPLACEMENTS:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
