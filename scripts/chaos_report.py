"""What a chaos run (scripts/chaos.py) checks and reports: the refund events, the calls per
ticket and the void-first checks (pure, table-tested in tests/e2e/test_chaos_invariants.py),
then the invariants and the figures of a finished run, each group a function over the run's
`Run` (scripts/chaos.py)."""

import collections
import json
import math
import statistics
import time
import uuid
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from events import EVENT_SOURCE, REFUND_FAILED, REFUNDED

NAMESPACE = uuid.UUID("d5c0914a-93ae-453d-8453-8e578063b9d6")
VOID_REJECTED = "void_rejected"
REASON_CODES = {VOID_REJECTED, "refund_rejected"}
PRODUCTION_MAX_RECEIVE_COUNT = 15  # the template's default MaxReceiveCount
BATCH_SIZE = 10  # the most records one killed invocation can hold


def say(message=""):
    """One line of the run's report, at once."""
    print(message, flush=True)


def key_of(ticket):
    return str(uuid.uuid5(NAMESPACE, ticket.lower()))


# --- the refund events (docs/CONTRACT.md section 9) and the calls per ticket: pure, table-tested in
# tests/e2e/test_chaos_invariants.py ------------------------------------------------------------

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


def copy_ticket(copy: Mapping[str, str | None]) -> str | None:
    """The ticket id of a DLQ copy's command (a dict of `body` and the String attributes), or
    None when its body is not a command with one."""
    try:
        ticket = json.loads(copy["body"])["ticket_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return ticket if isinstance(ticket, str) else None


def dead_lettered_messages(dlq_copies):
    """The dead-letterings that must each have a TicketRefundFailed: event id -> (ticket, error
    codes), from the DLQ copies (dicts of `body` and the String attributes). A copy of the same
    message twice (a batch killed after its copy) is one dead-lettering. No event is due for an
    `invalid_command`, a body without a ticket id, or a copy without `error_code` or
    `source_message_id` (moved by the redrive policy, not the worker)."""
    expected = {}
    for copy in dlq_copies:
        code, source = copy.get("error_code"), copy.get("source_message_id")
        ticket = copy_ticket(copy)
        if ticket is None or not code or code == "invalid_command" or not source:
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


@dataclass(frozen=True)
class TicketCalls:
    """Every call the gateway emulator got, per service and ticket, whatever came of it
    (refused, failed, dropped or served: its `GET /admin/calls`); the listings hold only the
    calls that reached a ledger."""
    void: Mapping[str, int]
    refund: Mapping[str, int]


def refund_calls_after_refused_void(calls: TicketCalls,
                                    void_refused: Iterable[str]) -> dict[str, int]:
    """The void first (issue 26): the tickets whose void the receipts service always refuses
    that got a refund call all the same, each with its number of refund calls. Empty is a
    pass; their void calls are expected (one per delivery at least)."""
    return {t: calls.refund[t] for t in sorted(void_refused) if calls.refund.get(t, 0) > 0}


def dead_lettered_not_void_rejected(dlq_copies: Iterable[Mapping[str, str | None]],
                                    void_refused: Set[str]) -> list[str]:
    """The tickets whose void is always refused with a DLQ copy whose error_code is not
    `void_rejected` (another code, or none: moved by the redrive policy), sorted. Empty is a
    pass; whether every delivery reached the DLQ is check_dead_letters'."""
    return sorted({t for copy in dlq_copies if (t := copy_ticket(copy)) in void_refused
                   and copy.get("error_code") != VOID_REJECTED})


def run_chance(p_attempt, budget, deliveries):
    """1 - (1 - p_attempt^budget)^deliveries, without underflow."""
    if budget <= 0:
        return 1.0
    per_delivery = p_attempt ** budget
    return -math.expm1(deliveries * math.log1p(-per_delivery)) if per_delivery < 1 else 1.0


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


def check_void_first(r) -> None:
    """Issue 26: a ticket whose void the receipts service refuses (the rejected tickets, both
    calls refused, and the void-rejected ones, the void only) is dead-lettered as
    void_rejected, and its refund is never called."""
    wrong_code = dead_lettered_not_void_rejected(r.dlq, r.void_refused)
    r.check(f"every ticket whose void is refused dead-lettered as {VOID_REJECTED}", not wrong_code,
            f"{len(wrong_code)} with another code, e.g. {wrong_code[:2]}" if wrong_code else
            f"{len(r.void_refused)} tickets: {len(r.rejected)} with both calls refused, "
            f"{len(r.void_rejected)} with the void only")
    called = refund_calls_after_refused_void(r.ticket_calls, r.void_refused)
    r.check("no refund call for a ticket whose void was refused", not called,
            f"refund calls for {len(called)} of {len(r.void_refused)} tickets "
            f"({sum(called.values())} calls, every one counted by the emulator whatever its "
            f"answer), e.g. {dict(list(called.items())[:3])}" if called else
            f"no refund call for any of the {len(r.void_refused)} tickets (the emulator counts "
            "every call, whatever its answer)")


def check_statuses(r):
    statuses = r.statuses
    voided = {e["ticket_id"] for e in r.listings["void"]}
    refunded = {e["ticket_id"] for e in r.listings["refund"]}
    stuck = {t: s and s["status"] for t, s in statuses.items() if not s or s["status"] not in ("succeeded", "failed")}
    r.check("every accepted ticket ends succeeded or failed, none stuck (GET /ticket-refund/{id})", not stuck,
            f"{len(stuck)} not final, e.g. {dict(list(stuck.items())[:3])}" if stuck
            else ", ".join(f"{k} x{v}" for k, v in sorted(collections.Counter(
                s["status"] for s in statuses.values()).items())))
    disagree = [t for t, s in statuses.items() if s and (
        (s["status"] == "succeeded") != (t in voided and t in refunded)
        or (s["status"] == "failed") != (t in r.void_refused)
        or (s["status"] == "succeeded" and not (s["receipt_voided_at"] and s["payment_refunded_at"]))
        or (s["status"] == "failed" and not s["failure_reason"]))]
    r.check("the statuses agree with the emulator's effects (succeeded = voided and refunded; "
            "failed = rejected or void-rejected, with a reason)", not disagree,
            f"{len(disagree)} disagree, e.g. {[(t, statuses[t]['status']) for t in disagree[:3]]}"
            if disagree else f"{len(statuses)} records")


def problem_summary(problems):
    return ", ".join(f"{name} {len(items)}" + (f" (e.g. {items[:2]})" if items else "")
                     for name, items in problems.items())


def check_events(r):
    """The refund events (docs/CONTRACT.md section 9), every one the bus got, from the RefundEvents copy."""
    events, bad_events = r.events, r.bad_events
    refunded_problems = refunded_event_problems(events, set(r.expected_done), r.void_refused)
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
        if ticket in r.sent and ticket not in r.void_refused:
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
