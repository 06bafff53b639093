#!/usr/bin/env python3
"""Operator's tool for the refund dead-letter queue: `show` what is there and why, `redrive` it.

Queue URLs come from the stack's outputs (--stack, default from ENV via samconfig's naming)
or from REFUND_QUEUE_URL / DEAD_LETTER_QUEUE_URL (the local stack). boto3 honours
AWS_ENDPOINT_URL, so the same tool works against moto.
"""

import argparse
import json
import os
import sys
import time

import boto3


def queue_urls(args):
    if args.dlq_url and args.queue_url:
        return args.queue_url, args.dlq_url
    outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]["Outputs"]
    by_key = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    return by_key["RefundQueueUrl"], by_key["DeadLetterQueueUrl"]


def arn_of(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def show(sqs, dlq_url, limit):
    """Peeks without consuming: every message received is made visible again."""
    depth = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    print(f"dead-letter queue {dlq_url}: about {depth['Attributes']['ApproximateNumberOfMessages']} message(s)")
    seen = {}
    for _ in range(max(1, limit // 10) * 3):
        # Hidden for a moment so the next receive sees other messages, then made visible
        # again below: showing never consumes.
        got = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30,
            MessageAttributeNames=["All"], AttributeNames=["All"], WaitTimeSeconds=1,
        ).get("Messages", [])
        for m in got:
            seen.setdefault(m["MessageId"], m)
        if got:
            sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(got)])
        if not got or len(seen) >= limit:
            break
    for m in list(seen.values())[:limit]:
        attrs = {k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}
        try:
            ticket = json.loads(m["Body"]).get("ticket_id", "?")
        except (ValueError, AttributeError):
            ticket = "(body is not JSON)"
        sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(m["Attributes"]["SentTimestamp"]) / 1000))
        reason = attrs.get("error_code", "(moved by the redrive policy: the worker crashed or timed out)")
        print(f"- {m['MessageId']} ticket={ticket} sent={sent} reason={reason}")
        if "error_message" in attrs:
            print(f"    {attrs['error_message']}")
        for key in ("source_message_id", "receive_count", "correlation_id"):
            if key in attrs:
                print(f"    {key}={attrs[key]}")


def redrive(sqs, queue_url, dlq_url):
    """SQS's message-move task. The destination is always named: copies the worker sent to the
    DLQ have no recorded source queue, so SQS could not find their way back on its own."""
    task = sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq_url), DestinationArn=arn_of(sqs, queue_url))
    print(f"message-move task started: {task['TaskHandle']}")
    print("follow it with: aws sqs list-message-move-tasks --source-arn", arn_of(sqs, dlq_url))


# What the worker adds to its copies; a redriven message goes back without them, so a later
# failure is described afresh.
WORKER_ATTRIBUTES = {"error_code", "error_message", "source_message_id", "receive_count"}


def redrive_by_copy(sqs, queue_url, dlq_url):
    """Moves messages one by one: send to the refund queue, then delete from the DLQ (so a
    failure between the two duplicates, never loses; K makes a duplicate harmless). For SQS
    endpoints without the message-move task, such as the local stack's moto.

    Moves what is in the DLQ when it starts, each message once: a redriven message that a
    running worker dead-letters again is a new message, left for the operator to see."""
    depth = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    remaining = int(depth["Attributes"]["ApproximateNumberOfMessages"])
    seen, moved = set(), 0
    while remaining > 0:
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=min(10, remaining),
                                  MessageAttributeNames=["All"], VisibilityTimeout=60,
                                  WaitTimeSeconds=1).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen.add(m["MessageId"])
            attributes = {k: v for k, v in m.get("MessageAttributes", {}).items() if k not in WORKER_ATTRIBUTES}
            sqs.send_message(QueueUrl=queue_url, MessageBody=m["Body"], MessageAttributes=attributes)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
            remaining -= 1
    print(f"moved {moved} message(s) back to {queue_url}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["show", "redrive"])
    parser.add_argument("--stack", default=os.environ.get("STACK_NAME", "ticket-refunds-staging"))
    parser.add_argument("--queue-url", default=os.environ.get("REFUND_QUEUE_URL"))
    parser.add_argument("--dlq-url", default=os.environ.get("DEAD_LETTER_QUEUE_URL"))
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--copy", action="store_true",
                        help="redrive message by message instead of SQS's move task (for moto)")
    args = parser.parse_args()
    queue_url, dlq_url = queue_urls(args)
    sqs = boto3.client("sqs")
    if args.action == "show":
        show(sqs, dlq_url, args.limit)
    elif args.copy:
        redrive_by_copy(sqs, queue_url, dlq_url)
    else:
        redrive(sqs, queue_url, dlq_url)


if __name__ == "__main__":
    sys.exit(main())
