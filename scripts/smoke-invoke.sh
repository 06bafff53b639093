#!/usr/bin/env bash
# Smoke test of the functions as cargo-lambda runs them: a real moto SQS, the gateway
# emulator, `cargo lambda watch` on free loopback ports, and `cargo lambda invoke
# --data-file` with every fixture in events/. Fails on any unexpected answer; stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port, seconds, what
  for _ in $(seq 1 "$(( $2 * 5 ))"); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "smoke: $3 did not listen on port $1 within $2 s" >&2
  return 1
}

sqs_port=$(free_port)
setsid moto_server -H 127.0.0.1 -p "$sqs_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$sqs_port" 60 "moto"

export AWS_ENDPOINT_URL="http://127.0.0.1:$sqs_port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=smoke AWS_SECRET_ACCESS_KEY=smoke
# template.yaml deployed into moto's CloudFormation (scripts/local_deploy.py), as the local
# stack does: the queues, the table and the cursor key secret are the stack's.
read -r queue_url dlq_url table cursor_secret < <(python3 - <<'PY'
import os, sys
sys.path.insert(0, "scripts")
import local_deploy
endpoint = os.environ["AWS_ENDPOINT_URL"]
deployment = local_deploy.deploy(endpoint)
sqs = local_deploy.client(endpoint, "sqs")
outputs = deployment.outputs
urls = [sqs.get_queue_url(QueueName=outputs[k].rsplit("/", 1)[1])["QueueUrl"] for k in ("RefundQueueUrl", "DeadLetterQueueUrl")]
api = deployment.functions["RefundApiFunction"]["environment"]
print(*urls, outputs["RefundTableName"], api["REFUND_CURSOR_KEY_SECRET_ARN"])
PY
)
export REFUND_QUEUE_URL="$queue_url" DEAD_LETTER_QUEUE_URL="$dlq_url"
# As the local stack: curl below has no token, so it is served as support.
export ALLOW_UNAUTHENTICATED=true
export REFUND_TABLE_NAME="$table" REFUND_CURSOR_KEY_SECRET_ARN="$cursor_secret"

cargo build --quiet -p refund-local --bin gateway-emulator
gateway_port=$(free_port)
setsid "${CARGO_TARGET_DIR:-target}/debug/gateway-emulator" --addr "127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_port "$gateway_port" 60 "gateway emulator"
export GATEWAY_ADDR="http://127.0.0.1:$gateway_port"

api_port=$(free_port)
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$api_port" >"$work/watch.log" 2>&1 &
pids+=($!)
wait_port "$api_port" 120 "cargo lambda watch"

status_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["statusCode"])'; }
failed=0
invoke() { # function, fixture
  # The first invocation compiles the function; `invoke` waits for it.
  cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$api_port" \
    --data-file "events/$2" 2>"$work/invoke.err" || { cat "$work/invoke.err" >&2; tail -20 "$work/watch.log" >&2; exit 1; }
}
check() { # fixture, expected status
  local answer status
  answer=$(invoke refund-api "$1")
  status=$(status_of <<<"$answer")
  if [[ "$status" == "$2" ]]; then echo "smoke: ok   $1 -> $status"; else echo "smoke: FAIL $1 -> $status (want $2): $answer"; failed=1; fi
  printf '%s\n' "$answer" >>"$work/answers"
}
# The command_id of every 202 so far, one per line.
command_ids() {
  python3 -c '
import json, sys
for line in sys.stdin:
    answer = json.loads(line)
    if answer["statusCode"] == 202:
        print(json.loads(answer["body"])["command_id"])' <"$work/answers"
}
check api-refund.json 202
check api-refund-client-key.json 202
check api-refund-bad-ticket-id.json 400
check api-refund-wrong-method.json 405
# The status routes: the PUT above recorded the fixture's ticket.
check api-get-refund.json 200
check api-list-refunds.json 200

# Through the router, as a browser or curl reaches it: the path parameter must arrive.
http=$(curl -s -o "$work/body" -w '%{http_code}' -X PUT -H 'Correlation-ID: smoke-1' \
  "http://127.0.0.1:$api_port/ticket-refund/0F5D8C6E-3A1B-4C2D-9E8F-7A6B5C4D3E2F")
if [[ "$http" == 202 ]] && grep -q '"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"' "$work/body"; then
  echo "smoke: ok   PUT /ticket-refund/{ticket_id} over HTTP -> 202"
else
  echo "smoke: FAIL PUT over HTTP -> $http $(cat "$work/body")"; failed=1
fi

# Three accepted requests for one ticket within the quiet period (contract section 1a): one
# command on the queue, named RefundTicket, and every 202 names it.
ids=$(command_ids | sort -u | wc -l)
if [[ "$ids" == 1 ]]; then echo "smoke: ok   the fixtures' 202s name one command"; else echo "smoke: FAIL the 202s name $ids commands, want 1"; failed=1; fi
queued=$(python3 - <<'PY'
import boto3, os
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
seen = 0
for _ in range(5):
    got = sqs.receive_message(QueueUrl=os.environ["REFUND_QUEUE_URL"], MaxNumberOfMessages=10,
                              MessageAttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
    seen += sum(1 for m in got if m["MessageAttributes"]["name"]["StringValue"] == "RefundTicket")
print(seen)
PY
)
if [[ "$queued" == 1 ]]; then echo "smoke: ok   1 RefundTicket command on the queue"; else echo "smoke: FAIL $queued commands on the queue, want 1"; failed=1; fi

# The worker with the SQS fixtures: every record settled (refunded, or poison copied to the
# DLQ), none reported failed, and the emulator saw the good records' tickets.
for fixture in sqs-one-record.json sqs-mixed-batch.json; do
  answer=$(invoke refund-worker "$fixture")
  if [[ "$answer" == '{"batchItemFailures":[]}' ]]; then echo "smoke: ok   refund-worker $fixture -> no failures"
  else echo "smoke: FAIL refund-worker $fixture -> $answer"; failed=1; fi
done
expected=$(python3 -c 'import json,sys,uuid
tickets = set()
for f in sys.argv[1:]:
    for r in json.load(open(f))["Records"]:
        try: tickets.add(str(uuid.UUID(json.loads(r["body"])["ticket_id"])))  # poison has no ticket
        except Exception: pass
print(" ".join(sorted(tickets)))' events/sqs-one-record.json events/sqs-mixed-batch.json)
for path in receipts-api/voided payments-api/refunds; do
  seen=$(curl -s "$GATEWAY_ADDR/$path" | python3 -c 'import json,sys; print(" ".join(sorted({e["ticket_id"] for e in json.load(sys.stdin)["items"]})))')
  if [[ "$seen" == "$expected" ]]; then echo "smoke: ok   emulator $path has the fixtures' tickets"
  else echo "smoke: FAIL emulator $path has [$seen], want [$expected]"; failed=1; fi
done

# The worker recorded the one-record fixture's refund as succeeded.
ticket=$(python3 -c 'import json; print(json.loads(json.load(open("events/sqs-one-record.json"))["Records"][0]["body"])["ticket_id"].lower())')
status=$(curl -s "http://127.0.0.1:$api_port/ticket-refund/$ticket" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')
if [[ "$status" == succeeded ]]; then echo "smoke: ok   GET /ticket-refund/{ticket_id} after the worker -> succeeded"
else echo "smoke: FAIL the worker's ticket is $status, want succeeded"; failed=1; fi

if (( failed )); then tail -30 "$work/watch.log" >&2; exit 1; fi
echo "smoke: passed"
