#!/usr/bin/env bash
# Smoke test of the functions as cargo-lambda runs them: a real moto SQS, `cargo lambda
# watch` on free loopback ports, and `cargo lambda invoke --data-file` with every API
# fixture in events/. Fails on any unexpected status; stops everything it started.
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
queue_url=$(python3 - <<'PY'
import boto3, os
print(boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_queue(QueueName="RefundTicket")["QueueUrl"])
PY
)
export REFUND_QUEUE_URL="$queue_url"

api_port=$(free_port)
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$api_port" >"$work/watch.log" 2>&1 &
pids+=($!)
wait_port "$api_port" 120 "cargo lambda watch"

status_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["statusCode"])'; }
failed=0
check() { # fixture, expected status
  local answer status
  # The first invocation compiles the function; `invoke` waits for it.
  answer=$(cargo lambda invoke refund-api --invoke-address 127.0.0.1 --invoke-port "$api_port" \
    --data-file "events/$1" 2>"$work/invoke.err") || { cat "$work/invoke.err" >&2; tail -20 "$work/watch.log" >&2; exit 1; }
  status=$(status_of <<<"$answer")
  if [[ "$status" == "$2" ]]; then echo "smoke: ok   $1 -> $status"; else echo "smoke: FAIL $1 -> $status (want $2): $answer"; failed=1; fi
}
check api-refund.json 202
check api-refund-client-key.json 202
check api-refund-bad-ticket-id.json 400
check api-refund-wrong-method.json 405

# Through the router, as a browser or curl reaches it: the path parameter must arrive.
http=$(curl -s -o "$work/body" -w '%{http_code}' -X PUT -H 'Correlation-ID: smoke-1' \
  "http://127.0.0.1:$api_port/ticket-refund/0F5D8C6E-3A1B-4C2D-9E8F-7A6B5C4D3E2F")
if [[ "$http" == 202 ]] && grep -q '"ticket_id":"0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f"' "$work/body"; then
  echo "smoke: ok   PUT /ticket-refund/{ticket_id} over HTTP -> 202"
else
  echo "smoke: FAIL PUT over HTTP -> $http $(cat "$work/body")"; failed=1
fi

# Three accepted requests, three commands on the queue, each named RefundTicket.
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
if [[ "$queued" == 3 ]]; then echo "smoke: ok   3 RefundTicket commands on the queue"; else echo "smoke: FAIL $queued commands on the queue, want 3"; failed=1; fi

if (( failed )); then tail -30 "$work/watch.log" >&2; exit 1; fi
echo "smoke: passed"
