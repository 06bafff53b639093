"""`make events` (scripts/events.py): how one event body becomes its line. Pure, no stack."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import events  # noqa: E402

TICKET = "6f1c3a8e-2b4d-4c1e-9a7f-0d2e5b8c9a10"


def envelope(detail_type, detail, time="2026-12-02T07:00:00Z"):
    return json.dumps({"version": "0", "id": "eb-1", "detail-type": detail_type, "source": "ticket-refunds",
                       "account": "123456789012", "time": time, "region": "us-east-1", "resources": [],
                       "detail": detail})


def detail(**extra):
    return {"schema_version": 1, "header": {"id": "h-1", "published_at": "2026-12-02T07:00:00Z",
                                            "idempotency_key": "k"},
            "ticket_id": TICKET, "correlation_id": "c", **extra}


@pytest.mark.parametrize("body, line", [
    (envelope("TicketRefunded", detail()),
     f"2026-12-02T07:00:00Z TicketRefunded ticket={TICKET} id=h-1"),
    (envelope("TicketRefundFailed", detail(error_code="void_rejected", reason="receipts service answered 400")),
     f"2026-12-02T07:00:00Z TicketRefundFailed ticket={TICKET} id=h-1 error_code=void_rejected"),
    # A failure without its code still says it is missing.
    (envelope("TicketRefundFailed", detail()),
     f"2026-12-02T07:00:00Z TicketRefundFailed ticket={TICKET} id=h-1 error_code=?"),
    # An error_code on a success is not a failure's: not shown.
    (envelope("TicketRefunded", detail(error_code="x")),
     f"2026-12-02T07:00:00Z TicketRefunded ticket={TICKET} id=h-1"),
    # Missing fields are shown as such, never a crash.
    (envelope("TicketRefunded", {"header": "not an object"}),
     "2026-12-02T07:00:00Z TicketRefunded ticket=? id=?"),
    (json.dumps({"detail": {}}), "? ? ticket=? id=?"),
    ("not json", "(not a refund event) not json"),
    (json.dumps([1, 2]), "(not a refund event) [1, 2]"),
    (json.dumps({"detail": "a string"}), '(not a refund event) {"detail": "a string"}'),
    ("x" * 200, "(not a refund event) " + "x" * 80),
])
def test_an_event_body_becomes_one_line(body, line):
    assert events.event_line(body) == line


def test_oldest_first_is_the_order_sqs_took_them():
    messages = [{"Attributes": {"SentTimestamp": "30"}, "n": 3}, {"Attributes": {"SentTimestamp": "10"}, "n": 1},
                {"Attributes": {"SentTimestamp": "20"}, "n": 2}]
    assert [m["n"] for m in events.oldest_first(messages)] == [1, 2, 3]
