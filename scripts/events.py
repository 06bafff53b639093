#!/usr/bin/env python3
"""`make events`: the refund events (docs/CONTRACT.md section 9) the local stack's worker published,
as its RefundEvents queue holds them, one line each, oldest first, without consuming them.

The queue is the local stack's copy of every event of the bus (scripts/local_stack.py,
LOCAL_ONLY); the stack is found where `make dlq ENV=local` finds it: moto on 127.0.0.1,
port SQS_PORT (default 4566), or AWS_ENDPOINT_URL.
"""

import argparse
import json
import os
import sys

import boto3
import botocore.config
import botocore.exceptions

EVENTS_QUEUE = "RefundEvents"
# The source and detail-types the worker publishes (docs/CONTRACT.md section 9).
EVENT_SOURCE = "ticket-refunds"
REFUNDED, REFUND_FAILED = "TicketRefunded", "TicketRefundFailed"
# How many receives one peek makes at most (ten messages each).
MAX_RECEIVES = 1000


def peek(sqs, url):
    """Every message on the queue, once each (by SQS message id), without consuming any.

    Each receive hides what it got for a while, so the next one sees further (moto answers a
    0 s visibility timeout with the same ten messages every time); at the end everything is
    made visible again."""
    seen, handles = {}, []
    for _ in range(MAX_RECEIVES):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                  MessageAttributeNames=["All"], AttributeNames=["All"],
                                  WaitTimeSeconds=0).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen[m["MessageId"]] = m
        handles += [m["ReceiptHandle"] for m in got]
    for start in range(0, len(handles), 10):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start:start + 10])])
    return list(seen.values())


def event_fields(body):
    """The facts of one refund event from the body EventBridge delivered (its envelope, the
    detail an object), or None when the body is not such an event."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return None
    detail = event["detail"]
    header = detail.get("header") if isinstance(detail.get("header"), dict) else {}
    return {
        "time": event.get("time", "?"),
        "detail_type": event.get("detail-type", "?"),
        "ticket_id": detail.get("ticket_id", "?"),
        "id": header.get("id", "?"),
        "error_code": detail.get("error_code"),
    }


def event_line(body):
    """`<time> <detail-type> ticket=<ticket_id> id=<header.id>`, with `error_code=` for a
    TicketRefundFailed."""
    fields = event_fields(body)
    if fields is None:
        return f"(not a refund event) {body[:80]}"
    line = f"{fields['time']} {fields['detail_type']} ticket={fields['ticket_id']} id={fields['id']}"
    if fields["detail_type"] == REFUND_FAILED:
        line += f" error_code={fields['error_code'] or '?'}"
    return line


def oldest_first(messages):
    """By the time SQS took each copy: the order the bus delivered them."""
    return sorted(messages, key=lambda m: int(m.get("Attributes", {}).get("SentTimestamp", 0)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_endpoint = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('SQS_PORT', '4566')}"
    parser.add_argument("--endpoint-url", default=default_endpoint)
    parser.add_argument("--queue-url", help=f"default: the {EVENTS_QUEUE} queue at --endpoint-url")
    args = parser.parse_args()
    # The credentials configured (`make events`: the stack's administrator's file), else any
    # key pair, which a stack that does not enforce IAM takes.
    credentials = {} if boto3.Session().get_credentials() else {"aws_access_key_id": "local",
                                                                 "aws_secret_access_key": "local"}
    # One quick attempt: a stack that is not running should be said so at once.
    sqs = boto3.client("sqs", endpoint_url=args.endpoint_url, region_name="us-east-1", **credentials,
                       config=botocore.config.Config(connect_timeout=2, retries={"total_max_attempts": 1}))
    try:
        url = args.queue_url or sqs.get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"]
        messages = peek(sqs, url)
    except botocore.exceptions.EndpointConnectionError:
        return f"events: no local stack answers at {args.endpoint_url}: start it with `make run`"
    except sqs.exceptions.QueueDoesNotExist:
        return f"events: the stack at {args.endpoint_url} has no {EVENTS_QUEUE} queue: restart `make run`"
    for m in oldest_first(messages):
        print(event_line(m["Body"]))
    print(f"{len(messages)} event(s) on {url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
