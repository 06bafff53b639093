"""The pure checks of `make chaos` (scripts/chaos_report.py) on synthetic inputs: the refund
events (docs/CONTRACT.md section 9), the calls-per-ticket goal and the void first (issue 26).
Each table has passing rows and failing rows, so a check that cannot fail fails here. No stack:
these run in a second (in `make e2e`, so in `make test`)."""

import json
import uuid

import pytest

import chaos_report

T1 = "6f1c1a52-1f2e-4f39-9d0e-2a1b3c4d5e6f"
T2 = "0b8e2d3c-7a6f-4e5d-8c9b-1a2b3c4d5e6f"
REJECTED = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
VOID_REJECTED = "4d3c2b1a-0f9e-4d8c-9b7a-6f5e4d3c2b1a"  # only its void is refused
MESSAGE = "3e1d2c4b-0000-4000-8000-00000000aaaa"  # the id of the message that was dead-lettered
OTHER_MESSAGE = "3e1d2c4b-0000-4000-8000-00000000bbbb"


def k(ticket):
    return str(uuid.uuid5(uuid.UUID("d5c0914a-93ae-453d-8453-8e578063b9d6"), ticket.lower()))


def body(detail_type, ticket, event_id, *, key=None, source="ticket-refunds", error_code=None, version=1):
    detail = {"schema_version": version,
              "header": {"id": event_id, "published_at": "2026-12-01T10:00:00Z",
                         "idempotency_key": key or k(ticket)},
              "ticket_id": ticket, "correlation_id": "chaos-1-0001"}
    if error_code:
        detail |= {"error_code": error_code, "reason": "receipts service answered 400"}
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
                       "account": "123456789012", "time": "2026-12-01T10:00:00Z", "region": "us-east-1",
                       "resources": [], "detail": detail})


def refunded(ticket, **kw):
    return body("TicketRefunded", ticket, str(uuid.uuid5(uuid.UUID(k(ticket)), "TicketRefunded")), **kw)


def failed(ticket, message_id, code="void_rejected", **kw):
    return body("TicketRefundFailed", ticket,
                str(uuid.uuid5(uuid.UUID(k(ticket)), "TicketRefundFailed:" + message_id)), error_code=code, **kw)


def dlq_copy(ticket, source_message_id, code="void_rejected"):
    return {"body": json.dumps({"header": {"id": str(uuid.uuid4()), "published_at": "2026-12-01T10:00:00Z",
                                           "idempotency_key": k(ticket)}, "ticket_id": ticket}),
            "error_code": code, "error_message": "receipts service answered 400",
            "source_message_id": source_message_id, "receive_count": "1"}


def test_event_ids_follow_the_contract():
    key = uuid.UUID(k(T1))
    assert chaos_report.refunded_event_id(T1) == str(uuid.uuid5(key, "TicketRefunded"))
    assert chaos_report.refunded_event_id(T1.upper()) == chaos_report.refunded_event_id(T1)  # K is of the lowercase id
    assert chaos_report.failed_event_id(T1, MESSAGE) == str(uuid.uuid5(key, "TicketRefundFailed:" + MESSAGE))
    assert chaos_report.failed_event_id(T1, MESSAGE) != chaos_report.failed_event_id(T1, OTHER_MESSAGE)


def test_parse_events_reads_the_eventbridge_shape_and_sets_aside_the_rest():
    events, bad = chaos_report.parse_events([refunded(T1), failed(REJECTED, MESSAGE), "not json",
                                      json.dumps({"detail-type": "TicketRefunded", "detail": {}})])
    assert [(e["type"], e["ticket_id"], e["key"]) for e in events] == [
        ("TicketRefunded", T1, k(T1)), ("TicketRefundFailed", REJECTED, k(REJECTED))]
    assert events[1]["error_code"] == "void_rejected" and events[0]["error_code"] is None
    assert len(bad) == 2


def wrong_id_refunded(ticket):
    return body("TicketRefunded", ticket, str(uuid.uuid4()))


@pytest.mark.parametrize("bodies, failing", [
    ([refunded(T1), refunded(T2)], set()),
    ([refunded(T1), refunded(T1), refunded(T2)], set()),  # a repeat of the same id is fine
    ([refunded(T1), failed(REJECTED, MESSAGE)], {"missing"}),  # T2 has none
    ([refunded(T1), refunded(T2), wrong_id_refunded(T2)], {"more than one id", "wrong id"}),
    ([refunded(T1), wrong_id_refunded(T2)], {"wrong id"}),
    ([refunded(T1), refunded(T2, key=k(T1))], {"wrong key"}),
    ([refunded(T1), refunded(T2, source="someone-else")], {"malformed"}),
    ([refunded(T1), refunded(T2, version=2)], {"malformed"}),
    ([refunded(T1), refunded(T2), refunded(REJECTED)], {"of a rejected ticket"}),
    ([refunded(T1), refunded(T2), refunded(str(uuid.uuid4()))], {"of an unknown ticket"}),
])
def test_refunded_events(bodies, failing):
    events, bad = chaos_report.parse_events(bodies)
    assert not bad
    problems = chaos_report.refunded_event_problems(events, {T1, T2}, {REJECTED})
    assert {name for name, items in problems.items() if items} == failing


DLQ = [dlq_copy(REJECTED, MESSAGE), dlq_copy(REJECTED, OTHER_MESSAGE),
       dlq_copy(REJECTED, MESSAGE)]  # the last: the same message copied again after a kill


def test_dead_lettered_messages_are_one_per_source_message_and_skip_those_without_an_event():
    copies = DLQ + [dlq_copy(T1, "m-poison", code="invalid_command"), {"body": "not json", "error_code": "x"},
                    {**dlq_copy(T2, "m-redriven"), "error_code": None}]
    expected = chaos_report.dead_lettered_messages(copies)
    assert expected == {chaos_report.failed_event_id(REJECTED, MESSAGE): (REJECTED, {"void_rejected"}),
                        chaos_report.failed_event_id(REJECTED, OTHER_MESSAGE): (REJECTED, {"void_rejected"})}


@pytest.mark.parametrize("bodies, failing", [
    ([failed(REJECTED, MESSAGE), failed(REJECTED, OTHER_MESSAGE)], set()),
    ([failed(REJECTED, MESSAGE), failed(REJECTED, MESSAGE), failed(REJECTED, OTHER_MESSAGE), refunded(T1)],
     set()),
    ([failed(REJECTED, MESSAGE)], {"missing"}),
    ([failed(REJECTED, MESSAGE), failed(REJECTED, OTHER_MESSAGE), failed(REJECTED, "never-dead-lettered")],
     {"without a dead-lettered message"}),
    ([failed(REJECTED, MESSAGE), failed(REJECTED, OTHER_MESSAGE), failed(T1, MESSAGE)],
     {"without a dead-lettered message"}),  # the id is made from the ticket's own K
    ([failed(REJECTED, MESSAGE, code="refund_rejected"), failed(REJECTED, OTHER_MESSAGE)], {"wrong error_code"}),
    ([failed(REJECTED, MESSAGE, key=k(T1)), failed(REJECTED, OTHER_MESSAGE)], {"wrong ticket or key"}),
    ([failed(REJECTED, MESSAGE, source="elsewhere"), failed(REJECTED, OTHER_MESSAGE)], {"malformed"}),
])
def test_failed_events(bodies, failing):
    events, bad = chaos_report.parse_events(bodies)
    assert not bad
    problems = chaos_report.failed_event_problems(events, DLQ)
    assert {name for name, items in problems.items() if items} == failing


def test_a_failed_event_named_by_the_copys_own_message_id_is_not_the_dead_lettered_messages():
    copy = {**dlq_copy(REJECTED, MESSAGE)}
    events, _ = chaos_report.parse_events([failed(REJECTED, "the-dlq-copys-own-message-id")])
    problems = chaos_report.failed_event_problems(events, [copy])
    assert problems["missing"] and problems["without a dead-lettered message"]


def test_other_detail_types_are_reported():
    events, _ = chaos_report.parse_events([refunded(T1), body("TicketBooked", T1, str(uuid.uuid4()))])
    assert chaos_report.other_events(events) == ["TicketBooked"]
    assert chaos_report.other_events(chaos_report.parse_events([refunded(T1)])[0]) == []


def listing(calls):
    return [{"ticket_id": t, "calls": n} for t, n in calls.items()]


@pytest.mark.parametrize("void, refund, tickets, expected, not_met", [
    ({T1: 1, T2: 1}, {T1: 1, T2: 2}, [T1, T2], (1.0, 1.5, 2.5), []),
    ({T1: 1, T2: 2}, {T1: 2, T2: 1}, [T1, T2], (1.5, 1.5, 3.0), []),
    ({T1: 2, T2: 1.2}, {T1: 1, T2: 1}, [T1, T2], (1.6, 1.0, 2.6), []),  # the goal itself is met
    ({T1: 3, T2: 3}, {T1: 1, T2: 1}, [T1, T2], (3.0, 1.0, 4.0), ["void"]),
    ({T1: 3, T2: 3}, {T1: 3, T2: 2}, [T1, T2], (3.0, 2.5, 5.5), ["void", "refund"]),
    ({T1: 1, REJECTED: 9}, {T1: 1}, [T1], (1.0, 1.0, 2.0), []),  # only the tickets asked for count
    ({T1: 2}, {T1: 2, T2: 2}, [T1, T2], (1.0, 2.0, 3.0), ["refund"]),  # T2 never voided: 0 calls
])
def test_calls_per_ticket_and_the_goal(void, refund, tickets, expected, not_met):
    per_ticket = chaos_report.calls_per_ticket({"void": listing(void), "refund": listing(refund)}, tickets)
    assert (per_ticket["void"], per_ticket["refund"], per_ticket["both"]) == pytest.approx(expected)
    lines, missed = chaos_report.calls_goal_lines(per_ticket)
    assert missed == not_met
    assert [line.split(":")[0] for line in lines] == [
        "void calls per ticket", "refund calls per ticket", "calls per ticket (both)"]
    for service, line in zip(("void", "refund"), lines):
        assert line.endswith("NOT MET)") == (service in not_met), line


VOID_REFUSED = {REJECTED, VOID_REJECTED}


@pytest.mark.parametrize("void, refund, called", [
    ({REJECTED: 2, VOID_REJECTED: 3, T1: 1}, {T1: 1, T2: 4}, {}),  # voids tried, no refund
    ({}, {}, {}),
    ({VOID_REJECTED: 2}, {VOID_REJECTED: 0}, {}),  # a zero is no call
    ({VOID_REJECTED: 2}, {VOID_REJECTED: 1, T1: 1}, {VOID_REJECTED: 1}),
    ({REJECTED: 2}, {REJECTED: 2}, {REJECTED: 2}),  # refused as well: still a call
    ({}, {VOID_REJECTED: 1, REJECTED: 3}, {REJECTED: 3, VOID_REJECTED: 1}),
])
def test_no_refund_call_for_a_ticket_whose_void_was_refused(void, refund, called):
    calls = chaos_report.TicketCalls(void=void, refund=refund)
    assert chaos_report.refund_calls_after_refused_void(calls, VOID_REFUSED) == called


@pytest.mark.parametrize("copies, wrong", [
    ([dlq_copy(REJECTED, MESSAGE), dlq_copy(VOID_REJECTED, OTHER_MESSAGE)], []),
    ([], []),  # a missing delivery is check_dead_letters'
    ([dlq_copy(T1, MESSAGE, code="refund_rejected")], []),  # not a ticket whose void is refused
    ([{"body": "not json", "error_code": "refund_rejected"}], []),
    ([dlq_copy(VOID_REJECTED, MESSAGE),
      dlq_copy(VOID_REJECTED, OTHER_MESSAGE, code="refund_rejected")], [VOID_REJECTED]),
    ([dlq_copy(REJECTED, MESSAGE, code="retries_exhausted"), dlq_copy(VOID_REJECTED, MESSAGE)],
     [REJECTED]),
    # moved by the redrive policy: no code at all
    ([{**dlq_copy(VOID_REJECTED, MESSAGE), "error_code": None}], [VOID_REJECTED]),
])
def test_a_ticket_whose_void_is_refused_is_dead_lettered_as_void_rejected(copies, wrong):
    assert chaos_report.dead_lettered_not_void_rejected(copies, VOID_REFUSED) == wrong
