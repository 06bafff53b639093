#!/usr/bin/env python3
"""`make chaos`: the local stack under load with faults, and the invariants checked after.

Starts scripts/local_stack.py on free ports, then:

- sends N refunds through the HTTP API from a few concurrent clients, each request with its
  own Correlation-ID (some ticket ids in uppercase: K is derived from the lowercase id);
- has the gateway emulator fail 20% of the upstream calls (500/503), reset 5% of the
  connections and answer 5% after `slow_ms`, beyond the worker's UPSTREAM_TIMEOUT_MS, all
  from one seeded RNG; a few tickets are always rejected (400), so the DLQ's content is known,
  and a few others have only their void always rejected (their refund would be served);
- delivers every command twice: once the API answered 202, a copy of the command (same K,
  new header id) goes straight onto the queue; every fourth copy is forged, with a fresh
  idempotency key of its own (docs/CONTRACT.md section 3: the worker derives K, whatever the message says);
- rotates the gateway token once, mid-run: a new version of the secret, and from then on the
  emulator accepts only the new token (the warm workers get 401 and must re-read it);
- SIGKILLs the refund-worker process while it is handling a batch, several times;
- waits for the pipeline to drain and checks, printing each: every ticket answered 202 and not
  rejected was voided and refunded once with its one K; the DLQ holds exactly the rejected
  tickets, both deliveries of each, every copy with its reason; every ticket whose void is
  rejected is dead-lettered as void_rejected and got no refund call at all (the void first,
  issue 26; the emulator counts every call, whatever its answer); the queue is empty; no upstream
  call (answered or not) carried a key other than its ticket's K; and, from every event the bus
  got (the local stack's RefundEvents queue, drained at the end): one TicketRefunded id per
  refunded ticket, UUIDv5(K, "TicketRefunded"), none for a rejected ticket, and one
  TicketRefundFailed id per dead-lettered message, UUIDv5(K, "TicketRefundFailed:" + the DLQ
  copy's source_message_id), with its error_code (docs/CONTRACT.md section 9).

It prints the time to drain, the upstream calls answered per ticket per service against the
goal of at most 1.6, the retries per ticket and the computed chance that transient faults
alone exhaust MAX_RECEIVE_COUNT in the run. Exit status 0 only when every invariant holds and
the calls-per-ticket goal is met. The stack is always stopped, also on failure and Ctrl-C. See docs/RELIABILITY.md.

Deliberate differences from `make run` (environment overrides local_stack.py reads, and
only this script sets), explained in docs/RELIABILITY.md: the queue's visibility timeout
(20 s, not 210 s), the event source's invoke timeout (15 s: `cargo lambda watch` never answers
an invocation whose process was killed), MAX_RECEIVE_COUNT 30 (the template allows 2..100)
and UPSTREAM_TIMEOUT_MS 2000 (slow answers at 2500 ms), so a kill costs seconds, not minutes.

Layout: this file is the run (presets, sending, draining, main); chaos_stack.py the stack as
the run drives it, its logs and the killer; chaos_report.py the checks and the figures.
"""

import argparse
import concurrent.futures
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from chaos_report import (CALLS_PER_TICKET_GOAL, check_dead_letters, check_emulator,
                          check_events, check_puts_and_effects, check_statuses, check_void_first,
                          key_of, parse_events, print_calls_per_ticket, print_retries_and_chances,
                          print_run_figures, say)
from chaos_stack import (Killer, Stack, event_source_batches, http, refund_statuses, stop_replacements,
                         worker_records)

ROOT = Path(__file__).resolve().parents[1]

PRESETS = {
    # make chaos
    # A kill every 2 s after the last one settled: with the mapping's five batches in flight
    # the 500 tickets drain in about two minutes, and each kill takes the invoke timeout.
    "full": dict(tickets=500, kills=5, clients=4, rejects=5, void_rejects=5, kill_interval=2.0,
                 drain_timeout=1200.0),
    # the small run in make test (tests/e2e/test_chaos_small.py): at most 4 minutes
    "small": dict(tickets=60, kills=1, clients=3, rejects=2, void_rejects=2, kill_interval=3.0,
                  drain_timeout=240.0),
}


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
    parser.add_argument("--void-rejects", type=int,
                        help="other tickets whose void (only) the emulator always rejects")
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
    if not 0 <= args.void_rejects < args.tickets - args.rejects:
        parser.error("--void-rejects must be in [0, tickets - rejects)")

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
        # Drawn after the rejected ones, so a seed picks the same rejected tickets as before.
        others = [t for t in self.tickets if t not in self.rejected]
        self.void_rejected = set(rng.sample(others, args.void_rejects))
        # Every ticket whose void the receipts service refuses: dead-lettered, never refunded.
        self.void_refused = self.rejected | self.void_rejected
        self.failures = []

    def check(self, name, ok, detail=""):
        say(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}")
        if not ok:
            self.failures.append(name)

    def set_faults(self):
        args = self.args
        faults = {"error_rate": args.error_rate, "reset_rate": args.reset_rate, "slow_rate": args.slow_rate,
                  "slow_ms": args.slow_ms, "latency_ms": 0, "reject_tickets": sorted(self.rejected),
                  "reject_void_tickets": sorted(self.void_rejected), "seed": args.seed}
        status, body, _ = http("PUT", f"{self.stack.gateway}/admin/faults", body=faults)
        if status != 200:
            raise SystemExit(f"chaos: the emulator refused the faults: {status} {body}")
        http("POST", f"{self.stack.gateway}/admin/reset")
        say(f"chaos: {args.tickets} tickets, {args.clients} clients, seed {args.seed}; faults per upstream call: "
            f"{args.error_rate:.0%} errors, {args.reset_rate:.0%} resets, {args.slow_rate:.0%} answered after "
            f"{args.slow_ms} ms (UPSTREAM_TIMEOUT_MS={args.upstream_timeout_ms}); {len(self.rejected)} tickets "
            f"always rejected, {len(self.void_rejected)} more with their void always rejected; "
            f"every command delivered twice, every fourth copy forged with a key of its own; "
            f"one token rotation mid-run; {args.kills} mid-batch SIGKILLs of refund-worker")
        say(f"chaos: queue visibility timeout {args.visibility_timeout} s, event-source invoke timeout "
            f"{args.invoke_timeout} s, MAX_RECEIVE_COUNT {args.max_receive_count}")

    def send(self):
        self.t0 = time.monotonic()
        self.sent = send_all(self.stack, self.tickets, self.args.clients, self.args.seed)
        self.t_sent = time.monotonic()
        self.accepted = [t for t, r in self.sent.items() if r["status"] == 202]
        self.expected_done = [t for t in self.accepted if t not in self.void_refused]
        self.expected_dead = [t for t in self.accepted if t in self.void_refused]
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
        self.ticket_calls = stack.ticket_calls()
        self.depth = stack.depth(sqs, stack.queue)
        self.dlq = read_all(sqs, stack.dlq)
        self.events, self.bad_events = parse_events(m["body"] for m in read_all(sqs, stack.events))
        self.stats = stack.stats()
        self.batches = event_source_batches(stack.logs)
        self.records = worker_records(stack.logs)
        self.statuses = refund_statuses(stack, self.accepted)
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
    check_void_first(r)
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
            "void_rejected": len(r.void_rejected),
            "kills_landed": killer.landed, "calls_per_ticket": per_ticket, "goal": CALLS_PER_TICKET_GOAL,
            "drain_s": r.drain_s(), "failures": r.failures,
        }, indent=2) + "\n")
    return not r.failures


if __name__ == "__main__":
    sys.exit(main())
