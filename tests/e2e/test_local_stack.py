"""End to end on the local stack (`scripts/local_stack.py`, what `make run` starts), through
the HTTP API, on free ports. The stack is stopped at the end, also when a test fails.

Why 30% transient failures still leave the DLQ empty: an attempt fails when either of its two
calls fails, p = 1 - 0.7^2 = 0.51. A ticket is dead-lettered only after MAX_RECEIVE_COUNT (15)
failed attempts in a row: 0.51^15 = 4.1e-5 per ticket, 8e-4 for the 20 tickets below.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import events
import local_deploy
import local_iam
import pytest
from conftest import local_stack

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = uuid.UUID("d5c0914a-93ae-453d-8453-8e578063b9d6")


def request(method, url, body=None, headers=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def wait_for(what, check, timeout_s):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"{what}: not reached within {timeout_s} s (last: {last!r})")


class Stack:
    def __init__(self, fields):
        self.api, self.gateway = fields["api"], fields["gateway"]
        self.queue, self.dlq = fields["queue"], fields["dlq"]
        # The administrator's: the stack enforces IAM (the functions have their roles').
        self.credentials_file = Path(fields["admin_credentials"])
        admin = local_iam.read_credentials(self.credentials_file)
        self.sqs = local_deploy.client(fields["sqs"], "sqs", admin)
        self.secrets = local_deploy.client(fields["sqs"], "secretsmanager", admin)
        self.token_secret = fields["gateway_token_secret"]
        self.events = fields["events"]
        self.logs = fields["logs"]

    def put_refund(self, ticket, correlation_id=None):
        headers = {"Correlation-ID": correlation_id} if correlation_id else {}
        return request("PUT", f"{self.api}/ticket-refund/{ticket}", headers=headers)

    def refund_status(self, ticket):
        """The refund's record (docs/CONTRACT.md section 8), or None before it exists."""
        status, body, _ = request("GET", f"{self.api}/ticket-refund/{ticket}")
        if status == 404 and body["error"]["code"] == "refund_not_found":
            return None
        assert status == 200, body
        return body

    def status_reaches(self, ticket, wanted, timeout_s=120):
        def reached():
            record = self.refund_status(ticket)
            return record if record and record["status"] == wanted else None

        return wait_for(f"{ticket} {wanted}", reached, timeout_s)

    def faults(self, **faults):
        status, body, _ = request("PUT", f"{self.gateway}/admin/faults", body=faults)
        assert status == 200, body

    def fail_first_attempt(self, ticket):
        """PUTs `ticket` while every upstream call fails, waits for its failed attempt, then
        lets the services answer again; returns when that was (time.monotonic)."""
        self.faults(error_rate=1.0)
        try:
            assert self.put_refund(ticket)[0] == 202
            wait_for("the failed first attempt", lambda: (self.refund_status(ticket) or {}).get("last_error"), 60)
        finally:
            self.faults(error_rate=0.0)
        return time.monotonic()

    def effects(self):
        """Per service, ticket -> list of effects (one is the only right answer)."""
        out = {}
        for service, path in (("void", "/receipts-api/voided"), ("refund", "/payments-api/refunds")):
            status, body, _ = request("GET", self.gateway + path)
            assert status == 200
            by_ticket = {}
            for effect in body["items"]:
                by_ticket.setdefault(effect["ticket_id"], []).append(effect)
            out[service] = by_ticket
        return out

    def dead_letters(self):
        """Every message on the DLQ, by id, without consuming it (events.peek)."""
        return [{"body": m["Body"], **{k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}}
                for m in events.peek(self.sqs, self.dlq)]

    def refund_events(self, ticket=None):
        """The events on the RefundEvents queue (docs/CONTRACT.md section 9), the ticket's or all,
        without consuming them: each as events.event_fields gives it."""
        found = [events.event_fields(m["Body"]) for m in events.peek(self.sqs, self.events)]
        return [e for e in found if e and ticket in (None, e["ticket_id"])]

    def queue_depth(self):
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("local-stack")
    with local_stack(logs, GATEWAY_FLAGS="--seed 7") as fields:
        yield Stack({**fields, "logs": logs})
    for name in ("functions", "event-source", "gateway-emulator"):
        log = logs / f"{name}.log"
        if log.exists():
            print(f"--- tail of {name}.log ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))


def key_of(ticket):
    return str(uuid.uuid5(NAMESPACE, ticket.lower()))


def assert_refunded_once(effects, ticket, correlation_id=None):
    for service in ("void", "refund"):
        (effect,) = effects[service][ticket]  # exactly one effect per service
        assert effect["key"] == key_of(ticket)
        if correlation_id:
            assert effect["correlation_id"] == correlation_id


def test_fifty_refunds_each_voided_and_refunded_once_with_its_correlation_id(stack):
    tickets = {str(uuid.uuid4()): f"e2e-fifty-{i}" for i in range(50)}
    for ticket, correlation in tickets.items():
        status, body, headers = stack.put_refund(ticket, correlation)
        assert status == 202, body
        assert body["idempotency_key"] == key_of(ticket)
        assert {k.lower(): v for k, v in headers.items()}["correlation-id"] == correlation

    def all_done():
        effects = stack.effects()
        return effects if all(t in effects["void"] and t in effects["refund"] for t in tickets) else None

    effects = wait_for("50 refunds", all_done, 240)
    for ticket, correlation in tickets.items():
        assert_refunded_once(effects, ticket, correlation)
    for ticket in tickets:
        assert stack.status_reaches(ticket, "succeeded", 30)["correlation_id"] == tickets[ticket]


def test_a_double_click_queues_one_command_and_reaches_the_services_once(stack):
    # docs/CONTRACT.md section 1a: the second PUT falls in the quiet period of the first command,
    # so it answers that command and queues nothing.
    # Slow services keep the refund open while the second click arrives (on an idle stack
    # it can be done first, and that PUT then answers 200).
    stack.faults(latency_ms=1500)
    try:
        ticket = str(uuid.uuid4())
        first = stack.put_refund(ticket, "e2e-double-1")
        second = stack.put_refund(ticket, "e2e-double-2")
        assert (first[0], second[0]) == (202, 202)
        assert first[1]["idempotency_key"] == second[1]["idempotency_key"] == key_of(ticket)
        assert first[1]["command_id"] == second[1]["command_id"]

        def delivered():
            effects = stack.effects()
            return effects if all(ticket in effects[s] for s in ("void", "refund")) else None

        effects = wait_for("the double click's one delivery", delivered, 120)
    finally:
        stack.faults(latency_ms=0)
    assert_refunded_once(effects, ticket, "e2e-double-1")
    record = stack.status_reaches(ticket, "succeeded", 30)
    assert record["command_id"] == first[1]["command_id"]
    assert record["correlation_id"] == "e2e-double-1"
    assert record["attempts"] == 1
    # One command: each service saw the key once.
    assert [effects[s][ticket][0]["calls"] for s in ("void", "refund")] == [1, 1]


def stats(stack):
    status, body, _ = request("GET", f"{stack.gateway}/admin/stats")
    assert status == 200
    return body


def test_thirty_percent_transient_failures_still_refund_everything(stack):
    errors_before = stats(stack)["errors"]
    stack.faults(error_rate=0.3)
    try:
        tickets = [str(uuid.uuid4()) for _ in range(20)]
        for ticket in tickets:
            assert stack.put_refund(ticket)[0] == 202

        def all_done():
            effects = stack.effects()
            return effects if all(t in effects["void"] and t in effects["refund"] for t in tickets) else None

        effects = wait_for("20 refunds through 30% failures", all_done, 300)
        for ticket in tickets:
            assert_refunded_once(effects, ticket)
        # The faults really happened: calls failed and were retried.
        assert stats(stack)["errors"] - errors_before >= 5
    finally:
        stack.faults(error_rate=0.0)
    dead = [m for m in stack.dead_letters() if any(t in m["body"] for t in tickets)]
    assert dead == []


def test_a_failed_attempt_is_retried_after_the_backoff_not_the_queues_visibility_timeout(stack):
    """The worker sets the message's visibility by the backoff (RETRY_MAX_S is 5 here), so the
    retry comes in seconds, not after the queue's 210 s. test_template_mutations.py shows the
    same without the permission to do so."""
    ticket = str(uuid.uuid4())
    failed_at = stack.fail_first_attempt(ticket)
    record = stack.status_reaches(ticket, "succeeded", timeout_s=60)
    waited = time.monotonic() - failed_at
    assert waited < 15, f"retried {waited:.1f} s after the failure"
    # 2, or more when the first retry (about 1 s after the failure) came before the faults
    # were lifted: each of those retries also came after its backoff.
    assert record["attempts"] >= 2
    assert_refunded_once(stack.effects(), ticket)


def test_a_ticket_the_gateway_rejects_is_dead_lettered_with_its_reason_after_one_attempt(stack):
    ticket = str(uuid.uuid4())
    stack.faults(reject_tickets=[ticket])
    assert stack.put_refund(ticket, "e2e-rejected")[0] == 202

    def in_dlq():
        return [m for m in stack.dead_letters() if ticket in m["body"]]

    (message,) = wait_for("the rejected ticket in the DLQ", in_dlq, 120)
    assert message["error_code"] in ("void_rejected", "refund_rejected")
    assert message["error_message"]
    assert message["receive_count"] == "1"
    assert message["correlation_id"] == "e2e-rejected"
    assert message["source_message_id"]
    # The record says so too, with the public reason of the service that refused
    # (docs/CONTRACT.md section 1a); the copy keeps the full text.
    record = stack.status_reaches(ticket, "failed")
    service = "receipts" if message["error_code"] == "void_rejected" else "payments"
    assert record["failure_reason"].startswith(f"{service} service answered ")
    assert record["attempts"] == 1
    assert record["completed_at"] is None or record["completed_at"] >= record["accepted_at"]


def test_poison_put_on_the_queue_is_dead_lettered_as_invalid_command(stack):
    body = "not a RefundTicket " + str(uuid.uuid4())
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=body)

    def in_dlq():
        return [m for m in stack.dead_letters() if m["body"] == body]

    (message,) = wait_for("the poison message in the DLQ", in_dlq, 120)
    assert message["error_code"] == "invalid_command"
    assert message["receive_count"] == "1"


def test_a_forged_command_with_a_foreign_key_is_refunded_under_the_tickets_own_key(stack):
    """A command put straight on the queue (a producer that mints its own key, or a forged
    message) with a fresh idempotency key: both services see the ticket's K, never the
    message's, and the record holds K (docs/CONTRACT.md section 3)."""
    ticket, foreign = str(uuid.uuid4()), str(uuid.uuid4())
    command = {
        "header": {"id": str(uuid.uuid4()), "published_at": "2026-12-02T07:00:00Z", "idempotency_key": foreign},
        "ticket_id": ticket,
    }
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=json.dumps(command), MessageAttributes={
        "name": {"DataType": "String", "StringValue": "RefundTicket"},
        "correlation_id": {"DataType": "String", "StringValue": "e2e-forged"},
    })

    def refunded():
        effects = stack.effects()
        return effects if all(ticket in effects[s] for s in ("void", "refund")) else None

    foreign_before = stats(stack)["foreign_keys"]
    effects = wait_for("the forged command's refund", refunded, 120)
    assert_refunded_once(effects, ticket, "e2e-forged")
    assert all(e["key"] != foreign for s in ("void", "refund") for e in effects[s][ticket])
    assert stack.status_reaches(ticket, "succeeded", 30)["idempotency_key"] == key_of(ticket)
    # No call at all (not only the ones that had an effect) carried the message's key.
    assert stats(stack)["foreign_keys"] == foreign_before


def refund_all(stack, tickets, what):
    for ticket in tickets:
        assert stack.put_refund(ticket, f"e2e-{what}")[0] == 202

    def done():
        effects = stack.effects()
        return effects if all(t in effects["void"] and t in effects["refund"] for t in tickets) else None

    return wait_for(what, done, 180)


def test_a_token_rotation_loses_no_refund_and_dead_letters_none(stack):
    """docs/CONTRACT.md section 3: the secret gets a new version and, from that moment, the services
    accept only the new token. The warm worker still holds the old one: its next call gets
    401, it re-reads the secret and repeats the call, so no refund fails or waits in the DLQ."""
    before = stats(stack)
    warm = [str(uuid.uuid4()) for _ in range(3)]
    refund_all(stack, warm, "before-rotation")
    new_token = f"rotated-{uuid.uuid4()}"
    stack.secrets.put_secret_value(SecretId=stack.token_secret, SecretString=new_token)
    status, body, _ = request("PUT", f"{stack.gateway}/admin/token", body={"token": new_token})
    assert status == 200, body
    after_rotation = [str(uuid.uuid4()) for _ in range(5)]
    effects = refund_all(stack, after_rotation, "after-rotation")
    for ticket in warm + after_rotation:
        assert_refunded_once(effects, ticket)
        assert stack.status_reaches(ticket, "succeeded", 30)["failure_reason"] is None
    dead = [m["body"] for m in stack.dead_letters()]
    assert not [t for t in warm + after_rotation if any(t in body for body in dead)]
    after = stats(stack)
    # The worker did hold the old token when the services stopped taking it.
    assert after["unauthorized"] > before["unauthorized"]
    assert after["foreign_keys"] == before["foreign_keys"]


def test_the_runbook_redrive_refunds_a_ticket_once_its_rejection_is_resolved(stack):
    """The operator's path: the ticket waits in the DLQ, the upstream fixes its side, the
    DLQ is redriven (message by message: moto has no message-move task) and the refund
    completes once, with the same K."""
    ticket = str(uuid.uuid4())
    stack.faults(reject_tickets=[ticket])
    assert stack.put_refund(ticket, "e2e-redrive")[0] == 202
    wait_for("the rejected ticket in the DLQ", lambda: [m for m in stack.dead_letters() if ticket in m["body"]], 120)
    stack.faults(reject_tickets=[])
    # The runbook's own command: the queues from the stack's outputs, the administrator's file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "STACK_NAME"}
    port = stack.sqs.meta.endpoint_url.rsplit(":", 1)[1]
    # -o: the tools are installed (make test did it first); never reinstall them mid-test.
    subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "redrive", "ENV=local", f"SQS_PORT={port}",
                    f"LOCAL_STACK_LOGS={stack.credentials_file.parent}"], cwd=ROOT, env=env, check=True, timeout=120)

    def refunded():
        effects = stack.effects()
        return effects if ticket in effects["void"] and ticket in effects["refund"] else None

    effects = wait_for("the redriven ticket refunded", refunded, 120)
    assert_refunded_once(effects, ticket, "e2e-redrive")
    assert not [m for m in stack.dead_letters() if ticket in m["body"]]
    # failed -> processing (the redriven delivery) -> succeeded, with both attempts counted.
    record = stack.status_reaches(ticket, "succeeded")
    assert record["attempts"] == 2
    assert record["failure_reason"] is None


def test_a_refund_is_followed_from_accepted_to_succeeded(stack):
    """GET follows one refund: its calls are held for 2 s each by the emulator, so the record
    is seen before it ends; then it ends `succeeded` with the trail of its two calls."""
    ticket = str(uuid.uuid4())
    stack.faults(slow_tickets=[ticket], slow_ms=2000)
    try:
        status, accepted, _ = stack.put_refund(ticket, "e2e-follow")
        assert status == 202, accepted
        first = stack.refund_status(ticket)
        assert first["status"] in ("accepted", "processing"), first
        assert first["ticket_id"] == ticket
        assert first["idempotency_key"] == key_of(ticket) == accepted["idempotency_key"]
        assert first["correlation_id"] == "e2e-follow"
        record = stack.status_reaches(ticket, "succeeded")
    finally:
        stack.faults(slow_tickets=[], slow_ms=6000)
    assert record["attempts"] == 1
    assert record["receipt_voided_at"] and record["payment_refunded_at"] and record["completed_at"]
    assert record["accepted_at"] <= record["completed_at"] <= record["updated_at"]
    assert sorted(i["call"] for i in record["interactions"]) == ["refund_payment", "void_receipt"]
    assert all(i["duration_ms"] >= 1900 for i in record["interactions"]), record["interactions"]
    assert_refunded_once(stack.effects(), ticket, "e2e-follow")

    # Listed among the succeeded ones, newest first.
    status, page, _ = request("GET", f"{stack.api}/ticket-refunds?status=succeeded&limit=100")
    assert status == 200, page
    assert all(item["status"] == "succeeded" for item in page["items"])
    stamps = [(item["accepted_at"], item["ticket_id"]) for item in page["items"]]
    assert stamps == sorted(stamps, reverse=True)


def test_a_put_after_success_answers_200_and_queues_nothing(stack):
    ticket = str(uuid.uuid4())
    assert stack.put_refund(ticket)[0] == 202
    done = stack.status_reaches(ticket, "succeeded")
    wait_for("an empty refund queue", lambda: stack.queue_depth() == 0, 120)
    calls_before = stats(stack)["calls"]

    status, body, _ = stack.put_refund(ticket, "e2e-again")
    assert status == 200, body
    assert body == done
    # Nothing was queued: no delivery reaches the services, and the record is untouched.
    time.sleep(5)
    assert stats(stack)["calls"] == calls_before
    assert stack.queue_depth() == 0
    assert stack.refund_status(ticket) == done


def listed_tickets(stack, query):
    """The ticket ids of every page of `GET /ticket-refunds?<query>`, and the last cursor."""
    seen, cursor = [], None
    for _ in range(100):
        status, page, _ = request("GET", f"{stack.api}/ticket-refunds?{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, page
        seen += [item["ticket_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return seen, cursor


def test_the_listing_pages_through_every_refund_once(stack):
    seen, cursor = listed_tickets(stack, "limit=7")
    assert len(seen) == len(set(seen)) >= 50
    tampered = cursor or "x" * 78
    status, body, _ = request("GET", f"{stack.api}/ticket-refunds?cursor={tampered[:-2]}AA")
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")


def event_id(ticket, name):
    """header.id of a refund event (docs/CONTRACT.md section 9): UUIDv5 under the ticket's K."""
    return str(uuid.uuid5(uuid.UUID(key_of(ticket)), name))


def command_for(ticket):
    return json.dumps({
        "header": {"id": str(uuid.uuid4()), "published_at": "2026-12-02T07:00:00Z", "idempotency_key": key_of(ticket)},
        "ticket_id": ticket,
    })


def test_a_refund_has_one_ticket_refunded_id_however_often_it_is_asked_for_and_delivered(stack):
    """A ticket PUT twice (the second after its success) and a command delivered again after
    its success: each ticket's TicketRefunded events, repeats included, carry one header.id."""
    put_twice, delivered_twice = str(uuid.uuid4()), str(uuid.uuid4())
    assert stack.put_refund(put_twice, "e2e-events-twice")[0] == 202
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=command_for(delivered_twice))
    for ticket in (put_twice, delivered_twice):
        stack.status_reaches(ticket, "succeeded")
    assert stack.put_refund(put_twice, "e2e-events-again")[0] == 200
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=command_for(delivered_twice))

    def refunded(ticket, at_least):
        found = [e for e in stack.refund_events(ticket) if e["detail_type"] == "TicketRefunded"]
        return found if len(found) >= at_least else None

    assert {e["id"] for e in wait_for("one TicketRefunded", lambda: refunded(put_twice, 1), 60)} == {
        event_id(put_twice, "TicketRefunded")}
    repeats = wait_for("the repeat's TicketRefunded", lambda: refunded(delivered_twice, 2), 120)
    assert {e["id"] for e in repeats} == {event_id(delivered_twice, "TicketRefunded")}
    assert not [e for t in (put_twice, delivered_twice) for e in stack.refund_events(t)
                if e["detail_type"] != "TicketRefunded"]


def test_a_rejected_ticket_has_one_ticket_refund_failed_id_per_dead_lettering_and_no_refunded(stack):
    """Rejected, PUT again (failed -> accepted) and rejected again: two dead-lettered
    messages, two TicketRefundFailed ids named after them, each with the DLQ copy's code."""
    ticket = str(uuid.uuid4())
    stack.faults(reject_tickets=[ticket])
    try:
        def dead_lettered(at_least):
            found = [m for m in stack.dead_letters() if ticket in m["body"]]
            return found if len(found) >= at_least else None

        for round_ in (1, 2):
            assert stack.put_refund(ticket, f"e2e-failed-{round_}")[0] == 202
            dead = wait_for(f"dead-lettering {round_}", lambda: dead_lettered(round_), 120)
            stack.status_reaches(ticket, "failed")
    finally:
        stack.faults(reject_tickets=[])
    expected = {event_id(ticket, "TicketRefundFailed:" + m["source_message_id"]): m["error_code"] for m in dead}
    assert len(expected) == 2

    def failed():
        found = stack.refund_events(ticket)
        return found if {e["id"] for e in found} >= set(expected) else None

    found = wait_for("both TicketRefundFailed events", failed, 60)
    assert {e["id"]: e["error_code"] for e in found} == expected
    assert all(e["detail_type"] == "TicketRefundFailed" for e in found)


def traceparent_of(xray):
    """docs/CONTRACT.md section 3: `00-<Root's 32 hex>-<Parent>-<01|00>`, None without a Parent."""
    fields = dict(part.split("=", 1) for part in xray.split(";"))
    if "Parent" not in fields:
        return None
    root = fields["Root"].removeprefix("1-").replace("-", "")
    return f"00-{root}-{fields['Parent']}-{'01' if fields.get('Sampled') == '1' else '00'}"


def traced_effects(stack, ticket):
    def both():
        effects = stack.effects()
        return [effects[s][ticket][0] for s in ("void", "refund")] if all(
            ticket in effects[s] for s in ("void", "refund")) else None

    return wait_for(f"{ticket} at both services", both, 120)


@pytest.mark.parametrize("xray", [
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272794;Parent=53995c3f42cd8ad9;Sampled=0",
    "Root=1-5759e988-bd862e3fe1be46a994272795;Sampled=1",
])
def test_a_commands_trace_header_reaches_both_services(stack, xray):
    """The worker continues the message's AWSTraceHeader upstream, as X-Amzn-Trace-Id and
    the W3C traceparent of the same trace (none without a Parent)."""
    ticket = str(uuid.uuid4())
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody=command_for(ticket), MessageSystemAttributes={
        "AWSTraceHeader": {"DataType": "String", "StringValue": xray}})
    for effect in traced_effects(stack, ticket):
        assert (effect["x_amzn_trace_id"], effect["traceparent"]) == (xray, traceparent_of(xray))


def test_a_puts_trace_reaches_both_services(stack):
    """Under `cargo lambda watch` the API's invocation trace (Lambda-Runtime-Trace-Id) is one
    the watch server makes for each invocation: a request's own X-Amzn-Trace-Id is not
    passed on (cargo-lambda's trigger router overwrites it). So the test sends one, as API
    Gateway would, and follows the trace the API was given, which lambda_runtime logs on
    each line of the invocation (`xrayTraceId=...`): that trace must reach both services."""
    ticket, correlation = str(uuid.uuid4()), f"e2e-trace-{uuid.uuid4()}"
    sent = "Root=1-5759e988-bd862e3fe1be46a994272796;Parent=53995c3f42cd8ada;Sampled=1"
    status, body, _ = request("PUT", f"{stack.api}/ticket-refund/{ticket}",
                              headers={"Correlation-ID": correlation, "X-Amzn-Trace-Id": sent})
    assert status == 202, body

    def api_trace():
        for line in (stack.logs / "functions.log").read_text(errors="replace").splitlines():
            if f"correlation_id={correlation}" in line and 'xrayTraceId="' in line:
                return line.split('xrayTraceId="', 1)[1].split('"', 1)[0]
        return None

    xray = wait_for("the API's trace in its log", api_trace, 30)
    for effect in traced_effects(stack, ticket):
        assert (effect["x_amzn_trace_id"], effect["traceparent"]) == (xray, traceparent_of(xray))


def test_every_refunded_ticket_has_exactly_one_ticket_refunded_id(stack):
    """Over every ticket this module refunded: one TicketRefunded header.id each."""
    succeeded, _ = listed_tickets(stack, "status=succeeded&limit=100")

    def published():
        ids = {}
        for e in stack.refund_events():
            if e["detail_type"] == "TicketRefunded":
                ids.setdefault(e["ticket_id"], set()).add(e["id"])
        return ids if all(t in ids for t in succeeded) else None

    ids = wait_for(f"a TicketRefunded for each of {len(succeeded)} refunds", published, 60)
    assert len(succeeded) >= 50
    assert {t: ids[t] for t in succeeded} == {t: {event_id(t, "TicketRefunded")} for t in succeeded}


def test_nothing_is_left_on_the_queue(stack):
    wait_for("an empty refund queue", lambda: stack.queue_depth() == 0, 180)
