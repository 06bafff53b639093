#!/usr/bin/env python3
"""`make chaos`: the local stack under load with faults, and the invariants checked after.

Starts scripts/local_stack.py on free ports, then:

- sends N refunds through the HTTP API from a few concurrent clients, each request with its
  own Correlation-ID (some ticket ids in uppercase: K is derived from the lowercase id);
- has the gateway emulator fail 20% of the upstream calls (500/503), reset 5% of the
  connections and answer 5% after `slow_ms`, beyond the worker's UPSTREAM_TIMEOUT_MS, all
  from one seeded RNG; a few tickets are always rejected (400), so the DLQ's content is known;
- delivers every command twice: once the API answered 202, a copy of the command (same K,
  new header id) goes straight onto the queue; every fourth copy is forged, with a fresh
  idempotency key of its own (CONTRACT section 3: the worker derives K, whatever the message says);
- rotates the gateway token once, mid-run: a new version of the secret, and from then on the
  emulator accepts only the new token (the warm workers get 401 and must re-read it);
- SIGKILLs the refund-worker process while it is handling a batch, several times;
- waits for the pipeline to drain and checks, printing each: every ticket answered 202 and not
  rejected was voided and refunded once with its one K; the DLQ holds exactly the rejected
  tickets, both deliveries of each, every copy with its reason; the queue is empty; no upstream
  call (answered or not) carried a key other than its ticket's K; and, from every event the bus
  got (the local stack's RefundEvents queue, drained at the end): one TicketRefunded id per
  refunded ticket, UUIDv5(K, "TicketRefunded"), none for a rejected ticket, and one
  TicketRefundFailed id per dead-lettered message, UUIDv5(K, "TicketRefundFailed:" + the DLQ
  copy's source_message_id), with its error_code (CONTRACT section 9).

It prints the time to drain, the upstream calls answered per ticket per service against the
goal of at most 1.6, the retries per ticket and the computed chance that transient faults
alone exhaust MAX_RECEIVE_COUNT in the run. Exit status 0 only when every invariant holds and
the calls-per-ticket goal is met. The stack is always stopped, also on failure and Ctrl-C. See docs/RELIABILITY.md.

Deliberate differences from `make run` (environment overrides local_stack.py reads, and
only this script sets), explained in docs/RELIABILITY.md: the queue's visibility timeout
(20 s, not 210 s), the event source's invoke timeout (15 s: `cargo lambda watch` never answers
an invocation whose process was killed), MAX_RECEIVE_COUNT 30 (the template allows 2..100)
and UPSTREAM_TIMEOUT_MS 2000 (slow answers at 2500 ms), so a kill costs seconds, not minutes.
"""

import argparse
import collections
import concurrent.futures
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import local_deploy
import local_iam
import running_stack

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = uuid.UUID("d5c0914a-93ae-453d-8453-8e578063b9d6")
WORKER_EXE = "debug/refund-worker"
REASON_CODES = {"void_rejected", "refund_rejected"}
PRODUCTION_MAX_RECEIVE_COUNT = 15  # the template's default MaxReceiveCount
BATCH_SIZE = 10  # the most records one killed invocation can hold
REPLACEMENTS = []  # workers this script started in place of killed ones; stopped at the end

PRESETS = {
    # make chaos
    # A kill every 2 s after the last one settled: with the mapping's five batches in flight
    # the 500 tickets drain in about two minutes, and each kill takes the invoke timeout.
    "full": dict(tickets=500, kills=5, clients=4, rejects=5, kill_interval=2.0, drain_timeout=1200.0),
    # the small run in make test (tests/e2e/test_chaos_small.py): at most 4 minutes
    "small": dict(tickets=60, kills=1, clients=3, rejects=2, kill_interval=3.0, drain_timeout=240.0),
}


def say(message=""):
    print(message, flush=True)


def key_of(ticket):
    return str(uuid.uuid5(NAMESPACE, ticket.lower()))


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
    """Each ticket's record from the API (CONTRACT section 8), or None when it has none."""
    def one(ticket):
        status, body, _ = http("GET", f"{stack.api}/ticket-refund/{ticket}")
        return ticket, body if status == 200 else None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, tickets))


# --- the refund events (CONTRACT section 9) and the calls per ticket: pure, table-tested in
# tests/e2e/test_chaos_invariants.py ------------------------------------------------------------

EVENT_SOURCE = "ticket-refunds"
REFUNDED, REFUND_FAILED = "TicketRefunded", "TicketRefundFailed"
CALLS_PER_TICKET_GOAL = 1.6  # upstream calls answered per ticket, per service (the events issue)


def refunded_event_id(ticket):
    """header.id of a ticket's one TicketRefunded: UUIDv5(K, "TicketRefunded")."""
    return str(uuid.uuid5(uuid.UUID(key_of(ticket)), REFUNDED))


def failed_event_id(ticket, dead_lettered_message_id):
    """header.id of the TicketRefundFailed of one dead-lettering: UUIDv5(K, "TicketRefundFailed:" +
    the id of the message that was dead-lettered), which the DLQ copy carries as its
    `source_message_id` attribute (not the copy's own MessageId)."""
    return str(uuid.uuid5(uuid.UUID(key_of(ticket)), f"{REFUND_FAILED}:{dead_lettered_message_id}"))


def parse_events(bodies):
    """The SQS bodies of RefundEvents, each an EventBridge event as JSON (`source`,
    `detail-type`, `detail`): (events, bad). An event is a dict of `type`, `source`,
    `schema_version`, `id` (header.id), `key` (header.idempotency_key), `ticket_id`,
    `correlation_id` and `error_code`; `bad` holds the start of each body that is not one."""
    events, bad = [], []
    for body in bodies:
        try:
            event = json.loads(body)
            detail = event["detail"]
            header = detail["header"]
            events.append({
                "type": event["detail-type"], "source": event.get("source"),
                "schema_version": detail.get("schema_version"), "id": header["id"],
                "key": header.get("idempotency_key"), "ticket_id": detail["ticket_id"],
                "correlation_id": detail.get("correlation_id"), "error_code": detail.get("error_code"),
            })
        except (ValueError, KeyError, TypeError):
            bad.append(str(body)[:80])
    return events, bad


def refunded_event_problems(events, refunded, rejected):
    """TicketRefunded against the run: `refunded` are the tickets voided and refunded,
    `rejected` the ones the services always refuse. Every refunded ticket has one, under one
    distinct header.id (repeats of it are allowed: delivery is at least once), which is
    UUIDv5(K, "TicketRefunded"), with K as header.idempotency_key; no other ticket has one.
    Returns problem -> sorted tickets; every list empty is a pass."""
    problems = {name: set() for name in (
        "missing", "more than one id", "wrong id", "wrong key", "malformed", "of a rejected ticket",
        "of an unknown ticket")}
    ids = collections.defaultdict(set)
    for e in events:
        if e["type"] != REFUNDED:
            continue
        ticket = e["ticket_id"]
        ids[ticket].add(e["id"])
        if e["key"] != key_of(ticket):
            problems["wrong key"].add(ticket)
        if e["source"] != EVENT_SOURCE or e["schema_version"] != 1:
            problems["malformed"].add(ticket)
        if ticket in rejected:
            problems["of a rejected ticket"].add(ticket)
        elif ticket not in refunded:
            problems["of an unknown ticket"].add(ticket)
    for ticket, seen in ids.items():
        if len(seen) > 1:
            problems["more than one id"].add(ticket)
        if seen != {refunded_event_id(ticket)}:
            problems["wrong id"].add(ticket)
    problems["missing"] = {t for t in refunded if t not in ids}
    return {name: sorted(tickets) for name, tickets in problems.items()}


def dead_lettered_messages(dlq_copies):
    """The dead-letterings that must each have a TicketRefundFailed: event id -> (ticket, error
    codes), from the DLQ copies (dicts of `body` and the String attributes). A copy of the same
    message twice (a batch killed after its copy) is one dead-lettering. No event is due for an
    `invalid_command`, a body without a ticket id, or a copy without `error_code` or
    `source_message_id` (moved by the redrive policy, not the worker)."""
    expected = {}
    for copy in dlq_copies:
        code, source = copy.get("error_code"), copy.get("source_message_id")
        try:
            ticket = json.loads(copy["body"])["ticket_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(ticket, str) or not code or code == "invalid_command" or not source:
            continue
        event_id = failed_event_id(ticket, source)
        expected.setdefault(event_id, (ticket, set()))[1].add(code)
    return expected


def failed_event_problems(events, dlq_copies):
    """TicketRefundFailed against the DLQ: exactly one distinct header.id per dead-lettered
    message (UUIDv5(K, "TicketRefundFailed:" + its source_message_id)), none missing, none
    without its dead-lettering, each with the copy's error_code, the ticket's K and source.
    Returns problem -> sorted event ids (or bodies' tickets); every list empty is a pass."""
    expected = dead_lettered_messages(dlq_copies)
    problems = {name: set() for name in ("missing", "without a dead-lettered message", "wrong error_code",
                                         "wrong ticket or key", "malformed")}
    seen = set()
    for e in events:
        if e["type"] != REFUND_FAILED:
            continue
        seen.add(e["id"])
        if e["source"] != EVENT_SOURCE or e["schema_version"] != 1:
            problems["malformed"].add(e["id"])
        if e["id"] not in expected:
            problems["without a dead-lettered message"].add(e["id"])
            continue
        ticket, codes = expected[e["id"]]
        if e["error_code"] not in codes:
            problems["wrong error_code"].add(e["id"])
        if e["ticket_id"] != ticket or e["key"] != key_of(ticket):
            problems["wrong ticket or key"].add(e["id"])
    problems["missing"] = set(expected) - seen
    return {name: sorted(ids) for name, ids in problems.items()}


def other_events(events):
    """Events of a detail-type the worker does not publish (the local rule copies every event
    of the bus): none are expected."""
    return sorted({e["type"] for e in events if e["type"] not in (REFUNDED, REFUND_FAILED)})


def calls_per_ticket(listings, tickets):
    """Mean upstream calls answered per ticket, per service (the emulator's listing counts, per
    effect, the calls that reached its ledger: the first and every replay), over `tickets`
    (a ticket without an effect counts 0), and both services together (their sum)."""
    per_service = {}
    for service in ("void", "refund"):
        calls = {e["ticket_id"]: e["calls"] for e in listings[service]}
        per_service[service] = statistics.mean(calls.get(t, 0) for t in tickets) if tickets else 0.0
    per_service["both"] = per_service["void"] + per_service["refund"]
    return per_service


def calls_goal_lines(per_ticket, goal=CALLS_PER_TICKET_GOAL):
    """The figure lines of the calls per ticket and whether each service meets the goal:
    (lines, services not meeting it). `both` is held to twice the goal, for reading only: the
    two services meeting theirs implies it."""
    lines, not_met = [], []
    for service in ("void", "refund"):
        met = per_ticket[service] <= goal
        if not met:
            not_met.append(service)
        lines.append(f"{service} calls per ticket: {per_ticket[service]:.2f} (goal ≤ {goal}: "
                     f"{'met' if met else 'NOT MET'})")
    both_met = per_ticket["both"] <= 2 * goal
    lines.append(f"calls per ticket (both): {per_ticket['both']:.2f} (void + refund; ≤ {2 * goal:g} "
                 f"with each service at its goal: {'met' if both_met else 'NOT MET'})")
    return lines, not_met


def run_chance(p_attempt, budget, deliveries):
    """1 - (1 - p_attempt^budget)^deliveries, without underflow."""
    if budget <= 0:
        return 1.0
    per_delivery = p_attempt ** budget
    return -math.expm1(deliveries * math.log1p(-per_delivery)) if per_delivery < 1 else 1.0


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
        # The queue the local rule copies every event of the bus to (CONTRACT section 9): the
        # event invariants need it, so a stack without it fails the run rather than skip them.
        self.events = fields.get("events")
        if not self.events:
            raise SystemExit("chaos: the local stack's ready line has no events=<RefundEvents queue url> field, "
                             f"so the refund events cannot be checked (CONTRACT section 9; its fields: "
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


# --- the run ---------------------------------------------------------------------------------

def command_body(ticket, header_id, key=None):
    """The command of `ticket`; `key`: a forged one instead of K."""
    return json.dumps({
        "header": {
            "id": header_id,
            "published_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "idempotency_key": key or key_of(ticket),
        },
        "ticket_id": ticket.lower(),
    })


def send_all(stack, tickets, clients, seed):
    """PUTs every ticket from `clients` concurrent clients and sends each command's copy to the
    queue. Returns ticket -> {status, correlation_id, command_id, dup_id, problems}."""
    results = {}
    local = threading.local()

    def one(index_ticket):
        index, ticket = index_ticket
        if not hasattr(local, "sqs"):
            local.sqs = stack.sqs()
        correlation = f"chaos-{seed}-{index:04d}"
        spelled = ticket.upper() if index % 7 == 3 else ticket  # K comes from the lowercase id
        result = {"correlation_id": correlation, "problems": []}
        status = body = None
        for attempt in range(8):
            try:
                status, body, headers = http("PUT", f"{stack.api}/ticket-refund/{spelled}",
                                             headers={"Correlation-ID": correlation}, timeout=30)
            except OSError as e:  # the API restarting under `cargo lambda watch`
                status, body, headers = None, str(e), {}
            if status == 202 or status in (400, 405, 500):
                break
            time.sleep(1 + attempt)
        result["status"] = status
        if status != 202:
            result["problems"].append(f"answered {status}: {body}")
            return ticket, result
        if body.get("idempotency_key") != key_of(ticket) or body.get("ticket_id") != ticket:
            result["problems"].append(f"202 body {body} lacks K={key_of(ticket)} or the lowercase ticket")
        if headers.get("correlation-id") != correlation:
            result["problems"].append(f"Correlation-ID echoed as {headers.get('correlation-id')!r}")
        result["command_id"] = body.get("command_id")
        # The second delivery: the same command (same K, or a forged key), a new header id.
        dup_id = str(uuid.uuid4())
        forged = str(uuid.uuid4()) if index % 4 == 1 else None
        result["forged"] = forged is not None
        local.sqs.send_message(QueueUrl=stack.queue, MessageBody=command_body(ticket, dup_id, forged), MessageAttributes={
            "name": {"DataType": "String", "StringValue": "RefundTicket"},
            "correlation_id": {"DataType": "String", "StringValue": correlation + "-dup"},
        })
        result["dup_id"] = dup_id
        return ticket, result

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        for ticket, result in pool.map(one, enumerate(tickets)):
            results[ticket] = result
    return results


def read_all(sqs, url):
    """Every message on the queue at `url` (consumed: the run is over), by MessageId: its body
    and String attributes."""
    seen, empty = {}, 0
    while empty < 3:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900,
                                  MessageAttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
        empty = 0 if got else empty + 1
        for m in got:
            seen[m["MessageId"]] = {"body": m["Body"], **{k: v.get("StringValue")
                                                          for k, v in m.get("MessageAttributes", {}).items()}}
    return list(seen.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the small preset (make test): 60 tickets, 1 kill")
    parser.add_argument("--tickets", type=int, help="refunds to send (full: 500)")
    parser.add_argument("--seed", type=int, default=20261123, help="seed of the tickets and the emulator's faults")
    parser.add_argument("--kills", type=int, help="mid-batch SIGKILLs of refund-worker (full: 5)")
    parser.add_argument("--clients", type=int, help="concurrent HTTP clients")
    parser.add_argument("--rejects", type=int, help="tickets the emulator always rejects")
    parser.add_argument("--kill-interval", type=float, help="seconds between kills")
    parser.add_argument("--drain-timeout", type=float, help="seconds to wait for the pipeline to drain")
    parser.add_argument("--error-rate", type=float, default=0.20)
    parser.add_argument("--reset-rate", type=float, default=0.05)
    parser.add_argument("--slow-rate", type=float, default=0.05)
    parser.add_argument("--upstream-timeout-ms", type=int, default=2000)
    parser.add_argument("--slow-ms", type=int, help="delay of a slow answer (default: upstream timeout + 500)")
    parser.add_argument("--visibility-timeout", type=int, default=20, help="the queue's, in seconds (template: 210)")
    parser.add_argument("--invoke-timeout", type=int, default=15, help="the event source's, in seconds")
    parser.add_argument("--max-receive-count", type=int, default=30, help="template's MaxReceiveCount (2..100)")
    parser.add_argument("--max-chance", type=float, default=1e-6,
                        help="largest acceptable chance that transient faults alone exhaust the budget")
    parser.add_argument("--logs", type=Path, help="where the stack's logs go (default: a temporary directory)")
    parser.add_argument("--report", type=Path, help="a JSON file for the figures (make bench reads it)")
    # Hook for the fixed-length fuzz run `make chaos` will add: a command run after the checks.
    parser.add_argument("--after", help="a shell command run after the invariants hold (e.g. the fuzz run)")
    args = parser.parse_args(argv)
    preset = PRESETS["small" if args.small else "full"]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.slow_ms is None:
        args.slow_ms = args.upstream_timeout_ms + 500
    if args.slow_ms <= args.upstream_timeout_ms:
        parser.error("--slow-ms must exceed --upstream-timeout-ms (a slow answer is a client timeout)")
    if not 0 <= args.rejects < args.tickets:
        parser.error("--rejects must be in [0, tickets)")

    logs = args.logs or Path(tempfile.mkdtemp(prefix="chaos-"))
    logs.mkdir(parents=True, exist_ok=True)
    # The figures are read from the stack's logs, which it appends to: an earlier run's go.
    for name in ("functions", "event-source", "gateway-emulator", "moto"):
        (logs / f"{name}.log").unlink(missing_ok=True)

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background
    stack = Stack(logs, args.visibility_timeout, args.invoke_timeout, args.max_receive_count,
                  args.upstream_timeout_ms)
    stop = threading.Event()
    try:
        say(f"chaos: starting the local stack (logs in {logs})")
        started = time.monotonic()
        stack.start()
        say(f"chaos: stack ready in {time.monotonic() - started:.0f} s: api={stack.api} gateway={stack.gateway}")
        ok = run(stack, args, stop)
    except KeyboardInterrupt:
        say("chaos: interrupted")
        ok = False
    finally:
        stop.set()
        stop_replacements()
        stack.stop()
        say(f"chaos: stack stopped; logs in {logs}")
    if ok and args.after:
        say(f"chaos: running {args.after}")
        ok = subprocess.run(args.after, shell=True, cwd=ROOT).returncode == 0
    return 0 if ok else 1


class Run:
    """One chaos run's tickets and what happened to them, filled in phase by phase: start,
    send, drain, read, then the checks and figures below read it."""

    def __init__(self, stack, args):
        self.stack, self.args = stack, args
        rng = random.Random(args.seed)
        self.tickets = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(args.tickets)]
        self.rejected = set(rng.sample(self.tickets, args.rejects))
        self.failures = []

    def check(self, name, ok, detail=""):
        say(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}")
        if not ok:
            self.failures.append(name)

    def set_faults(self):
        args = self.args
        faults = {"error_rate": args.error_rate, "reset_rate": args.reset_rate, "slow_rate": args.slow_rate,
                  "slow_ms": args.slow_ms, "latency_ms": 0, "reject_tickets": sorted(self.rejected),
                  "seed": args.seed}
        status, body, _ = http("PUT", f"{self.stack.gateway}/admin/faults", body=faults)
        if status != 200:
            raise SystemExit(f"chaos: the emulator refused the faults: {status} {body}")
        http("POST", f"{self.stack.gateway}/admin/reset")
        say(f"chaos: {args.tickets} tickets, {args.clients} clients, seed {args.seed}; faults per upstream call: "
            f"{args.error_rate:.0%} errors, {args.reset_rate:.0%} resets, {args.slow_rate:.0%} answered after "
            f"{args.slow_ms} ms (UPSTREAM_TIMEOUT_MS={args.upstream_timeout_ms}); {len(self.rejected)} tickets "
            f"always rejected; every command delivered twice, every fourth copy forged with a key of its own; "
            f"one token rotation mid-run; {args.kills} mid-batch SIGKILLs of refund-worker")
        say(f"chaos: queue visibility timeout {args.visibility_timeout} s, event-source invoke timeout "
            f"{args.invoke_timeout} s, MAX_RECEIVE_COUNT {args.max_receive_count}")

    def send(self):
        self.t0 = time.monotonic()
        self.sent = send_all(self.stack, self.tickets, self.args.clients, self.args.seed)
        self.t_sent = time.monotonic()
        self.accepted = [t for t, r in self.sent.items() if r["status"] == 202]
        self.expected_done = [t for t in self.accepted if t not in self.rejected]
        self.expected_dead = [t for t in self.accepted if t in self.rejected]
        say(f"chaos: {len(self.accepted)}/{len(self.tickets)} answered 202 and {len(self.accepted)} copies sent "
            f"to the queue in {self.t_sent - self.t0:.1f} s")

    def drain(self, killer):
        """Until every accepted ticket has its effects, both deliveries of each rejected ticket
        are on the DLQ, and nothing is on the queue, visible or not, twice in a row (and the
        kills are done); the token is rotated once half the refunds are done."""
        stack, args = self.stack, self.args
        sqs = stack.sqs()
        deadline = self.t0 + args.drain_timeout
        self.drained_at, self.rotated_at, calm, last_report = None, None, 0, 0.0
        while time.monotonic() < deadline:
            listings = stack.listings()
            done = {s: {e["ticket_id"] for e in listings[s]} for s in listings}
            missing = [t for t in self.expected_done if t not in done["void"] or t not in done["refund"]]
            if self.rotated_at is None and len(missing) <= len(self.expected_done) // 2:
                stack.rotate_token()
                self.rotated_at = time.monotonic()
                say(f"chaos: {self.rotated_at - self.t0:5.0f} s: the gateway token rotated with {len(missing)} "
                    "refunds to go")
            depth = stack.depth(sqs, stack.queue)
            dlq_count = sum(stack.depth(sqs, stack.dlq).values())
            quiet = not missing and sum(depth.values()) == 0 and dlq_count >= 2 * len(self.expected_dead)
            calm = calm + 1 if quiet else 0
            if calm >= 2 and (killer.landed >= args.kills or not killer.is_alive()):
                self.drained_at = time.monotonic()
                return
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                say(f"chaos: {time.monotonic() - self.t0:5.0f} s: {len(self.expected_done) - len(missing)}/"
                    f"{len(self.expected_done)} refunded, queue {depth}, dlq {dlq_count}, "
                    f"kills {killer.landed}/{args.kills}")
            time.sleep(1)

    def read(self):
        """The final state: the effects, the queues, the events, the logs."""
        stack = self.stack
        sqs = stack.sqs()
        self.listings = stack.listings()
        self.depth = stack.depth(sqs, stack.queue)
        self.dlq = read_all(sqs, stack.dlq)
        self.events, self.bad_events = parse_events(m["body"] for m in read_all(sqs, stack.events))
        self.stats = stack.stats()
        self.batches = event_source_batches(stack.logs)
        self.records = worker_records(stack.logs)
        self.elapsed = time.monotonic() - self.t0

    def drain_s(self):
        return (self.drained_at or time.monotonic()) - self.t0


def run(stack, args, stop):
    r = Run(stack, args)
    r.set_faults()
    killer = Killer(stack, args.kills, args.kill_interval, args.invoke_timeout, stop)
    killer.start()
    r.send()
    r.drain(killer)
    stop.set()
    killer.join(timeout=args.invoke_timeout + 40)
    time.sleep(3)  # anything late (a replay, a second DLQ copy) shows in the final read
    r.read()

    say("")
    say("chaos: invariants")
    check_puts_and_effects(r)
    check_emulator(r)
    check_dead_letters(r)
    check_statuses(r)
    check_events(r)
    r.check(f"{args.kills} SIGKILLs landed mid-batch", killer.landed >= args.kills,
            f"{killer.landed} landed of {killer.sent} sent")

    say("")
    say("chaos: figures")
    print_run_figures(r, killer)
    per_ticket = print_calls_per_ticket(r)
    print_retries_and_chances(r, killer)

    say("")
    say(f"chaos: {'PASS' if not r.failures else 'FAIL: ' + '; '.join(r.failures)}")
    if args.report:
        args.report.write_text(json.dumps({
            "tickets": len(r.sent), "refunded": len(r.expected_done), "rejected": len(r.rejected),
            "kills_landed": killer.landed, "calls_per_ticket": per_ticket, "goal": CALLS_PER_TICKET_GOAL,
            "drain_s": r.drain_s(), "failures": r.failures,
        }, indent=2) + "\n")
    return not r.failures


# --- the invariants --------------------------------------------------------------------------

def check_puts_and_effects(r):
    problems = {t: s["problems"] for t, s in r.sent.items() if s["problems"]}
    r.check("every PUT answered 202 with K = uuid5(ticket) and its Correlation-ID",
            not problems and len(r.accepted) == len(r.tickets),
            f"{len(r.accepted)}/{len(r.tickets)} accepted" + (f"; {dict(list(problems.items())[:3])}" if problems else ""))
    r.check("the pipeline drained within the time limit", r.drained_at is not None,
            f"{r.drain_s():.0f} s (limit {r.args.drain_timeout:.0f} s)")
    sent = r.sent
    for service, label in (("void", "voided"), ("refund", "refunded")):
        by_ticket = {}
        for effect in r.listings[service]:
            by_ticket.setdefault(effect["ticket_id"], []).append(effect)
        not_done = [t for t in r.expected_done if t not in by_ticket]
        doubled = {t: len(e) for t, e in by_ticket.items() if len(e) != 1}
        wrong_key = [t for t, e in by_ticket.items() if any(x["key"] != key_of(t) for x in e)]
        unknown = [t for t in by_ticket if t not in sent]
        of_rejected = [t for t in by_ticket if t in r.rejected]
        foreign_corr = [t for t, e in by_ticket.items() if t in sent and any(
            c not in (sent[t]["correlation_id"], sent[t]["correlation_id"] + "-dup")
            for x in e for c in x["correlation_ids"] + [x["correlation_id"]])]
        r.check(f"every accepted ticket {label} exactly once, with its one K",
                not (not_done or doubled or wrong_key or unknown or of_rejected or foreign_corr),
                f"{len(by_ticket)} effects for {len(r.expected_done)} tickets; missing {len(not_done)}, "
                f"more than one effect {len(doubled)}, wrong K {len(wrong_key)}, unknown tickets {len(unknown)}, "
                f"rejected tickets with an effect {len(of_rejected)}, foreign correlation ids {len(foreign_corr)}")


def check_emulator(r):
    stats = r.stats
    forged = sum(1 for s in r.sent.values() if s.get("forged"))
    r.check("no upstream call carried a key other than its ticket's K, forged copies included",
            forged > 0 and stats.get("foreign_keys", 1) == 0,
            f"{forged} copies forged with a fresh key; calls with a foreign key {stats.get('foreign_keys')}")
    r.check("the gateway token rotated mid-run, before the pipeline drained",
            r.rotated_at is not None and (r.drained_at is None or r.rotated_at < r.drained_at)
            and stats.get("unauthorized", 0) > 0,
            f"the services refused the old token {stats.get('unauthorized')} times; every other invariant "
            "holds across the rotation")
    r.check("the emulator saw no key reused for another ticket and no malformed call",
            stats.get("conflicts", 0) == 0 and stats.get("invalid", 0) == 0,
            f"conflicts {stats.get('conflicts')}, invalid {stats.get('invalid')}")


def check_dead_letters(r):
    dead_tickets, reasons, bad_copies, deliveries_seen = {}, {}, [], set()
    for m in r.dlq:
        try:
            command = json.loads(m["body"])
            ticket, header_id = command["ticket_id"], command["header"]["id"]
        except (ValueError, KeyError, TypeError):
            bad_copies.append(f"not a command: {m['body'][:80]}")
            continue
        dead_tickets[ticket] = dead_tickets.get(ticket, 0) + 1
        deliveries_seen.add((ticket, header_id))
        code, message = m.get("error_code"), m.get("error_message") or ""
        reasons[code] = reasons.get(code, 0) + 1
        if code not in REASON_CODES or not message or len(message.encode()) > 1024 \
                or not m.get("source_message_id") or not m.get("receive_count"):
            bad_copies.append(f"{ticket}: error_code={code!r} error_message={message[:60]!r} "
                              f"source_message_id={m.get('source_message_id')!r}")
    expected_dead = set(r.expected_dead)
    expected_deliveries = {(t, r.sent[t][k]) for t in expected_dead for k in ("command_id", "dup_id")}
    r.check("the DLQ holds exactly the tickets the emulator rejects",
            set(dead_tickets) == expected_dead,
            f"{sorted(dead_tickets)} vs expected {sorted(expected_dead)}" if set(dead_tickets) != expected_dead
            else f"{len(dead_tickets)} tickets, {len(r.dlq)} copies")
    r.check("both deliveries of every rejected ticket reached the DLQ (nothing lost)",
            expected_deliveries <= deliveries_seen,
            f"missing {sorted(expected_deliveries - deliveries_seen)}" if not expected_deliveries <= deliveries_seen
            else f"{len(expected_deliveries)} deliveries")
    r.check("every DLQ copy carries its reason (error_code, error_message, source_message_id, receive_count)",
            not bad_copies, "; ".join(bad_copies[:5]) or ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items())))
    r.check("nothing stays on the queue", sum(r.depth.values()) == 0, str(r.depth))


def check_statuses(r):
    statuses = refund_statuses(r.stack, r.accepted)
    voided = {e["ticket_id"] for e in r.listings["void"]}
    refunded = {e["ticket_id"] for e in r.listings["refund"]}
    stuck = {t: s and s["status"] for t, s in statuses.items() if not s or s["status"] not in ("succeeded", "failed")}
    r.check("every accepted ticket ends succeeded or failed, none stuck (GET /ticket-refund/{id})", not stuck,
            f"{len(stuck)} not final, e.g. {dict(list(stuck.items())[:3])}" if stuck
            else ", ".join(f"{k} x{v}" for k, v in sorted(collections.Counter(
                s["status"] for s in statuses.values()).items())))
    disagree = [t for t, s in statuses.items() if s and (
        (s["status"] == "succeeded") != (t in voided and t in refunded)
        or (s["status"] == "failed") != (t in r.rejected)
        or (s["status"] == "succeeded" and not (s["receipt_voided_at"] and s["payment_refunded_at"]))
        or (s["status"] == "failed" and not s["failure_reason"]))]
    r.check("the statuses agree with the emulator's effects (succeeded = voided and refunded; failed = rejected, "
            "with a reason)", not disagree, f"{len(disagree)} disagree, e.g. "
            f"{[(t, statuses[t]['status']) for t in disagree[:3]]}" if disagree else f"{len(statuses)} records")


def problem_summary(problems):
    return ", ".join(f"{name} {len(items)}" + (f" (e.g. {items[:2]})" if items else "")
                     for name, items in problems.items())


def check_events(r):
    """The refund events (CONTRACT section 9), every one the bus got, from the RefundEvents copy."""
    events, bad_events = r.events, r.bad_events
    refunded_problems = refunded_event_problems(events, set(r.expected_done), r.rejected)
    r.check("every refunded ticket has one TicketRefunded id, UUIDv5(K, \"TicketRefunded\"), and no rejected "
            "ticket has one", not any(refunded_problems.values()) and not bad_events,
            f"{sum(e['type'] == REFUNDED for e in events)} events for {len(r.expected_done)} tickets; "
            f"{problem_summary(refunded_problems)}; unreadable bodies {len(bad_events)}"
            + (f" (e.g. {bad_events[:2]})" if bad_events else ""))
    failed_problems = failed_event_problems(events, r.dlq)
    r.check("every dead-lettered message has one TicketRefundFailed id, UUIDv5(K, \"TicketRefundFailed:\" + its "
            "source_message_id), with its error_code", not any(failed_problems.values()),
            f"{sum(e['type'] == REFUND_FAILED for e in events)} events for {len(dead_lettered_messages(r.dlq))} "
            f"dead-lettered messages; {problem_summary(failed_problems)}")
    r.check("no event of another detail-type on the bus", not other_events(events),
            ", ".join(other_events(events)) or "none")


# --- the figures -----------------------------------------------------------------------------

def print_run_figures(r, killer):
    failed_invocations = [b for b in r.batches if b[3]]
    say(f"  time to drain: {r.drain_s():.1f} s from the first PUT, "
        f"{(r.drained_at or time.monotonic()) - r.t_sent:.1f} s after the last one (run {r.elapsed:.0f} s)")
    say(f"  event source: {len(r.batches)} invocations, {sum(b[0] for b in r.batches)} records, "
        f"{len(failed_invocations)} failed invocations (kills landed {killer.landed}, sent {killer.sent}; "
        f"a kill fails every batch in flight, up to MaximumConcurrency, and `cargo lambda watch` restarts "
        f"fail theirs)")
    say(f"  emulator: {json.dumps(r.stats, sort_keys=True)}")


def print_calls_per_ticket(r):
    """The goal of the events issue: a call the status record already confirms is not made
    again. A goal, not an invariant (nothing is wrong with a repeat: both services are
    idempotent on K), but a missed one fails the run, as a broken invariant does."""
    per_ticket = calls_per_ticket(r.listings, r.expected_done)
    call_lines, calls_not_met = calls_goal_lines(per_ticket)
    for line in call_lines:
        say(f"  {line}")
    most = {s: max((e["calls"] for e in r.listings[s] if e["ticket_id"] in r.sent), default=0) for s in r.listings}
    say(f"  (calls answered: the first under K and every replay, as the emulator's listings count them, over the "
        f"{len(r.expected_done)} tickets to refund; the most for one ticket: void {most['void']}, refund "
        f"{most['refund']}; replays come from the second delivery, lost or slow answers and kills)")
    r.failures.extend(f"goal: {service} calls per ticket <= {CALLS_PER_TICKET_GOAL}" for service in calls_not_met)
    events = r.events
    distinct_refunded = {e["id"] for e in events if e["type"] == REFUNDED}
    distinct_failed = {e["id"] for e in events if e["type"] == REFUND_FAILED}
    say(f"  refund events (RefundEvents, drained): {len(events) + len(r.bad_events)} read; TicketRefunded "
        f"{sum(e['type'] == REFUNDED for e in events)} ({len(distinct_refunded)} distinct ids for "
        f"{len(r.expected_done)} refunded tickets, the rest repeats); TicketRefundFailed "
        f"{sum(e['type'] == REFUND_FAILED for e in events)} ({len(distinct_failed)} distinct ids for "
        f"{len(dead_lettered_messages(r.dlq))} dead-lettered messages, {len(r.dlq)} DLQ copies)")
    return per_ticket


def worker_outcomes(r):
    """From the worker's log: outcomes by name, retries per ticket to refund, the highest
    receive count."""
    outcomes, per_ticket_retries, max_receive = {}, {}, 0
    for record in r.records:
        outcomes[record["outcome"]] = outcomes.get(record["outcome"], 0) + 1
        ticket = record.get("ticket_id")
        if ticket in r.sent and ticket not in r.rejected:
            per_ticket_retries.setdefault(ticket, 0)
            if record["outcome"] == "retry":
                per_ticket_retries[ticket] += 1
        max_receive = max(max_receive, int(record.get("receive_count") or 0))
    return outcomes, per_ticket_retries, max_receive


def print_retries_and_chances(r, killer):
    args, stats = r.args, r.stats
    # A call refused 401 (the rotation) never reached the fault draw.
    reached = stats["calls"] - stats.get("rejected", 0) - stats.get("invalid", 0) - stats.get("unauthorized", 0)
    faulted = stats.get("errors", 0) + stats.get("resets", 0) + stats.get("slow", 0)
    observed_p_call = faulted / reached if reached else 0.0
    outcomes, per_ticket_retries, max_receive = worker_outcomes(r)
    if per_ticket_retries:
        values = [per_ticket_retries.get(t, 0) for t in r.expected_done]
        say(f"  worker record outcomes: {json.dumps(outcomes, sort_keys=True)}")
        say(f"  retries per ticket (both deliveries, from the worker's log): mean {statistics.mean(values):.2f}, "
            f"median {statistics.median(values):.0f}, max {max(values)}; highest receive count seen "
            f"{max_receive} of MAX_RECEIVE_COUNT {args.max_receive_count}")
    attempts = outcomes.get("retry", 0) + outcomes.get("done", 0)
    observed_p_attempt = outcomes.get("retry", 0) / attempts if attempts else 0.0
    p_call = 1 - (1 - args.reset_rate) * (1 - args.error_rate) * (1 - args.slow_rate)
    p_attempt = 1 - (1 - p_call) ** 2
    say(f"  transient fault per upstream call: p = 1 - (1-{args.reset_rate})(1-{args.error_rate})"
        f"(1-{args.slow_rate}) = {p_call:.4f} (observed {observed_p_call:.4f})")
    say(f"  failed attempt (either of its two calls): 1 - (1-p)^2 = {p_attempt:.4f} "
        f"(observed {observed_p_attempt:.4f} of {attempts} attempts)")
    chance = print_chances(r, killer, p_attempt)
    # The chance above is arithmetic on the run's settings; what the run can prove is that
    # the faults it computed from really happened at that rate.
    r.check("upstream calls failed at the configured transient rate",
            attempts > 0 and abs(observed_p_call - p_call) <= 0.1, f"{observed_p_call:.4f} vs {p_call:.4f}")
    if chance >= args.max_chance:
        say(f"  WARNING: the computed chance {chance:.3e} is not below {args.max_chance:g}")


def print_chances(r, killer, p_attempt):
    """The chance that transient faults alone exhaust a delivery's budget (docs/RELIABILITY.md)."""
    args = r.args
    failed_invocations = sum(1 for b in r.batches if b[3])
    deliveries = 2 * len(r.accepted)
    per_delivery = p_attempt ** args.max_receive_count
    chance = run_chance(p_attempt, args.max_receive_count, deliveries)
    chance_prod = run_chance(p_attempt, PRODUCTION_MAX_RECEIVE_COUNT, deliveries)
    lost = max(killer.landed, failed_invocations)
    with_kills = min(1.0, chance + BATCH_SIZE * lost * p_attempt ** max(0, args.max_receive_count - lost))
    say(f"  one delivery exhausts MAX_RECEIVE_COUNT={args.max_receive_count} on transient faults alone: "
        f"{p_attempt:.4f}^{args.max_receive_count} = {per_delivery:.3e}")
    say(f"  chance in this run ({deliveries} deliveries): 1 - (1 - {per_delivery:.3e})^{deliveries} = {chance:.3e}")
    say(f"  (at the template's default MAX_RECEIVE_COUNT={PRODUCTION_MAX_RECEIVE_COUNT} it would be "
        f"{chance_prod:.3e}; counting each failed invocation as a lost attempt for up to {BATCH_SIZE} "
        f"deliveries, the bound is {with_kills:.3e})")
    return chance

if __name__ == "__main__":
    sys.exit(main())
